"""Soak: N loopback clients stream real speech into one `rtaudio serve` process for M minutes.

    .venv/bin/python bench/soak.py --clients 2    # 45 min: 15 min warm-up, then 30 min measured

Each client loops over its own program of real recordings (../shared/speech/dev, utterances with
0.8 s pauses) at real-time pace in 20 ms messages over the native protocol: one session per pass
(connect, stream, audio.end, captions until audio.ended, close), so sessions come and go as they do
in service. The server's resident memory is sampled every `--sample-s`; each caption's client-measured
latency (send of the newest decoded audio -> caption received) is kept. Checks:
- memory flat: RSS growth < --max-rss-growth (5%) from just after warm-up to the end of the run;
- no caption lost: every utterance of every pass has a non-empty final caption overlapping it;
- latency steady: p95 final latency of the last window <= 2x the first window's + 0.5 s.
Prints a table per window and writes bench/results/soak.json. Exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rtaudio.errors import CapacityError
from rtaudio.io.files import read_audio
from rtaudio.server.client import CaptionEvent, StreamClient

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "soak.json"
SPEECH = Path(os.environ.get("RTAUDIO_SPEECH_DIR", REPO.parent / "shared" / "speech")) / "dev"
RATE_HZ = 16000
PAUSE_S = 0.8  # longer than the server's default 500 ms endpoint silence: each utterance gets its own final
REFUSED_RETRY_S = 2.0


@dataclass(frozen=True)
class SoakConfig:
    clients: int = 4
    minutes: float = 45.0
    program_s: float = 45.0
    """Length of one client's program of utterances (one session per pass)."""
    warmup_s: float = 900.0
    """RSS growth is measured from the end of the warm-up on. The server's RSS climbs by shrinking steps for
    the first ~15 minutes of live streams (the shared onnxruntime arena reaching the largest windows two
    sessions decode at once), then stays flat: 30 min after a 15-min warm-up, +0.8 % (RELIABILITY.md)."""
    sample_s: float = 2.0
    windows: int = 6
    """Latency and RSS are reported per window (the run split in this many equal parts)."""
    max_rss_growth: float = 0.05
    decode_workers: int = 2


@dataclass
class Program:
    audio: np.ndarray
    spans_s: list[tuple[float, float]]
    """Stream time of each utterance."""


@dataclass
class PassResult:
    client: int
    started_s: float
    utterances: int
    missing: list[int]
    """Utterances with no non-empty final caption over them."""
    finals: int
    partial_ms: list[float] = field(default_factory=list)
    final_ms: list[float] = field(default_factory=list)
    error: str = ""
    refused: bool = False
    """Admission control said the server was full (the client was told at once and retries later)."""


def load_programs(count: int, seconds: float) -> list[Program]:
    """`count` programs of about `seconds`, each from different recordings (wrapping round the corpus)."""
    with open(SPEECH / "manifest.tsv", newline="") as f:
        rows = [r for r in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
                if r[0].startswith(("ljspeech_", "librispeech_", "vctk_", "libritts_")) and 1.5 < float(r[1]) < 12]
    pause = np.zeros(int(PAUSE_S * RATE_HZ), np.float32)
    programs, i = [], 0
    for _ in range(count):
        parts, spans, t = [pause], [], PAUSE_S
        while t < seconds:
            audio, _ = read_audio(SPEECH / rows[i % len(rows)][0], target_rate_hz=RATE_HZ)
            i += 1
            spans.append((t, t + len(audio) / RATE_HZ))
            parts += [audio, pause]
            t += len(audio) / RATE_HZ + PAUSE_S
        programs.append(Program(np.concatenate(parts), spans))
    return programs


def missing_utterances(program: Program, events: list[CaptionEvent]) -> list[int]:
    finals = [(e.caption.start_s, e.caption.end_s) for e in events if e.caption.is_final and e.caption.text.strip()]
    return [i for i, (a, b) in enumerate(program.spans_s)
            if not any(s < b + 0.3 and e > a - 0.3 for s, e in finals)]


