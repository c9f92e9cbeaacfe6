"""Latency budgets under overload: more live loopback clients than the server can serve.

    .venv/bin/python bench/latency.py --clients 6 --stagger-s 3 --seconds 25

Clients join one every --stagger-s seconds; each streams its own real speech program (utterances of
../shared/speech/dev with 0.6 s pauses, as bench/server.py) at real-time pace in 20 ms messages over
the native protocol, then ends its audio. Two runs, the same clients:
- "admission": the default server (latency budget, degradation ladder, admission control);
- peer "no admission": the same server with admission control off (every client is served).
For each client: admitted or refused (and the message), client-measured partial latency p50 / p95
(send time of the newest decoded audio -> caption received), `budget` events received and the
deepest rung, how long the last final took after the audio ended, WER. Verdicts: every admitted
session keeps p95 partial latency within the budget; no admitted session lags silently (over budget
without having sent a `budget` event); the excess is refused with `over_capacity` and a message.
Writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.server import load_programs, pct, wer  # noqa: E402
from rtaudio.errors import CapacityError  # noqa: E402
from rtaudio.server.admission import AdmissionConfig  # noqa: E402
from rtaudio.server.background import BackgroundServer  # noqa: E402
from rtaudio.server.client import StreamClient  # noqa: E402
from rtaudio.server.config import ServerConfig, ServerLimits  # noqa: E402
from rtaudio.stt.latency_budget import LatencyBudgetConfig  # noqa: E402

RESULTS = REPO / "bench" / "results" / "latency.json"


async def one_client(url: str, audio: np.ndarray, delay_s: float) -> dict[str, Any]:
    await asyncio.sleep(delay_s)
    joined = time.monotonic()
    try:
        client = await StreamClient.connect(url, {"audio": {"sample_rate_hz": 16000}})
    except CapacityError as e:
        return {"admitted": False, "refusal": str(e), "joined_s": delay_s}
    async with client:
        captions, budget, ended, final_delay = await client.stream_and_collect(audio, timeout_s=300)
    partial = [e.latency_ms for e in captions if not e.caption.is_final and e.latency_ms is not None]
    return {"admitted": True, "joined_s": delay_s, "partial_ms": partial, "final_delay_s": final_delay,
            "budget_events": budget, "max_level": max((b["level"] for b in budget), default=0),
            "text": " ".join(e.caption.text for e in captions if e.caption.is_final and e.caption.text),
            "audio_s": len(audio) / 16000, "stream_s": ended - joined}


async def run_clients(url: str, programs: list[tuple[np.ndarray, str]], stagger_s: float) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(one_client(url, audio, i * stagger_s) for i, (audio, _) in enumerate(programs))))


def run_config(label: str, config: ServerConfig, programs: list[tuple[np.ndarray, str]], stagger_s: float,
               budget_ms: float) -> dict[str, Any]:
    with BackgroundServer(config) as srv:
        assert srv.server is not None
        t0 = time.monotonic()
        clients = asyncio.run(run_clients(srv.ws_url + "/v1/stream", programs, stagger_s))
        wall_s = time.monotonic() - t0
        adm = srv.server.admission
        cost, capacity, measured = adm.cost, adm.capacity_sessions, adm.measured
        load = os.getloadavg()[0]
    for c, (_, ref) in zip(clients, programs, strict=True):
        if c["admitted"]:
            c["p50_ms"], c["p95_ms"] = pct(c["partial_ms"], 50), pct(c["partial_ms"], 95)
            c["partials"] = len(c["partial_ms"])
            c["wer"] = wer(ref, c["text"])
            c["within_budget"] = bool(c["p95_ms"] <= budget_ms)
            c["silent_lag"] = bool(not c["within_budget"] and not c["budget_events"])
            del c["partial_ms"], c["text"]
    admitted = [c for c in clients if c["admitted"]]
    return {"label": label, "clients": clients, "admitted": len(admitted), "refused": len(clients) - len(admitted),
            "all_within_budget": all(c["within_budget"] for c in admitted),
            "silently_lagging": sum(c["silent_lag"] for c in admitted),
            "session_cost_cpu_s_per_audio_s": cost, "cost_measured": measured, "capacity_sessions": capacity,
            "wall_s": wall_s, "load_avg_1m": load}


def print_run(run: dict[str, Any], budget_ms: float) -> None:
    print(f"\n{run['label']}: {run['admitted']} admitted, {run['refused']} refused; measured cost "
          f"{run['session_cost_cpu_s_per_audio_s']:.2f} CPU-s per audio-s -> capacity {run['capacity_sessions']} "
          f"sessions (load average {run['load_avg_1m']:.1f})")
    print(f"{'client':>6} {'join s':>6} {'admitted':>8} {'p50 ms':>7} {'p95 ms':>7} {'budget ev':>9} {'max rung':>8} "
          f"{'final s':>7} {'WER %':>6}  p95 <= {budget_ms:.0f} ms")
    for i, c in enumerate(run["clients"]):
        if not c["admitted"]:
            print(f"{i:>6} {c['joined_s']:>6.0f} {'no':>8}  refused: {c['refusal']}")
            continue
        print(f"{i:>6} {c['joined_s']:>6.0f} {'yes':>8} {c['p50_ms']:>7.0f} {c['p95_ms']:>7.0f} "
              f"{len(c['budget_events']):>9} {c['max_level']:>8} {c['final_delay_s']:>7.1f} {c['wer']:>6.1f}  "
              f"{'yes' if c['within_budget'] else 'NO' + (' (silent!)' if c['silent_lag'] else ' (reported)')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--stagger-s", type=float, default=3.0, help="a new client every this many seconds")
    ap.add_argument("--seconds", type=float, default=25.0, help="speech per client")
    ap.add_argument("--decode-workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    ap.add_argument("--no-peer", action="store_true", help="skip the run without admission control")
    ap.add_argument("--partial-budget-ms", type=int, default=LatencyBudgetConfig.partial_ms)
    ap.add_argument("--refuse-at-rung", type=int, default=AdmissionConfig.refuse_at_rung,
                    help="admission refuses while a session is degraded this far (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    logging.getLogger("rtaudio.stt.budget").setLevel(logging.ERROR)  # the steps are in the table

    budget = LatencyBudgetConfig(partial_ms=args.partial_budget_ms)
    admission = AdmissionConfig(refuse_at_rung=args.refuse_at_rung)
    programs = load_programs(args.clients, args.seconds)
    limits = ServerLimits(max_sessions=args.clients + 2)
    base = ServerConfig(port=0, decode_workers=args.decode_workers, preload_voice=False, limits=limits, budget=budget,
                        admission=admission)
    configs = [("admission", base)]
    if not args.no_peer:
        configs.append(("no admission (peer)", ServerConfig(port=0, decode_workers=args.decode_workers,
                                                            preload_voice=False, limits=limits, budget=budget,
                                                            admission=AdmissionConfig(enabled=False))))
    runs = []
    for label, config in configs:
        run = run_config(label, config, programs, args.stagger_s, budget.partial_ms)
        print_run(run, budget.partial_ms)
        runs.append(run)
    ours = runs[0]
    print(f"\nwith admission: {ours['admitted']} admitted, all within the {budget.partial_ms} ms p95 partial budget: "
          f"{ours['all_within_budget']}; silently lagging: {ours['silently_lagging']}; refused with a message: "
          f"{ours['refused']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "bench/latency.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "model": "whisper-tiny.en", "budget_ms": {"partial": budget.partial_ms, "final": budget.final_ms},
        "decode_workers": args.decode_workers, "clients": args.clients, "stagger_s": args.stagger_s,
        "refuse_at_rung": args.refuse_at_rung,
        "seconds_per_client": args.seconds, "runs": runs,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
