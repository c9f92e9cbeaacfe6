"""The engine as the server sees it: shared models, per-session caption streams, and the worker pools.

Models (recognizers, voices) are loaded once and shared by every session; each session gets its own
stream object. All model compute runs on worker threads (`WorkerPools`), never on the event loop.
The small Protocols below are all the server needs from the STT and TTS parts.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from rtaudio.clock import Clock
from rtaudio.errors import ConfigError, UnknownModelError
from rtaudio.frames import Caption
from rtaudio.onnx_session import nvidia_driver_present
from rtaudio.server.config import ServerConfig, SessionConfig
from rtaudio.server.events import VadEvent
from rtaudio.stt.latency_budget import BudgetEvent

STREAM_RATE_HZ = 16000  # what recognizers take

T = TypeVar("T")


class CaptionStream(Protocol):
    """One session's recognizer state (rtaudio.stt.streaming.StreamingRecognizer, adapted)."""

    def accept_waveform(self, samples: np.ndarray, sample_rate: int = STREAM_RATE_HZ,
                        arrival_ns: int | None = None) -> None:
        """`arrival_ns`: when the newest of these samples reached the server (the session clock)."""
        ...
    def is_ready(self) -> bool: ...
    def decode(self) -> list[Caption | VadEvent | BudgetEvent]: ...
    def input_finished(self) -> None: ...
    def stage_times(self) -> list[tuple[str, float]]:
        """(stage, seconds) recorded since the last call (rtaudio.latency stage names)."""
        ...
    def finalize(self) -> list[Caption | VadEvent | BudgetEvent]:
        """End the segment in progress now (its caption becomes final); the stream goes on."""
        ...
    def reset(self) -> None:
        """Drop the segment in progress without captioning it; stream time goes on."""
        ...
    def warm_up(self) -> None:
        """One pass on silence: onnxruntime's first run (~1.5 s) must not land on a first caption."""
        ...
    @property
    def next_segment_id(self) -> int: ...


class Voice(Protocol):
    """A loaded TTS voice (rtaudio.tts.voice.PiperVoice)."""

    @property
    def sample_rate(self) -> int: ...
    def stream(self, text: str, config: Any = None) -> Iterator[np.ndarray]:
        """float32 chunks at `sample_rate` as they are synthesized; `config` is a tts SynthesisConfig."""
        ...


