"""Live streams of many callers on one batching engine (the server's GPU backend).

`BatchService` runs `BatchRunner` rounds on its own thread: VAD over every stream's new audio, then the most
overdue windows of all streams as one batch. Each caller holds a `BatchSession`, which looks to the server
like a `StreamingRecognizer` (audio in from the caller's thread, captions and VAD events out), so the
server's `StreamAdapter` wraps either. One lock guards the streams; the engine's batch runs outside it, so
a caller adding audio never waits for the GPU.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtaudio.clock import Clock, SystemClock
from rtaudio.errors import BackendError, ModelNotFetchedError, SampleRateError
from rtaudio.frames import Caption
from rtaudio.stt import alignment
from rtaudio.stt.alignment import TimedWords, timed_row_words
from rtaudio.stt.batch_runner import BatchedVad, BatchEngine, BatchRunner, TickReport, phases
from rtaudio.stt.batch_stream import (
    SAMPLE_RATE_HZ,
    BatchScheduler,
    BatchStream,
    BatchStreamConfig,
    WindowRequest,
)
from rtaudio.stt.engine_host import EngineAddress, EngineHost, RemoteEngine, RemoteRound
from rtaudio.stt.tokenizer import WhisperTokenizer
from rtaudio.stt.vad import SpeechEnded, SpeechStarted

log = logging.getLogger("rtaudio.stt.batch")


@dataclass
class RoundStats:
    """What a service's rounds did, for the server's /metrics: how many, how many finals lost their beam
    search because the batch ran late (`BatchScheduler`, or an engine host's final lane), and the recent
    rounds' durations and lateness."""

    rounds: int = 0
    finals: int = 0
    greedy_finals: int = 0
    round_s: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1024))
    lateness_s: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1024))

    def record(self, report: TickReport, round_s: float) -> None:
        self.rounds += 1
        self.finals += report.finals
        self.greedy_finals += report.greedy_finals
        self.round_s.append(round_s)
        self.lateness_s.append(report.lateness_s)

    def copy(self) -> RoundStats:
        return RoundStats(self.rounds, self.finals, self.greedy_finals, collections.deque(self.round_s, maxlen=1024),
                          collections.deque(self.lateness_s, maxlen=1024))


