"""Drives many `BatchStream`s: batched VAD for all streams, then the most overdue decodes as one batch.

`BatchRunner.tick()` is one scheduler round; a server or the GPU benchmark calls it in a loop. The engine is
anything with `transcribe(windows: list[np.ndarray]) -> list[list[int]]` (token ids), e.g.
`rtaudio_models.whisper.batched.BatchedWhisper` on CUDA, so this module itself never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rtaudio.clock import Clock, SystemClock
from rtaudio.frames import Caption
from rtaudio.onnx_session import open_session
from rtaudio.stt.batch_stream import BatchScheduler, BatchStream, WindowRequest
from rtaudio.stt.vad import CONTEXT_SAMPLES, FRAME_SAMPLES


class BatchEngine(Protocol):
    def transcribe(self, windows: list[np.ndarray]) -> list[list[int]]: ...


class BatchedVad:
    """Silero VAD over many streams at once: each ONNX call scores the next frame of up to `chunk` streams.

    Chunks run on a thread pool (onnxruntime releases the GIL), so hundreds of streams use many cores."""

    def __init__(self, path: Path, threads: int = 2, chunk: int = 64) -> None:
        self._session = open_session(path, "the Silero VAD model", threads=1)
        self._sr = np.array(16000, dtype=np.int64)
        self._pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
        self.chunk = chunk
        self.states: dict[int, np.ndarray] = {}
        self.contexts: dict[int, np.ndarray] = {}

    def score(self, streams: list[BatchStream]) -> None:
        ready = [s for s in streams if s.vad_frames_due() > 0]
        chunks = [ready[i: i + self.chunk] for i in range(0, len(ready), self.chunk)]
        if self._pool is None or len(chunks) <= 1:
            for c in chunks:
                self._score_chunk(c)
        else:
            list(self._pool.map(self._score_chunk, chunks))

    def _score_chunk(self, streams: list[BatchStream]) -> None:
        while True:
            ready = [s for s in streams if s.vad_frames_due() > 0]
            if not ready:
                return
            batch = np.zeros((len(ready), CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
            state = np.zeros((2, len(ready), 128), dtype=np.float32)
            for i, s in enumerate(ready):
                batch[i, :CONTEXT_SAMPLES] = self.contexts.get(s.id, 0.0)
                batch[i, CONTEXT_SAMPLES:] = s.frame(s.vad.position_sample // FRAME_SAMPLES)
                state[:, i] = self.states.get(s.id, 0.0)
            probs, new_state = self._session.run(None, {"input": batch, "state": state, "sr": self._sr})
            for i, s in enumerate(ready):
                self.states[s.id] = new_state[:, i].copy()
                self.contexts[s.id] = batch[i, -CONTEXT_SAMPLES:].copy()
                s.accept_vad(probs[i: i + 1])

    def forget(self, stream_id: int) -> None:
        self.states.pop(stream_id, None)
        self.contexts.pop(stream_id, None)


@dataclass
class TickReport:
    batch_size: int
    waiting: int
    """Requests that were due but left for a later tick."""
    worst_lateness_s: float
    vad_s: float = 0.0
    decode_s: float = 0.0


class BatchRunner:
    """One scheduler round per `tick`: VAD over new audio, then the most overdue decodes as one batch.

    (Scoring the VAD on a side thread while the GPU decodes made ticks 15 % shorter on the H100 but the
    latency tail longer: the VAD's Python loop and the decode loop take turns on the GIL.)"""

    def __init__(self, engine: BatchEngine, decode: Callable[[list[int]], str], vad: BatchedVad,
                 scheduler: BatchScheduler, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.engine = engine
        self.decode = decode
        self.vad = vad
        self.scheduler = scheduler
        self.streams: dict[int, BatchStream] = {}

    def add(self, stream: BatchStream) -> None:
        self.streams[stream.id] = stream

    def remove(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self.vad.forget(stream_id)

    def tick(self, now_s: float) -> tuple[list[tuple[int, Caption]], TickReport]:
        """Score new audio, decode the chosen batch; returns (stream id, caption) pairs and a report."""
        streams = list(self.streams.values())
        t0 = self.clock.now_ns()
        self.vad.score(streams)
        t1 = self.clock.now_ns()
        requests: list[WindowRequest] = [r for s in streams if (r := s.request()) is not None]
        chosen = self.scheduler.pick(requests)
        worst = max((now_s - r.due_s for r in requests), default=0.0)
        captions: list[tuple[int, Caption]] = []
        if chosen:
            windows = [self.streams[r.stream_id].window(r) for r in chosen]
            for req, tokens in zip(chosen, self.engine.transcribe(windows), strict=True):
                for cap in self.streams[req.stream_id].apply(req, self.decode(tokens).strip()):
                    captions.append((req.stream_id, cap))
        t2 = self.clock.now_ns()
        return captions, TickReport(len(chosen), len(requests) - len(chosen), worst, (t1 - t0) / 1e9, (t2 - t1) / 1e9)
