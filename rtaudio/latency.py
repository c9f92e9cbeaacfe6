"""Per-stage latency records: what each pass spent where, and percentiles against the budgets.

Stage names (seconds per pass or per event, on the injected clock):
    accept       work when a block of audio arrives (copy + resample; the audio-callback share)
    ring_wait    server: audio waiting in the session ring for a decode worker ("queue" in /metrics)
    resample     server: input rate -> 16 kHz of one step
    vad          Silero VAD over the new frames of one decode
    encoder      log-mel + Whisper encoder of one pass
    decoder      token decoding of one pass
    align        word timestamps (cross-attention DTW) of one pass
    pass         one whole Whisper pass (encoder + decoder + align, plus any injected delay)
    stabilizer   LocalAgreement commit of one pass
    partial      end to end: arrival of the newest audio a partial used -> partial produced
    final        end to end: arrival of the end of speech -> endpoint final produced
    tts_first_chunk  speech request -> first audio chunk
    send         server: decode step done -> its captions rendered for the socket (event-loop hand-off)
`StageRecorder` keeps the recent samples of each (bounded) and hands new ones out for metrics.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

STAGES = ("accept", "ring_wait", "resample", "vad", "encoder", "decoder", "align", "pass", "stabilizer",
          "partial", "final", "tts_first_chunk", "send")


@dataclass(frozen=True)
class StageSummary:
    """Percentiles of one stage in ms, and whether its p95 keeps its budget (None: no budget)."""

    stage: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    budget_ms: float | None

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget_ms is None else self.p95_ms <= self.budget_ms

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "count": self.count, "p50_ms": round(self.p50_ms, 2),
                "p95_ms": round(self.p95_ms, 2), "p99_ms": round(self.p99_ms, 2), "max_ms": round(self.max_ms, 2),
                "budget_ms": self.budget_ms, "within_budget": self.within_budget}


class StageRecorder:
    """Recent durations by stage (the last `keep` of each), plus the ones not yet drained."""

    def __init__(self, keep: int = 4096) -> None:
        self.keep = keep
        self._samples: dict[str, collections.deque[float]] = {}
        self._new: collections.deque[tuple[str, float]] = collections.deque(maxlen=keep)

    def record(self, stage: str, seconds: float) -> None:
        self._samples.setdefault(stage, collections.deque(maxlen=self.keep)).append(seconds)
        self._new.append((stage, seconds))

    def drain(self) -> list[tuple[str, float]]:
        """(stage, seconds) recorded since the last drain (at most `keep`): for metrics."""
        out = list(self._new)
        self._new.clear()
        return out

    def samples(self, stage: str) -> list[float]:
        return list(self._samples.get(stage, ()))

    @property
    def stages(self) -> list[str]:
        """Stages seen, in STAGES order (unknown names last)."""
        order = {s: i for i, s in enumerate(STAGES)}
        return sorted(self._samples, key=lambda s: (order.get(s, len(order)), s))

    def summary(self, budgets_ms: Mapping[str, float] | None = None) -> list[StageSummary]:
        return [summarize(s, self.samples(s), (budgets_ms or {}).get(s)) for s in self.stages]


def summarize(stage: str, seconds: Iterable[float], budget_ms: float | None = None) -> StageSummary:
    ms = np.asarray(list(seconds), np.float64) * 1000
    if not ms.size:
        nan = float("nan")
        return StageSummary(stage, 0, nan, nan, nan, nan, budget_ms)
    p50, p95, p99 = (float(v) for v in np.percentile(ms, [50, 95, 99]))
    return StageSummary(stage, int(ms.size), p50, p95, p99, float(ms.max()), budget_ms)


def format_summary(rows: Iterable[StageSummary]) -> str:
    """A fixed-width table: stage, count, p50/p95/p99/max ms, budget and verdict."""
    lines = [f"{'stage':<16} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'budget':>8}  p95 ok"]
    for r in rows:
        budget = f"{r.budget_ms:>8.0f}" if r.budget_ms is not None else f"{'':>8}"
        ok = {None: "", True: "yes", False: "NO"}[r.within_budget]
        lines.append(f"{r.stage:<16} {r.count:>6} {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} {r.p99_ms:>8.1f} "
                     f"{r.max_ms:>8.1f} {budget}  {ok}")
    return "\n".join(lines)


class DelayedRecognizer:
    """A real recognizer on a slower machine: each window pass first waits `delay_s` on `pacer` (a
    `rtaudio.stt.pacing.Pacer`: real sleep, or a jump of virtual time). For load tests and
    `rtaudio bench latency --extra-pass-ms`; set `delay_s` at any time (0 = the load goes away)."""

    def __init__(self, recognizer: Any, pacer: Any, delay_s: float = 0.0) -> None:
        self.recognizer = recognizer
        self.pacer = pacer
        self.delay_s = delay_s
        self.passes = 0

    def transcribe_window(self, audio: np.ndarray, prompt: str | None = None, options: Any = None) -> Any:
        self.passes += 1
        if self.delay_s > 0:
            self.pacer.wait_until_ns(self.pacer.now_ns() + int(round(self.delay_s * 1e9)))
        return self.recognizer.transcribe_window(audio, prompt=prompt, options=options)

    def __getattr__(self, name: str) -> Any:  # name, sample_rate, ...: the wrapped recognizer's
        return getattr(self.recognizer, name)
