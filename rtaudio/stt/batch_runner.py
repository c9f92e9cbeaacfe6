"""Drives many `BatchStream`s: batched VAD for all streams, then the most overdue decodes as one batch.

`BatchRunner.tick()` is one scheduler round; a server or the GPU benchmark calls it in a loop. The engine is
anything with `transcribe(windows, prompts) -> list[list[int]]` (token ids per window), e.g.
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
from rtaudio.stt.alignment import TimedWords
from rtaudio.stt.batch_stream import BatchScheduler, BatchStream, WindowRequest
from rtaudio.stt.vad import CONTEXT_SAMPLES, FRAME_SAMPLES, STATE_SHAPE

STATE_SIZE = STATE_SHAPE[2]


class BatchEngine(Protocol):
    def transcribe(self, windows: list[np.ndarray], prompts: list[str] | None = None,
                   finals: list[bool] | None = None) -> list[list[int]]: ...


class BatchedVad:
    """Silero VAD over many streams at once: ONNX call r of a chunk scores frame r of its streams that have one due.

    Each stream's recurrent state and context live in one row ("slot") of two shared arrays, so a call gathers
    and scatters them with one fancy index instead of per-stream Python copies, and each stream gets one
    `accept_vad` per tick with all its new frames: the Python work per tick is per stream, not per frame.
    Chunks of at most `chunk` streams run on a thread pool (onnxruntime releases the GIL). A row's output
    does not depend on the batch it is in, so the probabilities equal per-stream `SileroVad.push`'s bit for bit.

    With `device` (a PyTorch device, e.g. "cuda") the model's PyTorch twin (`rtaudio_models.vad.silero`, the
    same weights) scores all streams in one call per frame instead: on the batched GPU backend the VAD then
    leaves the host CPU, whose ONNX calls took 24-63 ms of a 400-stream round on the H100 host. Its
    probabilities differ from ONNX Runtime's by float rounding (< 1e-4)."""

    def __init__(self, path: Path, threads: int = 2, chunk: int = 64, device: str | None = None) -> None:
        self._session = open_session(path, "the Silero VAD model", threads=1) if device is None else None
        self._torch = _TorchVad(path, device) if device is not None else None
        self._sr = np.array(16000, dtype=np.int64)
        self._pool = ThreadPoolExecutor(max_workers=threads) if threads > 1 and device is None else None
        self.chunk = chunk if device is None else 1 << 30  # the twin takes every stream in one call
        self._slots: dict[int, int] = {}  # stream id -> row of _states / _contexts
        self._free: list[int] = []
        self._states = np.zeros((2, 0, STATE_SIZE), dtype=np.float32)
        self._contexts = np.zeros((0, CONTEXT_SAMPLES), dtype=np.float32)

    def score(self, streams: list[BatchStream]) -> None:
        due = [(s, n) for s in streams if (n := s.vad_frames_due()) > 0]
        due.sort(key=lambda sn: -sn[1])  # most frames first: call r of a chunk then scores a prefix of its rows
        slots = np.array([self._slot(s.id) for s, _ in due], dtype=np.intp)  # before the threads: may grow
        chunks = [(due[i: i + self.chunk], slots[i: i + self.chunk]) for i in range(0, len(due), self.chunk)]
        if self._pool is None or len(chunks) <= 1:
            for c in chunks:
                self._score_chunk(*c)
        else:
            list(self._pool.map(lambda c: self._score_chunk(*c), chunks))

    def _score_chunk(self, due: list[tuple[BatchStream, int]], slots: np.ndarray) -> None:
        counts = np.array([n for _, n in due])
        rounds = int(counts[0])
        # row i: the context, then all of stream i's due frames; frame r with its context is columns r*512 .. +576
        audio = np.empty((len(due), CONTEXT_SAMPLES + rounds * FRAME_SAMPLES), dtype=np.float32)
        audio[:, :CONTEXT_SAMPLES] = self._contexts[slots]
        for i, (s, n) in enumerate(due):
            audio[i, CONTEXT_SAMPLES: CONTEXT_SAMPLES + n * FRAME_SAMPLES] = s.frames(
                s.vad.position_sample // FRAME_SAMPLES, n)
        state = self._states[:, slots]
        probs = np.empty((len(due), rounds), dtype=np.float32)
        for r in range(rounds):
            m = int(np.count_nonzero(counts > r))
            x = np.ascontiguousarray(audio[:m, r * FRAME_SAMPLES: r * FRAME_SAMPLES + CONTEXT_SAMPLES + FRAME_SAMPLES])
            rows = np.ascontiguousarray(state[:, :m])
            if self._torch is not None:
                out, new_state = self._torch(x, rows)
            else:
                assert self._session is not None
                out, new_state = self._session.run(None, {"input": x, "state": rows, "sr": self._sr})
            probs[:m, r] = out[:, 0]
            state[:, :m] = new_state
        self._states[:, slots] = state
        last = counts[:, None] * FRAME_SAMPLES + np.arange(CONTEXT_SAMPLES)  # tail of each row's last frame
        self._contexts[slots] = audio[np.arange(len(due))[:, None], last]
        for i, (s, n) in enumerate(due):
            s.accept_vad(probs[i, :n])

    def _slot(self, stream_id: int) -> int:
        slot = self._slots.get(stream_id)
        if slot is None:
            if not self._free:
                self._grow()
            slot = self._free.pop()
            self._states[:, slot] = 0.0
            self._contexts[slot] = 0.0
            self._slots[stream_id] = slot
        return slot

    def _grow(self) -> None:
        old = self._contexts.shape[0]
        new = max(16, 2 * old)
        states = np.zeros((2, new, STATE_SIZE), dtype=np.float32)
        states[:, :old] = self._states
        contexts = np.zeros((new, CONTEXT_SAMPLES), dtype=np.float32)
        contexts[:old] = self._contexts
        self._states, self._contexts = states, contexts
        self._free.extend(range(new - 1, old - 1, -1))  # pop() hands out the lowest slot first

    def forget(self, stream_id: int) -> None:
        slot = self._slots.pop(stream_id, None)
        if slot is not None:
            self._free.append(slot)


class _TorchVad:
    """The Silero VAD's PyTorch twin on a device, called with numpy arrays like the ONNX session."""

    def __init__(self, path: Path, device: str) -> None:
        import torch
        from rtaudio_models.vad.silero import SileroVad16k

        self._torch = torch
        self.device = torch.device(device)
        self.model = SileroVad16k.from_onnx(path).to(self.device)

    def __call__(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            prob, new_state = self.model(torch.from_numpy(x).to(self.device), torch.from_numpy(state).to(self.device))
            return prob.cpu().numpy(), new_state.cpu().numpy()


def phases(chosen: list[WindowRequest]) -> list[list[WindowRequest]]:
    """A round's decodes in the order they run: partials, then finals. The engine decodes the two apart
    anyway (greedy vs beam search with word alignment, each a decode loop of its own), so the partials'
    captions need not wait for the finals' longer loop: the partial latency is a round's partial decode."""
    return [group for group in ([r for r in chosen if not r.final], [r for r in chosen if r.final]) if group]


@dataclass
class TickReport:
    batch_size: int
    waiting: int
    """Requests that were due but left for a later tick."""
    worst_lateness_s: float
    lateness_s: float = 0.0
    """The batch's lateness as the scheduler judges it (`BatchScheduler.lateness`): grows when it falls behind."""
    vad_s: float = 0.0
    decode_s: float = 0.0
    partials_s: float = 0.0
    """Of `decode_s`: the partials' phase, from the round's start to their captions (see `phases`)."""
    finals: int = 0
    greedy_finals: int = 0
    """Finals of this batch decoded greedily because it ran late (see `BatchScheduler`)."""


class BatchRunner:
    """One scheduler round per `tick`: VAD over new audio, then the most overdue decodes as one batch.

    (Scoring the VAD on a side thread while the GPU decodes made ticks 15 % shorter on the H100 but the
    latency tail longer: the VAD's Python loop and the decode loop take turns on the GIL.)"""

    def __init__(self, engine: BatchEngine, decode: Callable[[list[int]], str], vad: BatchedVad,
                 scheduler: BatchScheduler, clock: Clock | None = None,
                 words: Callable[[list[int]], TimedWords | None] | None = None) -> None:
        self.clock = clock or SystemClock()
        self.engine = engine
        self.decode = decode
        """A row's token ids -> its text."""
        self.words = words
        """A final's row -> its words timed from the window's start, where the engine timed them (e.g.
        `rtaudio.stt.alignment.timed_row_words`); None: finals are untimed."""
        self.vad = vad
        self.scheduler = scheduler
        self.streams: dict[int, BatchStream] = {}

    def add(self, stream: BatchStream) -> None:
        stream.timed_finals = self.words is not None
        self.streams[stream.id] = stream

    def remove(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self.vad.forget(stream_id)

    def tick(self, now_s: float, emit: Callable[[list[tuple[int, Caption]]], None] | None = None,
             ) -> tuple[list[tuple[int, Caption]], TickReport]:
        """Score new audio, decode the chosen batch; returns (stream id, caption) pairs and a report. The
        partials are decoded and handed to `emit` before the finals are (see `phases`)."""
        chosen, report = self.plan(now_s)
        t1 = self.clock.now_ns()
        captions: list[tuple[int, Caption]] = []
        for phase in phases(chosen):
            done = self.decode_batch(phase)
            if emit is not None:
                emit(done)
            captions += done
            if not phase[0].final:
                report.partials_s = (self.clock.now_ns() - t1) / 1e9
        report.decode_s = (self.clock.now_ns() - t1) / 1e9
        return captions, report

    def plan(self, now_s: float) -> tuple[list[WindowRequest], TickReport]:
        """Score new audio with the VAD and choose the next batch (the part that reads and changes streams)."""
        streams = list(self.streams.values())
        t0 = self.clock.now_ns()
        self.vad.score(streams)
        t1 = self.clock.now_ns()
        requests: list[WindowRequest] = [r for s in streams if (r := s.request()) is not None]
        chosen = self.scheduler.pick(requests, now_s)
        for r in chosen:
            self.streams[r.stream_id].taken(r)
        worst = max((now_s - r.due_s for r in requests), default=0.0)
        greedy = sum(r.final and not r.beam for r in chosen)
        return chosen, TickReport(len(chosen), len(requests) - len(chosen), worst,
                                  BatchScheduler.lateness(chosen, now_s) if chosen else 0.0, (t1 - t0) / 1e9,
                                  finals=sum(r.final for r in chosen), greedy_finals=greedy)

    def inputs(self, chosen: list[WindowRequest]) -> tuple[list[np.ndarray], list[str] | None, list[bool]]:
        """The chosen requests' audio (copies: streams may take more audio meanwhile), prompts and which are
        finals to beam-search: `engine.transcribe`'s arguments."""
        prompts = [r.decode_prompt for r in chosen]
        windows = [self.streams[r.stream_id].window(r).copy() for r in chosen]
        return windows, prompts if any(prompts) else None, [r.final and r.beam for r in chosen]

    def apply(self, chosen: list[WindowRequest], tokens: list[list[int]]) -> list[tuple[int, Caption]]:
        """Hand each stream the words decoded for it; (stream id, caption) pairs."""
        captions: list[tuple[int, Caption]] = []
        for req, row in zip(chosen, tokens, strict=True):
            stream = self.streams.get(req.stream_id)
            if stream is not None:  # None: it left while its window was decoded
                timed = self.words(row) if req.final and self.words is not None else None
                captions += [(req.stream_id, cap) for cap in stream.apply(req, self.decode(row).strip(), timed)]
        return captions

    def decode_batch(self, chosen: list[WindowRequest]) -> list[tuple[int, Caption]]:
        """Decode these requests as one batch and hand each stream its words; (stream id, caption) pairs."""
        if not chosen:
            return []
        windows, prompts, finals = self.inputs(chosen)
        return self.apply(chosen, self.engine.transcribe(windows, prompts=prompts, finals=finals))