async def one_pass(url: str, client_id: int, program: Program, t0: float) -> PassResult:
    started = time.monotonic() - t0
    try:
        client = await StreamClient.connect(url, {"audio": {"sample_rate_hz": RATE_HZ}})
    except CapacityError as e:
        return PassResult(client_id, started, 0, [], 0, error=str(e), refused=True)
    try:
        async with client:
            collector = asyncio.create_task(client.captions_until_ended(timeout_s=len(program.audio) / RATE_HZ + 120))
            await client.stream_audio(program.audio, chunk_ms=20, realtime=True)
            await client.end_audio()
            events = await collector
    except Exception as e:  # a lost session is a finding, not a crash of the bench
        return PassResult(client_id, started, len(program.spans_s), list(range(len(program.spans_s))), 0,
                          error=repr(e))
    lat = [(e.caption.is_final, e.latency_ms) for e in events if e.latency_ms is not None]
    return PassResult(client_id, started, len(program.spans_s), missing_utterances(program, events),
                      sum(e.caption.is_final for e in events),
                      partial_ms=[v for final, v in lat if not final], final_ms=[v for final, v in lat if final])


async def client_loop(url: str, client_id: int, program: Program, t0: float, deadline: float) -> list[PassResult]:
    results = []
    await asyncio.sleep(client_id * 0.7)  # staggered, as real clients are
    while time.monotonic() + len(program.audio) / RATE_HZ < deadline:
        results.append(await one_pass(url, client_id, program, t0))
        if results[-1].refused:
            await asyncio.sleep(REFUSED_RETRY_S)
    return results


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def sample_rss(pid: int, t0: float, every_s: float, out: list[tuple[float, int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        out.append((time.monotonic() - t0, rss_bytes(pid)))
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except asyncio.TimeoutError:
            pass


def start_server(decode_workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """`rtaudio serve` on a free port, as deployed: its own process, so its RSS is the server's alone."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "rtaudio.cli", "serve", "--port", str(port), "--decode-workers",
                             str(decode_workers)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return proc, f"ws://127.0.0.1:{port}/v1/stream"
        except OSError as e:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                stderr = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                raise RuntimeError(f"server did not start: {stderr}") from e
            time.sleep(0.3)


def pctl(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarize(cfg: SoakConfig, passes: list[PassResult], rss: list[tuple[float, int]], duration_s: float) -> dict[str, Any]:
    refused = sum(p.refused for p in passes)
    passes = [p for p in passes if not p.refused]
    edges = np.linspace(0, duration_s, cfg.windows + 1)
    windows = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        ps = [p for p in passes if a <= p.started_s < b]
        mem = [r for t, r in rss if a <= t < b]
        windows.append({
            "from_s": round(float(a)), "to_s": round(float(b)), "sessions": len(ps),
            "utterances": sum(p.utterances for p in ps), "missing": sum(len(p.missing) for p in ps),
            "partial_p50_ms": pctl([v for p in ps for v in p.partial_ms], 50),
            "partial_p95_ms": pctl([v for p in ps for v in p.partial_ms], 95),
            "final_p50_ms": pctl([v for p in ps for v in p.final_ms], 50),
            "final_p95_ms": pctl([v for p in ps for v in p.final_ms], 95),
            "rss_mb": round(float(np.mean(mem)) / 2**20, 1) if mem else None,
        })
    after = [r for t, r in rss if t >= cfg.warmup_s]
    n = max(1, len(after) // 10)
    base, end = float(np.mean(after[:n])) if after else 0.0, float(np.mean(after[-n:])) if after else 0.0
    growth = (end - base) / base if base else float("nan")
    firsts = [w["final_p95_ms"] for w in windows if w["final_p95_ms"] is not None]
    steady = len(firsts) < 2 or firsts[-1] <= 2 * firsts[0] + 500
    missing = sum(len(p.missing) for p in passes)
    return {
        "windows": windows,
        "rss_after_warmup_mb": round(base / 2**20, 1), "rss_end_mb": round(end / 2**20, 1),
        "rss_growth": round(growth, 4), "rss_peak_mb": round(max(r for _, r in rss) / 2**20, 1) if rss else None,
        "sessions": len(passes), "refused": refused, "utterances": sum(p.utterances for p in passes),
        "missing_finals": missing,
        "errors": [p.error for p in passes if p.error],
        "final_p95_ms": pctl([v for p in passes for v in p.final_ms], 95),
        "partial_p95_ms": pctl([v for p in passes for v in p.partial_ms], 95),
        "checks": {"rss_flat": bool(growth < cfg.max_rss_growth), "every_final_arrived": missing == 0 and bool(passes),
                   "latency_steady": bool(steady)},
    }


async def soak(cfg: SoakConfig, url: str, server_pid: int) -> tuple[list[PassResult], list[tuple[float, int]], float]:
    programs = load_programs(cfg.clients, cfg.program_s)
    t0 = time.monotonic()
    deadline = t0 + cfg.minutes * 60
    rss: list[tuple[float, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(server_pid, t0, cfg.sample_s, rss, stop))
    runs = await asyncio.gather(*(client_loop(url, i, programs[i], t0, deadline) for i in range(cfg.clients)))
    stop.set()
    await sampler
    return [p for run in runs for p in run], rss, time.monotonic() - t0


def run_soak(cfg: SoakConfig) -> dict[str, Any]:
    """Start a server, soak it, stop it; the summary (with `checks`)."""
    proc, url = start_server(cfg.decode_workers)
    try:
        passes, rss, duration_s = asyncio.run(soak(cfg, url, proc.pid))
    finally:
        proc.terminate()
        proc.wait(30)
    return {"config": asdict(cfg), "duration_s": round(duration_s, 1), **summarize(cfg, passes, rss, duration_s)}


def print_table(result: dict[str, Any]) -> None:
    def ms(v: float | None) -> str:
        return f"{v:6.0f}" if v is not None else "     -"

    print(f"{'window':>13} {'sess':>5} {'utt':>5} {'miss':>5} {'part p50':>9} {'part p95':>9} {'fin p50':>8} "
          f"{'fin p95':>8} {'RSS MB':>7}")
    for w in result["windows"]:
        print(f"{w['from_s']:>5}-{w['to_s']:<6} s {w['sessions']:>5} {w['utterances']:>5} {w['missing']:>5}   "
              f"{ms(w['partial_p50_ms'])}    {ms(w['partial_p95_ms'])}   {ms(w['final_p50_ms'])}   "
              f"{ms(w['final_p95_ms'])} {w['rss_mb'] or 0:7.1f}")
    print(f"RSS {result['rss_after_warmup_mb']} MB after warm-up -> {result['rss_end_mb']} MB at the end "
          f"({100 * result['rss_growth']:+.2f}%), peak {result['rss_peak_mb']} MB; "
          f"{result['sessions']} sessions ({result['refused']} refused at admission), {result['utterances']} utterances, "
          f"{result['missing_finals']} finals missing")
    print("checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in result["checks"].items()))


def main() -> int:
    d = SoakConfig()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=d.clients)
    ap.add_argument("--minutes", type=float, default=d.minutes)
    ap.add_argument("--program-s", type=float, default=d.program_s)
    ap.add_argument("--warmup-s", type=float, default=d.warmup_s)
    ap.add_argument("--decode-workers", type=int, default=d.decode_workers)
    ap.add_argument("--max-rss-growth", type=float, default=d.max_rss_growth)
    args = ap.parse_args()
    cfg = SoakConfig(clients=args.clients, minutes=args.minutes, program_s=args.program_s, warmup_s=args.warmup_s,
                     decode_workers=args.decode_workers, max_rss_growth=args.max_rss_growth)
    result = run_soak(cfg)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                         "load_avg_1m": os.getloadavg()[0]}
    result["command"] = "bench/soak.py " + " ".join(sys.argv[1:])
    print_table(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
