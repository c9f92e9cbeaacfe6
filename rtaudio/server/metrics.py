"""Server metrics in the Prometheus text format (version 0.0.4), without a client library.

`ServerMetrics` names everything the server measures: sessions, audio and compute seconds (RTF),
per-stage latency histograms, drops and errors. Safe to update from worker threads.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence
from typing import Any

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    esc = [v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for v in values]
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, esc, strict=True)) + "}"


def _num(x: float) -> str:
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: Sequence[str]) -> tuple[str, ...]:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        return tuple(labels)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, value: float = 1.0, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + value

    def get(self, *labels: str) -> float:
        return self._values.get(tuple(labels), 0.0)

    def remove(self, *labels: str) -> None:
        """Forget one label set (a closed session's series)."""
        with self._lock:
            self._values.pop(self._key(labels), None)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.labelnames, k)} {_num(v)}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = value


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[tuple[str, ...], list[int]] = {}
        self._sums: dict[tuple[str, ...], float] = {}

    def observe(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        i = bisect.bisect_left(self.buckets, value)
        with self._lock:
            counts = self._counts.setdefault(key, [0] * (len(self.buckets) + 1))
            counts[i] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    def count(self, *labels: str) -> int:
        return sum(self._counts.get(tuple(labels), []))

    def remove(self, *labels: str) -> None:
        """Forget one label set (a closed session's series)."""
        key = self._key(labels)
        with self._lock:
            self._counts.pop(key, None)
            self._sums.pop(key, None)

    def quantile(self, q: float, *labels: str) -> float:
        """Upper bucket bound holding the q-quantile (coarse; for logs and tests)."""
        counts = self._counts.get(tuple(labels))
        if not counts:
            return float("nan")
        target, seen = q * sum(counts), 0
        for bound, c in zip((*self.buckets, math.inf), counts, strict=True):
            seen += c
            if seen >= target:
                return bound
        return math.inf

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, list(v), self._sums[k]) for k, v in self._counts.items())
        for key, counts, total in items:
            cumulative = 0
            for bound, c in zip((*self.buckets, math.inf), counts, strict=True):
                cumulative += c
                lab = _labels((*self.labelnames, "le"), (*key, _num(bound)))
                lines.append(f"{self.name}_bucket{lab} {cumulative}")
            lab = _labels(self.labelnames, key)
            lines.append(f"{self.name}_sum{lab} {_num(total)}")
            lines.append(f"{self.name}_count{lab} {cumulative}")
        return lines


class ServerMetrics:
    """Everything `/metrics` reports."""

    def __init__(self) -> None:
        self.sessions_active = Gauge("rtaudio_sessions_active", "Open websocket sessions.", ["endpoint"])
        self.sessions_total = Counter("rtaudio_sessions_total", "Sessions opened since start.", ["endpoint"])
        self.sessions_refused = Counter("rtaudio_sessions_refused_total", "Connections refused.", ["reason"])
        self.audio_seconds = Counter("rtaudio_audio_seconds_total", "Seconds of client audio captioned.")
        self.decode_seconds = Counter("rtaudio_decode_seconds_total", "Worker seconds spent in recognizer steps.")
        self.rtf = Gauge("rtaudio_rtf", "Real-time factor of the last decode steps (compute s / audio s, < 1 keeps up).")
        self.captions = Counter("rtaudio_captions_total", "Caption events sent.", ["stability"])
        self.latency = Histogram("rtaudio_stage_latency_seconds",
                                 "Per-stage latency: queue (step submitted to worker start), ring_wait (audio "
                                 "arrival to step start), decode (one recognizer step), resample, vad, encoder, "
                                 "decoder, align, pass, stabilizer, send (step end to caption sent), partial and "
                                 "final (audio arrival to caption sent), tts_first_chunk, http_transcription.",
                                 ["stage"])
        self.session_latency = Histogram("rtaudio_session_latency_seconds",
                                         "Per open session: partial and final (audio arrival to caption sent) "
                                         "and pass (one Whisper pass).", ["session", "stage"])
        self.session_rung = Gauge("rtaudio_session_degradation_rung",
                                  "Per open session: degradation ladder rung in force (0 full quality ... "
                                  "4 smaller model).", ["session"])
        self.budget_steps = Counter("rtaudio_budget_steps_total",
                                    "Degradation ladder steps taken by sessions, by direction and new rung.",
                                    ["direction", "rung"])
        self.admission_cost = Gauge("rtaudio_admission_session_cost",
                                    "Measured CPU seconds per audio second of one live session.")
        self.admission_capacity = Gauge("rtaudio_admission_capacity_sessions",
                                        "Live sessions the measured cost allows.")
        self.drops = Counter("rtaudio_dropped_total", "Things dropped by back-pressure policy.", ["kind"])
        self.errors = Counter("rtaudio_errors_total", "Errors by stable code.", ["code"])
        self.tts_seconds = Counter("rtaudio_tts_audio_seconds_total", "Seconds of speech synthesized.")
        self.http_requests = Counter("rtaudio_http_requests_total", "HTTP requests.", ["path", "status"])
        self.assistant_latency = Histogram("rtaudio_assistant_turn_latency_seconds",
                                           "Voice assistant turns, mic-stream seconds after the end of the user's "
                                           "speech: end_of_turn (turn decided), first_token (responder), "
                                           "first_audio (first reply sample sent: voice-to-voice).", ["stage"])
        self.assistant_turns = Counter("rtaudio_assistant_turns_total",
                                       "Voice assistant turns by outcome (answered, interrupted, silent).",
                                       ["outcome"])
        self._all: list[_Metric] = [
            self.sessions_active, self.sessions_total, self.sessions_refused, self.audio_seconds,
            self.decode_seconds, self.rtf, self.captions, self.latency, self.drops, self.errors,
            self.tts_seconds, self.http_requests, self.session_latency, self.session_rung, self.budget_steps,
            self.admission_cost, self.admission_capacity,
        ]
        self._all += [self.assistant_latency, self.assistant_turns]
        self.batch_rounds = Gauge("rtaudio_batch_rounds", "Rounds of the batched (GPU) recognizer.", ["model"])
        self.batch_finals = Gauge("rtaudio_batch_finals", "Finals the batched recognizer decoded, by decode: beam, or "
                                  "greedy because its batch ran late.", ["model", "decode"])
        self.batch_round_seconds = Gauge("rtaudio_batch_round_seconds", "Recent rounds of the batched recognizer: "
                                         "duration quantiles (VAD, scheduling, decode).", ["model", "quantile"])
        self.batch_lateness = Gauge("rtaudio_batch_lateness_seconds", "Recent rounds of the batched recognizer: "
                                    "quantiles of the batch's lateness (its median request's).", ["model", "quantile"])
        self._all += [self.batch_rounds, self.batch_finals, self.batch_round_seconds, self.batch_lateness]

    def set_batch(self, model: str, stats: Any) -> None:
        """The batched recognizer's rounds (a `RoundStats`): how often finals lost their beam search because
        the batch ran late, and how long recent rounds took and how late they ran."""
        self.batch_rounds.set(stats.rounds, model)
        self.batch_finals.set(stats.finals - stats.greedy_finals, model, "beam")
        self.batch_finals.set(stats.greedy_finals, model, "greedy")
        for gauge, values in ((self.batch_round_seconds, stats.round_s), (self.batch_lateness, stats.lateness_s)):
            ordered = sorted(values)
            for q in (0.5, 0.99):
                gauge.set(ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0, model, str(q))

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._all:
            lines += metric.render()
        return "\n".join(lines) + "\n"
