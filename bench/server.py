"""How many live caption sessions one server keeps in real time: N loopback clients stream real speech.

    .venv/bin/python bench/server.py --max-clients 8 --budget-ms 1500

Each client streams its own real recording (from ../shared/speech/dev) at real-time pace in 20 ms
messages over the native protocol, then ends the audio. For N = 1, 2, 3, 4, 6, 8... (stopping after
the first failure) it reports client-measured partial-caption latency (send time of the newest
decoded audio -> caption received), how long the last final took after the audio ended, the server's
compute real-time factor and WER. A step passes when p95 partial latency <= budget and every
session's final arrived within --final-within-s of its end of audio.
Peer, measured in the same run: the same caption engine driven in-process (no server, no network)
on one stream at real-time pace, so the server's own overhead shows.
Writes bench/results/server.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jiwer
import numpy as np

from rtaudio.clock import SystemClock
from rtaudio.io.files import read_audio
from rtaudio.server.admission import AdmissionConfig
from rtaudio.server.background import BackgroundServer
from rtaudio.server.client import CaptionEvent, StreamClient
from rtaudio.server.config import ServerConfig, ServerLimits, SessionConfig
from rtaudio.stt.textnorm import normalize_english

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "server.json"
SPEECH = Path(os.environ.get("RTAUDIO_SPEECH_DIR", REPO.parent / "shared" / "speech")) / "dev"
STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16)


def load_programs(count: int, seconds: float) -> list[tuple[np.ndarray, str]]:
    """`count` different ~`seconds` programs of real speech (utterances with 0.6 s pauses) + references."""
    with open(SPEECH / "manifest.tsv", newline="") as f:
        rows = [r for r in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
                if r[0].startswith(("ljspeech_", "librispeech_", "vctk_", "libritts_")) and float(r[1]) < 12]
    pause = np.zeros(9600, np.float32)
    programs, i = [], 0
    for _ in range(count):
        parts, refs, total = [], [], 0.0
        while total < seconds:
            name, _, ref = rows[i % len(rows)][:3]
            i += 1
            audio, _ = read_audio(SPEECH / name, target_rate_hz=16000)
            parts += [audio, pause]
            refs.append(ref)
            total += len(audio) / 16000 + 0.6
        programs.append((np.concatenate(parts), " ".join(refs)))
    return programs


def wer(ref: str, hyp: str) -> float:
    return 100.0 * jiwer.wer(normalize_english(ref), normalize_english(hyp) or "<empty>")


async def one_client(url: str, audio: np.ndarray) -> dict[str, Any]:
    async with await StreamClient.connect(url, {"audio": {"sample_rate_hz": 16000}}) as client:
        events: list[CaptionEvent] = []

        async def collect() -> None:
            events.extend(await client.captions_until_ended(timeout_s=600))

        collector = asyncio.create_task(collect())
        await client.stream_audio(audio, chunk_ms=20, realtime=True)
        ended_at = time.monotonic()
        await client.end_audio()
        await collector
        final_delay = time.monotonic() - ended_at
    partial = [e.latency_ms for e in events if not e.caption.is_final and e.latency_ms is not None]
    server_side = [e.data["server_latency_ms"] for e in events if not e.caption.is_final]
    text = " ".join(e.caption.text for e in events if e.caption.is_final and e.caption.text)
    return {"partial_ms": partial, "server_ms": server_side, "final_delay_s": final_delay, "text": text}


async def run_step(url: str, programs: list[tuple[np.ndarray, str]]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(one_client(url, audio) for audio, _ in programs)))


def peer_direct(audio: np.ndarray, hub: Any) -> dict[str, Any]:
    """The engine alone: one stream fed at real-time pace by a thread, decoded as soon as ready."""
    from rtaudio.server.stream_adapter import open_caption_stream

    clock = SystemClock()
    stream = open_caption_stream(hub.recognizer("whisper-tiny.en"), hub.vad_model(), SessionConfig(), clock)
    lock = threading.Lock()
    pending: list[tuple[np.ndarray, float]] = []
    done = threading.Event()

    def feed() -> None:
        t0 = time.monotonic()
        for i in range(0, len(audio), 320):
            delay = t0 + i / 16000 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with lock:
                pending.append((audio[i:i + 320], time.monotonic()))
        done.set()

    feeder = threading.Thread(target=feed)
    feeder.start()
    latencies, finals = [], []
    while not (done.is_set() and not pending):
        with lock:
            batch, pending[:] = list(pending), []
        if not batch:
            time.sleep(0.005)
            continue
        for x, _ in batch:
            stream.accept_waveform(x)
        newest = batch[-1][1]
        while stream.is_ready():
            for c in stream.decode():
                if hasattr(c, "is_final") and not c.is_final:
                    latencies.append((time.monotonic() - newest) * 1000)
                elif hasattr(c, "is_final") and c.text:
                    finals.append(c.text)
    feeder.join()
    stream.input_finished()
    finals += [c.text for c in stream.finalize() if hasattr(c, "is_final") and c.text]
    return {"partial_ms": latencies, "text": " ".join(finals)}


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0, help="speech per client per step")
    ap.add_argument("--budget-ms", type=float, default=1500.0, help="p95 partial latency budget")
    ap.add_argument("--final-within-s", type=float, default=3.0, help="last final this soon after the audio ends")
    ap.add_argument("--decode-workers", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    args = ap.parse_args(argv)

    steps = [n for n in STEPS if n <= args.max_clients]
    programs = load_programs(max(steps), args.seconds)
    limits = ServerLimits(max_sessions=max(steps) + 2)
    rows: list[dict[str, Any]] = []
    # A capacity probe: admission control (bench/latency.py measures it) would refuse the clients past
    # its estimate, so it is off here and every step shows what the machine really does.
    with BackgroundServer(ServerConfig(port=0, decode_workers=args.decode_workers, preload_voice=False,
                                       limits=limits, admission=AdmissionConfig(enabled=False))) as srv:
        assert srv.server is not None
        peer = peer_direct(programs[0][0], srv.server.hub)
        peer_row = {"clients": 1, "what": "engine in-process (peer)", "p50_ms": pct(peer["partial_ms"], 50),
                    "p95_ms": pct(peer["partial_ms"], 95), "wer": wer(programs[0][1], peer["text"])}
        url = srv.ws_url + "/v1/stream"
        for n in steps:
            metrics = srv.server.metrics
            audio0, compute0 = metrics.audio_seconds.get(), metrics.decode_seconds.get()
            cpu0 = time.process_time()
            results = asyncio.run(run_step(url, programs[:n]))
            cpu_s = time.process_time() - cpu0
            partial = [x for r in results for x in r["partial_ms"]]
            server_side = [x for r in results for x in r["server_ms"]]
            row = {
                "clients": n, "what": "served over loopback",
                "p50_ms": pct(partial, 50), "p95_ms": pct(partial, 95), "server_p95_ms": pct(server_side, 95),
                "final_delay_max_s": max(r["final_delay_s"] for r in results),
                "rtf": (metrics.decode_seconds.get() - compute0) / max(1e-9, metrics.audio_seconds.get() - audio0),
                "cpu_per_audio_s": cpu_s / max(1e-9, metrics.audio_seconds.get() - audio0),
                "wer": float(np.mean([wer(ref, r["text"]) for r, (_, ref) in zip(results, programs, strict=False)])),
                "partials": len(partial),
            }
            row["real_time"] = bool(row["p95_ms"] <= args.budget_ms and row["final_delay_max_s"] <= args.final_within_s)
            rows.append(row)
            print(f"N={n}: p95 {row['p95_ms']:.0f} ms, last final {row['final_delay_max_s']:.1f} s after end, "
                  f"real time: {row['real_time']}", flush=True)
            if not row["real_time"]:
                break
    best = max((r["clients"] for r in rows if r["real_time"]), default=0)
    cpu_per_stream = float(np.median([r["cpu_per_audio_s"] for r in rows]))
    cores = os.cpu_count() or 1
    header = (f"{'clients':>7} {'what':<26} {'p50 ms':>7} {'p95 ms':>7} {'srv p95':>7} {'final s':>7} {'RTF':>5} "
              f"{'CPU/aud':>7} {'WER %':>6}  real time")
    print("\n" + header)
    print(f"{1:>7} {peer_row['what']:<26} {peer_row['p50_ms']:>7.0f} {peer_row['p95_ms']:>7.0f} {'':>7} {'':>7} {'':>5} {'':>7} {peer_row['wer']:>6.1f}")
    for r in rows:
        print(f"{r['clients']:>7} {r['what']:<26} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} {r['server_p95_ms']:>7.0f} "
              f"{r['final_delay_max_s']:>7.1f} {r['rtf']:>5.2f} {r['cpu_per_audio_s']:>7.2f} {r['wer']:>6.1f}  "
              f"{'yes' if r['real_time'] else 'NO'}")
    load = os.getloadavg()[0]
    print(f"\nlargest N in real time with p95 partial latency <= {args.budget_ms:.0f} ms: {best} "
          f"(load average {load:.1f} on {cores} cores)")
    print(f"CPU per second of audio per stream: {cpu_per_stream:.2f} s -> at most {cores / cpu_per_stream:.1f} "
          f"streams on {cores} idle cores")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": "bench/server.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_1m": os.getloadavg()[0]},
        "model": "whisper-tiny.en", "budget_ms": args.budget_ms, "final_within_s": args.final_within_s,
        "decode_workers": args.decode_workers, "seconds_per_client": args.seconds,
        "peer": peer_row, "steps": rows, "max_real_time_clients": best,
        "cpu_s_per_audio_s_per_stream": cpu_per_stream, "cpu_bound_streams": cores / cpu_per_stream,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
