"""`rtaudio bench latency FILE`: stream a recording through the live recognizer and report, per stage,
p50 / p95 / p99 latency against the latency budget, plus the degradation steps it took.

The file arrives in fixed blocks (`--block-ms`, as from a sound card) at real-time pace, on a virtual
clock by default (idle time skipped, compute charged at its real duration: the same latencies as
live, without waiting) or really (`--realtime`). `--extra-pass-ms` makes every Whisper pass that much
slower (a slower machine) so the degradation ladder can be watched; `--tts TEXT` also times the
voice's first chunk against its budget.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from rtaudio.latency import DelayedRecognizer, StageSummary, format_summary, summarize

HELP = "benchmarks: `latency FILE` prints per-stage p50/p95/p99 latency of live captioning against the budget"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench", metavar="<benchmark>", required=True)
    lat = sub.add_parser("latency", help="per-stage latency of a file streamed through the live recognizer",
                         description=__doc__)
    lat.add_argument("file", type=Path, help="audio or video file (speech)")
    lat.add_argument("--model", default="whisper-tiny.en", help="speech model (default: %(default)s)")
    lat.add_argument("--fallback-model", default=None, help="smaller model for the ladder's last rung")
    lat.add_argument("--realtime", action="store_true", help="wait really instead of skipping idle time")
    lat.add_argument("--block-ms", type=int, default=20, help="audio block size (default: %(default)s)")
    lat.add_argument("--interval-ms", type=int, default=500, help="partial cadence (default: %(default)s)")
    lat.add_argument("--threads", type=int, default=1, help="compute threads per pass (default: %(default)s)")
    lat.add_argument("--extra-pass-ms", type=float, default=0.0, help="added to every Whisper pass (load test)")
    lat.add_argument("--partial-budget-ms", type=int, default=None, help="override the partial budget")
    lat.add_argument("--tts", default=None, metavar="TEXT", help="also time the first TTS chunk of TEXT (5 runs)")
    lat.add_argument("--json", type=Path, default=None, help="also write the summary as JSON here")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rtaudio.io.files import read_audio
    from rtaudio.stt.latency_budget import BudgetEvent, LatencyBudgetConfig
    from rtaudio.stt.pacing import RealTimePacer, VirtualClock, play
    from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer
    from rtaudio.stt.streaming import StreamingConfig, StreamingRecognizer

    audio, _ = read_audio(args.file, target_rate_hz=16000)
    budget = LatencyBudgetConfig(fallback_model=args.fallback_model)
    if args.partial_budget_ms is not None:
        budget = replace(budget, partial_ms=args.partial_budget_ms)
    pacer: Any = RealTimePacer() if args.realtime else VirtualClock()
    rconfig = RecognizerConfig(threads=args.threads, spin=False)
    recognizer = WhisperRecognizer.load(args.model, rconfig)
    fallback = WhisperRecognizer.load(args.fallback_model, rconfig) if args.fallback_model else None
    for r in (recognizer, fallback):
        if r is not None:
            r.transcribe_window(np.zeros(16000, np.float32))  # onnxruntime's first-run setup
    slowed = DelayedRecognizer(recognizer, pacer, args.extra_pass_ms / 1000)
    stream = StreamingRecognizer(slowed, StreamingConfig(partial_interval_ms=args.interval_ms, budget=budget), pacer,
                                 fallback_recognizer=fallback)
    steps: list[tuple[float, BudgetEvent]] = []
    t0 = pacer.now_ns()
    for out in play(stream, audio, pacer, args.block_ms, args.block_ms):
        steps += [(out.audio_s, e) for e in out.events if isinstance(e, BudgetEvent)]
    wall_s = (pacer.now_ns() - t0) / 1e9
    budgets = budget.stage_budgets_ms(args.block_ms)
    rows = stream.stages.summary(budgets)
    if args.tts:
        rows.append(_tts_first_chunk(args.tts, budgets["tts_first_chunk"]))
    audio_s = len(audio) / 16000
    print(f"{args.file.name}: {audio_s:.1f} s of audio, {stream.passes} passes, model {args.model}"
          f"{f' (+{args.extra_pass_ms:g} ms per pass)' if args.extra_pass_ms else ''}, "
          f"{'real time' if args.realtime else 'virtual real time'} ({wall_s:.1f} s)")
    print(format_summary(rows))
    for at_s, e in steps:
        print(f"  at {at_s:6.1f} s: {'down' if e.degraded and e.level else 'up':<4} to rung {e.level} {e.rung} "
              f"(lag {1000 * e.lag_s:.0f} ms, partials every {e.interval_ms} ms)")
    checked = [r for r in rows if r.within_budget is not None]
    print(f"within budget (p95): {sum(bool(r.within_budget) for r in checked)} of {len(checked)} stages; "
          f"{len(steps)} ladder steps, final rung {int(stream.rung)}, {stream.skipped_partials} partials skipped")
    if args.json:
        args.json.write_text(json.dumps({
            "file": str(args.file), "audio_s": audio_s, "model": args.model, "realtime": args.realtime,
            "extra_pass_ms": args.extra_pass_ms, "passes": stream.passes, "budget": budgets,
            "stages": [r.to_json() for r in rows],
            "steps": [{"audio_s": round(t, 2), "level": e.level, "rung": e.rung, "lag_ms": round(1000 * e.lag_s, 1)}
                      for t, e in steps],
        }, indent=2) + "\n")
    return 0


def _tts_first_chunk(text: str, budget_ms: float, runs: int = 5) -> StageSummary:
    from rtaudio.clock import SystemClock
    from rtaudio.tts.voice import PiperVoice

    voice = PiperVoice.load()
    voice.warm_up()
    clock = SystemClock()
    firsts = []
    for _ in range(runs):
        t0 = clock.now_ns()
        chunks = voice.stream(text)
        next(iter(chunks))
        firsts.append((clock.now_ns() - t0) / 1e9)
        for _ in chunks:  # let the request finish before the next one
            pass
    return summarize("tts_first_chunk", firsts, budget_ms)