class ModelHub:
    """Loads models on first use (thread-safe) and opens per-session streams on them."""

    def __init__(self, config: ServerConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._recognizers: dict[str, Any] = {}
        self._voices: dict[str, Any] = {}
        self._vad_model: Any = None
        self._warm: set[str] = set()
        self._batch_services: dict[str, Any] = {}
        self.batched = resolve_backend(config.stt_backend) == "batched"
        """Caption sessions run on one shared batched (GPU) recognizer per model, not per-session ONNX passes."""

    @property
    def default_model(self) -> str:
        return self.config.models[0]

    def check(self, session: SessionConfig) -> None:
        """Raise UnknownModelError if the session asks for a model or voice this server does not serve
        (ConfigError for a language the batched backend cannot transcribe)."""
        if session.model not in self.config.models:
            raise UnknownModelError(f"model {session.model!r} is not served here; served: {', '.join(self.config.models)}")
        if self.batched and session.language not in (None, "en"):
            raise ConfigError(f"language {session.language!r}: the batched (GPU) backend transcribes English only")
        self.check_voice(session.tts_voice)

    def check_voice(self, name: str) -> None:
        if name not in self.config.voices:
            raise UnknownModelError(f"voice {name!r} is not served here; served: {', '.join(self.config.voices)}")

    def recognizer(self, name: str) -> Any:
        """The shared WhisperRecognizer for `name` (loads it on first use; call from a worker)."""
        with self._lock:
            if name not in self._recognizers:
                from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer

                # Workers already run sessions in parallel: split the cores between them, and no
                # spinning threads, which would steal the cores the other workers need.
                threads = self.config.recognizer_threads or max(1, (os.cpu_count() or 1) // self.config.decode_workers)
                self._recognizers[name] = WhisperRecognizer.load(name, RecognizerConfig(threads=threads, spin=False))
            recognizer = self._recognizers[name]
        if name not in self._warm:  # outside the lock: the VAD model takes it too
            self._warm.add(name)
            self.open_stream(SessionConfig(model=name)).warm_up()
        return recognizer

    def voice(self, name: str) -> Voice:
        with self._lock:
            if name not in self._voices:
                from rtaudio.tts.voice import PiperVoice

                voice = PiperVoice.load(name)
                voice.warm_up()
                self._voices[name] = voice
            return self._voices[name]  # type: ignore[no-any-return]

    def open_stream(self, session: SessionConfig, offset_samples: int = 0, first_segment_id: int = 0) -> CaptionStream:
        """A new caption stream whose time starts at `offset_samples` (16 kHz) and ids at `first_segment_id`.

        Loads the model on first use, so call it from a worker thread.
        """
        from rtaudio.server.stream_adapter import open_batched_stream, open_caption_stream

        if self.batched:
            return open_batched_stream(self.batch_service(session.model), session, offset_samples, first_segment_id)
        fallback = self.config.budget.fallback_model
        fallback_recognizer = self.recognizer(fallback) if fallback and fallback != session.model else None
        return open_caption_stream(self.recognizer(session.model), self.vad_model(), session, self.clock,
                                   offset_samples, first_segment_id, self.config.budget, fallback_recognizer)

    def batch_service(self, name: str) -> Any:
        """The shared `BatchService` of model `name` (loads it on first use; call from a worker)."""
        with self._lock:
            if name not in self._batch_services:
                from rtaudio.stt.batch_service import load_service, remote_service

                pack = Path(self.config.batched_pack) if self.config.batched_pack else None
                if self.config.engine_address is not None:  # the engine of `serve --processes N`, shared
                    self._batch_services[name] = remote_service(name, self.config.engine_address, clock=self.clock,
                                                                pack=pack)
                else:
                    self._batch_services[name] = load_service(name, clock=self.clock, pack=pack)
            return self._batch_services[name]

    def batch_stats(self) -> dict[str, Any]:
        """Each loaded batched recognizer's `RoundStats`, by model."""
        with self._lock:
            services = dict(self._batch_services)
        return {name: service.stats() for name, service in services.items()}

    def close(self) -> None:
        """Stop the batched recognizers' threads."""
        for service in self._batch_services.values():
            service.stop()

    def vad_model(self) -> Any:
        with self._lock:
            if self._vad_model is None:
                from rtaudio.stt.vad import SileroVadModel

                self._vad_model = SileroVadModel.load()
            return self._vad_model

    def preload(self) -> None:
        """Fetch what is missing (first run), then load and warm the default model and voice."""
        from rtaudio.modelstore import ensure_model

        if self.batched:  # fetches its models itself (or takes them from a pack), and has its own VAD
            self.batch_service(self.default_model)
        else:
            for name in (self.default_model, "silero-vad"):
                ensure_model(name)
            self.recognizer(self.default_model)
            self.vad_model()
        if self.config.preload_voice:
            ensure_model(self.config.voices[0])
        if self.config.budget.fallback_model:  # the ladder's last rung must not load it mid-session
            ensure_model(self.config.budget.fallback_model)
            self.recognizer(self.config.budget.fallback_model)
        if self.config.preload_voice:
            self.voice(self.config.voices[0])


def resolve_backend(backend: str) -> str:
    """"onnx" or "batched" for a configured backend; "auto" is "batched" where PyTorch sees a CUDA GPU
    (the driver is checked first, so a machine without one never imports torch)."""
    if backend != "auto":
        return backend
    if not nvidia_driver_present():
        return "onnx"
    from rtaudio.stt.batch_service import cuda_available

    return "batched" if cuda_available() else "onnx"


class WorkerPools:
    """Threads for model compute: recognizer steps and speech synthesis each get their own pool,
    so a long synthesis never delays captions. Work is served first come, first served."""

    def __init__(self, decode_workers: int, tts_workers: int) -> None:
        self.decode = ThreadPoolExecutor(decode_workers, thread_name_prefix="rtaudio-decode")
        self.tts = ThreadPoolExecutor(tts_workers, thread_name_prefix="rtaudio-tts")

    async def run_decode(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.decode, fn, *args)

    async def run_tts(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.tts, fn, *args)

    def shutdown(self) -> None:
        self.decode.shutdown(wait=False, cancel_futures=True)
        self.tts.shutdown(wait=False, cancel_futures=True)
