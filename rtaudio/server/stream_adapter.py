"""Adapts `rtaudio.stt.streaming.StreamingRecognizer` (or a `BatchSession` of the batched backend, which
has the same calls) to the server's `CaptionStream`.

What it adds: the session's settings mapped onto `StreamingConfig`, VAD events merged into the
decode output (as server `VadEvent`s, before the captions of the same decode), and a stream time
that keeps running across `reset()` and restarts (`offset_samples`), which the recognizer itself
starts again from zero.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from rtaudio.clock import Clock
from rtaudio.frames import Caption, Word
from rtaudio.server.config import SessionConfig
from rtaudio.server.engine import STREAM_RATE_HZ
from rtaudio.server.events import VadEvent
from rtaudio.stt.batch_service import BatchService, BatchSession
from rtaudio.stt.batch_stream import BatchStreamConfig
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.latency_budget import BudgetEvent, LatencyBudgetConfig
from rtaudio.stt.streaming import STREAMING_DECODE, StreamingConfig, StreamingRecognizer
from rtaudio.stt.vad import SpeechEnded, SpeechStarted, VadConfig

NO_ENDPOINT_SILENCE_MS = 10000  # vad.enabled = false: segments end by flush (or window trim) only


def session_vad(session: SessionConfig, base: VadConfig) -> VadConfig:
    """A session's VAD: the backend's defaults (`base`) with the session's threshold and endpointing."""
    silence_ms = session.vad_min_silence_ms if session.vad_enabled else NO_ENDPOINT_SILENCE_MS
    return replace(base, threshold=session.vad_threshold, min_silence_ms=silence_ms,
                   speech_pad_ms=min(base.speech_pad_ms, silence_ms))


def streaming_config(session: SessionConfig, budget: LatencyBudgetConfig | None = None) -> StreamingConfig:
    """Session settings (and the server's latency budget) -> recognizer settings."""
    vad = session_vad(session, VadConfig())
    # Greedy finals: a beam-5 final pass (the captioning default) is a burst of CPU at every endpoint that
    # the other sessions' partials wait behind. With it, 3 admitted sessions no longer kept the 600 ms p95
    # partial budget (883 / 595 / 761 ms, budget events) where greedy finals keep it (`bench/latency.py`).
    return StreamingConfig(partial_interval_ms=session.partial_interval_ms, vad=vad, final_beam_size=1,
                           budget=budget or LatencyBudgetConfig())


def _shift_caption(c: Caption, offset: int) -> Caption:
    if offset == 0:
        return c
    offset_s = offset / c.sample_rate
    words = tuple(Word(w.text, w.start_s + offset_s, w.end_s + offset_s, w.probability) for w in c.words)
    return replace(c, start_sample=c.start_sample + offset, end_sample=c.end_sample + offset, words=words)


class StreamAdapter:
    """`CaptionStream` over a StreamingRecognizer or BatchSession; times in samples at 16 kHz from the
    session start."""

    def __init__(self, stream: StreamingRecognizer | BatchSession, offset_samples: int = 0,
                 first_segment_id: int = 0) -> None:
        self.stream = stream
        self._offset = offset_samples  # stream time of the recognizer's sample 0
        self._accepted = 0  # samples given to the recognizer since its last reset
        self._segment_base = first_segment_id  # segment ids keep counting across resets
        self._last_segment = first_segment_id - 1
        self._in_speech_segment = first_segment_id

    @property
    def next_segment_id(self) -> int:
        return max(self._last_segment + 1, self._segment_base + self.stream.segment_id)

    def accept_waveform(self, samples: np.ndarray, sample_rate: int = STREAM_RATE_HZ,
                        arrival_ns: int | None = None) -> None:
        self.stream.accept_waveform(samples, sample_rate, arrival_ns)
        self._accepted += len(samples) * STREAM_RATE_HZ // sample_rate

    def is_ready(self) -> bool:
        return self.stream.is_ready()

    def warm_up(self) -> None:
        self.stream.warm_up()

    def stage_times(self) -> list[tuple[str, float]]:
        return self.stream.stage_times()

    def decode(self) -> list[Caption | VadEvent | BudgetEvent]:
        return self._collect(self.stream.decode())

    def finalize(self) -> list[Caption | VadEvent | BudgetEvent]:
        out: list[Caption] = self.stream.finalize()
        while self.stream.is_ready():  # after input_finished: the end-of-input flush
            out += self.stream.decode()
        return self._collect(out)

    def input_finished(self) -> None:
        self.stream.input_finished()

    def reset(self) -> None:
        """Drop the segment in progress; stream time and segment ids go on."""
        self._offset += self._accepted
        self._accepted = 0
        self._segment_base = self._last_segment + 1
        self.stream.reset()

    def _collect(self, captions: list[Caption]) -> list[Caption | VadEvent | BudgetEvent]:
        out: list[Caption | VadEvent | BudgetEvent] = []
        rate = STREAM_RATE_HZ
        for ev in self.stream.events():
            if isinstance(ev, SpeechStarted):
                self._in_speech_segment = self._segment_base + self.stream.segment_id
                out.append(VadEvent("speech_started", (ev.start_sample + self._offset) / rate,
                                    self._in_speech_segment))
            elif isinstance(ev, SpeechEnded):
                out.append(VadEvent("speech_stopped", (ev.end_sample + self._offset) / rate,
                                    self._in_speech_segment))
            elif isinstance(ev, BudgetEvent):
                out.append(ev)
        for c in captions:
            c = replace(_shift_caption(c, self._offset), segment_id=c.segment_id + self._segment_base)
            self._last_segment = max(self._last_segment, c.segment_id)
            out.append(c)
        return out


def decode_options(session: SessionConfig) -> DecodeOptions:
    """The engine's live decoding settings, in the session's language (None: English / detected)."""
    return replace(STREAMING_DECODE, language=session.language)


def open_caption_stream(recognizer: Any, vad_model: Any, session: SessionConfig, clock: Clock,
                        offset_samples: int = 0, first_segment_id: int = 0, budget: LatencyBudgetConfig | None = None,
                        fallback_recognizer: Any = None) -> StreamAdapter:
    stream = StreamingRecognizer(recognizer, streaming_config(session, budget), clock, vad_model=vad_model,
                                 decode_options=decode_options(session), fallback_recognizer=fallback_recognizer)
    return StreamAdapter(stream, offset_samples, first_segment_id)


def open_batched_stream(service: BatchService, session: SessionConfig, offset_samples: int = 0,
                        first_segment_id: int = 0) -> StreamAdapter:
    """A session on the batched backend: its VAD settings and partial cadence (`ModelHub.check` has refused
    languages other than English, which the batched decoder's start sequence cannot transcribe). The VAD's
    other settings are the batched backend's (`BatchStreamConfig`), whose WER the benchmarks measure, not
    the CPU path's."""
    batch = BatchStreamConfig()
    config = replace(batch, partial_interval_ms=max(50, session.partial_interval_ms), vad=session_vad(session, batch.vad))
    return StreamAdapter(service.open(config), offset_samples, first_segment_id)