class BatchService:
    """Owns the runner and its thread; `open()` a session per live stream, `close()` when done."""

    def __init__(self, engine: BatchEngine, decode: Callable[[list[int]], str], vad: BatchedVad,
                 config: BatchStreamConfig | None = None, scheduler: BatchScheduler | None = None,
                 clock: Clock | None = None, idle_sleep_s: float = 0.005,
                 words: Callable[[list[int]], TimedWords | None] | None = None) -> None:
        self.clock = clock or SystemClock()
        self.config = config or BatchStreamConfig()
        self.runner = BatchRunner(engine, decode, vad, scheduler or BatchScheduler(), self.clock, words)
        self.idle_sleep_s = idle_sleep_s
        self._stats = RoundStats()
        self.error: BaseException | None = None
        """Set if a round failed: the service stops and every session's next call raises."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._next_id = 0
        self._outputs: dict[int, list[Caption]] = {}
        self._closed: collections.deque[int] = collections.deque()
        self._stop = threading.Event()
        self._flight: list[_Flight] = []  # rounds in the engine process (a RemoteEngine's), oldest first
        self.on_stop: list[Callable[[], None]] = []
        """Called by `stop` after the service's own thread: e.g. an engine host it brought along."""
        self._thread = threading.Thread(target=self._run, name="rtaudio-batch", daemon=True)
        self._thread.start()

    def now_s(self) -> float:
        return self.clock.now_ns() / 1e9

    def open(self, config: BatchStreamConfig | None = None) -> BatchSession:
        with self._lock:
            self._check()
            stream = BatchStream(self._next_id, config or self.config, origin_s=self.now_s())
            self._next_id += 1
            self.runner.add(stream)
            self._outputs[stream.id] = []
        session = BatchSession(self, stream)
        weakref.finalize(session, self.close, stream.id)  # a server drops sessions without closing them
        return session

    def close(self, stream_id: int) -> None:
        """Forget a stream (at the start of the next round). Takes no lock: it also runs from the garbage
        collector, which may strike in any thread, including one that holds the lock."""
        self._closed.append(stream_id)

    def _forget_closed(self) -> None:
        while self._closed:
            stream_id = self._closed.popleft()
            self.runner.remove(stream_id)
            self._outputs.pop(stream_id, None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        close = getattr(self.runner.engine, "close", None)  # a RemoteEngine's pipe and shared memory
        if close is not None:
            close()
        for stop in self.on_stop:
            stop()

    @property
    def streams(self) -> int:
        """Streams served (closed ones leave at the next round)."""
        with self._lock:
            return len(self.runner.streams) - len(self._closed)

    def _check(self) -> None:
        if self.error is not None:
            raise BackendError(f"the batched recognizer failed: {self.error}") from self.error

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.round()
            except BaseException as e:  # noqa: BLE001 - reported to every session, not lost on this thread
                log.error("batched recognizer failed", exc_info=True)
                with self._lock:
                    self.error = e
                    self._changed.notify_all()
                return
            if not worked:
                self._stop.wait(self.idle_sleep_s)

    def round(self) -> bool:
        """One round (VAD, then one batch); False if there was nothing to do."""
        started = self.clock.now_ns()
        engine = self.runner.engine
        remote = isinstance(engine, RemoteEngine)
        with self._lock:
            self._forget_closed()
            chosen, report = self.runner.plan(self.now_s())
            # an engine process gets the round whole (it splits it into its lanes), this process's engine
            # the partials first: their captions go out before the finals' beam search
            inputs = [(phase, self.runner.inputs(phase)) for phase in ([chosen] if remote else phases(chosen)) if phase]
            self._changed.notify_all()  # VAD events, and finals closed by the VAD
        if isinstance(engine, RemoteEngine):
            worked = self._remote_round(engine, inputs[0] if inputs else None)
        else:
            for phase, (windows, prompts, finals) in inputs:  # partials first: their captions go out at once
                self._publish(phase, engine.transcribe(windows, prompts=prompts, finals=finals))
            worked = bool(chosen)
        if chosen:
            with self._lock:
                self._stats.record(report, (self.clock.now_ns() - started) / 1e9)
        return worked

    def stats(self) -> RoundStats:
        """A copy of the rounds' statistics so far (safe from any thread)."""
        with self._lock:
            return self._stats.copy()

    def _remote_round(self, engine: RemoteEngine,
                      sent: tuple[list[WindowRequest], tuple[list[np.ndarray], list[str] | None, list[bool]]] | None,
                      ) -> bool:
        """A round through the engine process: sent whole (the host merges the rounds of all front-ends), its
        partials' captions out as soon as they are back, then on to the next round while its finals are still
        decoded in the host's final lane (they are not asked for again, and their streams' next segments'
        partials go on, see `BatchStream.taken`); finals are published as they come back."""
        if sent is not None:
            requests, (windows, prompts, finals) = sent
            rnd = engine.submit(windows, prompts, finals)
            self._flight.append(_Flight(requests, rnd))
            engine.wait(rnd, greedy_only=True)
        elif not self._flight:
            return False
        elif not engine.poll(self.idle_sleep_s):
            return True  # (waiting for the finals was this round's pause)
        for f in list(self._flight):
            if f.rnd.error is not None:
                raise BackendError(f"the engine process failed this batch: {f.rnd.error}")
            if not f.greedy_published and f.rnd.greedy_back:
                self._publish([f.requests[i] for i in f.rnd.greedy_rows], f.rnd.greedy_tokens())
                f.greedy_published = True
            if f.rnd.done:
                assert f.rnd.tokens is not None
                rows = [i for i, flag in enumerate(f.rnd.finals) if flag]
                self._publish([f.requests[i] for i in rows], [f.rnd.tokens[i] for i in rows])
                self._flight.remove(f)
                if f.rnd.finals_greedy:
                    with self._lock:
                        self._stats.greedy_finals += len(rows)
        return True

    def _publish(self, requests: list[WindowRequest], tokens: list[list[int]]) -> None:
        """Hand the streams their decoded words; their captions go to the sessions' queues."""
        if not requests:
            return
        with self._lock:
            for stream_id, caption in self.runner.apply(requests, tokens):
                self._outputs[stream_id].append(caption)
            self._changed.notify_all()


@dataclass
class _Flight:
    """A round sent to the engine process and not yet wholly published."""

    requests: list[WindowRequest]
    rnd: RemoteRound
    greedy_published: bool = False


class BatchSession:
    """One live stream on a `BatchService`, with `StreamingRecognizer`'s calls (see the module docstring)."""

    def __init__(self, service: BatchService, stream: BatchStream) -> None:
        self.service = service
        self.stream = stream
        self._events: list[SpeechStarted | SpeechEnded] = []

    def accept_waveform(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE_HZ,
                        arrival_ns: int | None = None) -> None:
        if sample_rate != SAMPLE_RATE_HZ:
            raise SampleRateError(f"the batched recognizer takes {SAMPLE_RATE_HZ} Hz audio, got {sample_rate} Hz")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        with self.service._lock:
            self.service._check()
            self.stream.accept(x)
            self.stream.arrived(self.service.now_s())

    def is_ready(self) -> bool:
        """Captions or VAD events wait to be taken (they come from the service's thread)."""
        with self.service._lock:
            return bool(self.service._outputs.get(self.stream.id) or self.stream.events)

    def decode(self) -> list[Caption]:
        """The captions produced since the last call; the VAD events so far move to `events()`."""
        with self.service._lock:
            self.service._check()
            out = self.service._outputs.get(self.stream.id, [])
            self.service._outputs[self.stream.id] = []
            self._events += self.stream.events
            self.stream.events = []
            return out

    def events(self) -> list[SpeechStarted | SpeechEnded]:
        """VAD events taken by `decode()` (as `StreamingRecognizer.events()`: in stream order)."""
        out, self._events = self._events, []
        return out

    def input_finished(self) -> None:
        with self.service._lock:
            self.stream.close_segment(end_of_input=True)

    def finalize(self, timeout_s: float = 10.0) -> list[Caption]:
        """End the segment in progress; returns once its final (and every earlier one) is decoded."""
        with self.service._changed:
            self.stream.close_segment()
            if not self.service._changed.wait_for(lambda: self.stream.idle or self.service.error is not None,
                                                  timeout_s):
                raise BackendError(f"the batched recognizer did not finalize within {timeout_s:.0f} s")
        return self.decode()

    def reset(self) -> None:
        with self.service._lock:
            self.stream.drop_segment()
            self.service._outputs[self.stream.id] = [c for c in self.service._outputs.get(self.stream.id, [])
                                                     if c.is_final]

    def warm_up(self) -> None:
        """Nothing per session: the service warms its engine once."""

    def stage_times(self) -> list[tuple[str, float]]:
        return []

    @property
    def segment_id(self) -> int:
        """The segment that speech now goes into (see `BatchStream.speech_segment_id`)."""
        return self.stream.speech_segment_id


def model_paths(model: str, pack: Path | None = None) -> tuple[Path, Path]:
    """(Whisper model folder, Silero VAD file) from the store (fetched and converted on first use) or, on a GPU
    host without network, from `pack`, a folder written by `tools/gpu_pack.py`."""
    from rtaudio.modelstore import ensure_model

    if pack is not None:
        if not (pack / model / "compact.json").exists():
            raise ModelNotFetchedError(f"{pack / model} holds no packed model (python tools/gpu_pack.py --model {model})")
        return pack / model, pack / "silero_vad.onnx"
    return ensure_model(model), ensure_model("silero-vad") / "raw" / "silero_vad.onnx"


def load_engine_for(model: str, device: str = "auto", pack: Path | None = None) -> BatchEngine:
    """The batched PyTorch engine of a model, warmed up: CUDA with fp16 and CUDA graphs where torch sees a GPU
    ("auto"), else the CPU (slow; for tests)."""
    try:
        import torch
        from rtaudio_models.whisper.batched import load_engine
    except ImportError as e:
        raise BackendError(f"the batched backend needs PyTorch and rtaudio_models (pip install 'rtaudio[export]'): {e}") from e

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    engine, _ = load_engine(model_paths(model, pack)[0], device)
    engine.transcribe([np.zeros(SAMPLE_RATE_HZ, np.float32)])  # first-call set-up (kernels, graphs) now
    engine.warm_up()  # on a GPU every fixed shape's CUDA graph (~a minute): none is captured mid-stream
    alignment.warmup()  # the finals' word times: compiled DTW
    return engine


def _service(engine: BatchEngine, model: str, pack: Path | None, config: BatchStreamConfig | None,
             clock: Clock | None, scheduler: BatchScheduler | None = None) -> BatchService:
    """A service on `engine` with the model's tokenizer and its own batched VAD."""
    folder, vad_path = model_paths(model, pack)
    info = json.loads((folder / "whisper.json").read_text())
    tokenizer = WhisperTokenizer.from_file(folder / "tokenizer.json", info["dims"]["n_vocab"])
    vad = BatchedVad(vad_path, threads=min(8, os.cpu_count() or 1), chunk=48)
    return BatchService(engine, tokenizer.decode, vad, config, scheduler, clock=clock,
                        words=functools.partial(timed_row_words, tokenizer))


def load_service(model: str, device: str = "auto", config: BatchStreamConfig | None = None,
                 clock: Clock | None = None, pack: Path | None = None) -> BatchService:
    """The batched backend for a model in this process (see `load_engine_for` and `model_paths`): its engine
    behind an `EngineHost` on threads of this process, so partials and finals are decoded in two lanes as
    with an engine process of their own (`remote_service`)."""
    host = EngineHost({model: load_engine_for(model, device, pack)}, EngineAddress.fresh())
    threading.Thread(target=host.serve_forever, name="rtaudio-engine-host", daemon=True).start()
    service = remote_service(model, host.address, config, clock, pack)
    service.on_stop.append(host.stop)
    return service


def one_lane_service(model: str, device: str = "auto", config: BatchStreamConfig | None = None,
                     clock: Clock | None = None, pack: Path | None = None) -> BatchService:
    """The batched backend calling its engine directly, a round's partials then its finals on the service's
    thread, as the bench's scheduler does (`BatchRunner.tick`); finals decode greedily while the batch runs
    late. For tests and callers that want no engine host."""
    return _service(load_engine_for(model, device, pack), model, pack, config, clock)


def remote_service(model: str, address: EngineAddress, config: BatchStreamConfig | None = None,
                   clock: Clock | None = None, pack: Path | None = None) -> BatchService:
    """The batched backend for a model whose engine runs in an `EngineHost` process (`serve --processes N`):
    sessions, VAD and scheduling here, the GPU batch there. No PyTorch in this process."""
    # no greedy finals chosen here: the host's final lane keeps partials from waiting for beam searches, and
    # gives finals that wait too long there a greedy decode that still hears their context
    return _service(RemoteEngine(address, model), model, pack, config, clock, BatchScheduler(greedy_late_s=None))


def cuda_available() -> bool:
    """Whether the batched backend would run on a GPU here (torch installed and it sees CUDA)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())

