"""Voice activity detection: Silero VAD (ONNX) probabilities and a segmenter turning them into speech events.

Silero v5/v6 takes 512-sample frames at 16 kHz (32 ms) with the last 64 samples of the previous frame
prepended as context, and carries a recurrent state of shape (2, batch, 128) between calls. The model
session is shareable; each stream owns a `SileroVad` (state + context) and a `VadSegmenter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtaudio.errors import ConfigError, SampleRateError
from rtaudio.onnx_session import open_session

VAD_SAMPLE_RATE_HZ = 16000
FRAME_SAMPLES = 512  # 32 ms per probability
CONTEXT_SAMPLES = 64  # tail of the previous frame the v5/v6 model expects in front of each frame
STATE_SHAPE = (2, 1, 128)


class SileroVadModel:
    """The Silero VAD ONNX session; thread-safe and shared by all streams."""

    def __init__(self, path: Path) -> None:
        # one thread: a 576-sample frame is far too small to benefit from more
        self._session = open_session(path, "the Silero VAD model", threads=1)
        self._sr = np.array(VAD_SAMPLE_RATE_HZ, dtype=np.int64)

    @classmethod
    def load(cls, name: str = "silero-vad") -> SileroVadModel:
        """Fetch (if needed) and open the model from the model store."""
        from rtaudio.modelstore import ensure_model

        return cls(ensure_model(name) / "raw" / "silero_vad.onnx")

    def run(self, frame_with_context: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """One step: `frame_with_context` float32 (1, 576), `state` float32 (2, 1, 128) -> (p(speech), new state)."""
        out, new_state = self._session.run(None, {"input": frame_with_context, "state": state, "sr": self._sr})
        return float(out[0, 0]), new_state


class SileroVad:
    """Per-stream Silero state: push 16 kHz samples of any length, get one speech probability per 32 ms frame."""

    def __init__(self, model: SileroVadModel) -> None:
        self.model = model
        self._input = np.zeros((1, CONTEXT_SAMPLES + FRAME_SAMPLES), dtype=np.float32)
        self._pending = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        self._n_pending = 0
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._input[:] = 0.0
        self._n_pending = 0
        self.frames_done = 0
        """Frames scored so far; frame i covers samples [i*512, (i+1)*512) of the stream."""

    def push(self, samples: np.ndarray, sample_rate: int = VAD_SAMPLE_RATE_HZ) -> np.ndarray:
        """Score every frame completed by `samples` (float32 1-D); returns float32 (n_frames,) in [0, 1]."""
        if sample_rate != VAD_SAMPLE_RATE_HZ:
            raise SampleRateError(f"Silero VAD needs {VAD_SAMPLE_RATE_HZ} Hz audio, got {sample_rate} Hz")
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        n_frames = (self._n_pending + len(x)) // FRAME_SAMPLES
        probs = np.empty(n_frames, dtype=np.float32)
        pos = 0
        for i in range(n_frames):
            take = FRAME_SAMPLES - self._n_pending
            frame = self._input[0, CONTEXT_SAMPLES:]
            frame[: self._n_pending] = self._pending[: self._n_pending]
            frame[self._n_pending:] = x[pos: pos + take]
            pos += take
            self._n_pending = 0
            probs[i], self._state = self.model.run(self._input, self._state)
            self._input[0, :CONTEXT_SAMPLES] = self._input[0, -CONTEXT_SAMPLES:]
        rest = len(x) - pos
        self._pending[self._n_pending: self._n_pending + rest] = x[pos:]
        self._n_pending += rest
        self.frames_done += n_frames
        return probs


@dataclass(frozen=True)
class VadConfig:
    """When speech starts and ends. Durations are rounded up to whole 32 ms frames."""

    threshold: float = 0.35
    """p(speech) at or above which a frame is speech. Silero's customary 0.5 loses falsetto, whispered
    and hoarse speech (p 0.1-0.5: bench/stt_stream.py streaming WER on such clips 31 % -> 25 %); 5 min
    of silence and 5 min of noise/music still give no words at 0.35 (Whisper's no-speech gate stays)."""
    neg_threshold: float | None = None
    """p(speech) below which a frame is silence (hysteresis); None means threshold - 0.15."""
    min_speech_ms: int = 160
    """Speech must last this long before it starts a segment; shorter bursts (clicks) are dropped."""
    min_silence_ms: int = 480
    """Silence that ends a segment (the endpoint delay)."""
    speech_pad_ms: int = 200
    """Audio kept before the first and after the last speech frame, so word edges are not cut."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.neg_threshold is not None and not 0.0 <= self.neg_threshold <= self.threshold:
            raise ConfigError(f"neg_threshold must be in [0, threshold], got {self.neg_threshold}")
        for name in ("min_speech_ms", "min_silence_ms", "speech_pad_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.min_silence_ms < 32:
            raise ConfigError("min_silence_ms must be at least one 32 ms frame")
        if self.speech_pad_ms > self.min_silence_ms:
            raise ConfigError("speech_pad_ms must not exceed min_silence_ms (the end pad must already be heard)")

    @property
    def silence_threshold(self) -> float:
        return self.threshold - 0.15 if self.neg_threshold is None else self.neg_threshold


@dataclass(frozen=True)
class SpeechStarted:
    """Speech confirmed; the segment (with its pad) begins at `start_sample` of the stream."""

    start_sample: int


@dataclass(frozen=True)
class SpeechEnded:
    """A speech segment [start_sample, end_sample) including pads, reported once the silence is long enough."""

    start_sample: int
    end_sample: int
    decided_sample: int = field(default=0, compare=False)
    """The stream position at which the silence became long enough: when a live listener could know."""


VadEvent = SpeechStarted | SpeechEnded


class VadSegmenter:
    """Pure state machine: per-frame probabilities in, `SpeechStarted` / `SpeechEnded` events out."""

    def __init__(self, config: VadConfig | None = None, sample_rate: int = VAD_SAMPLE_RATE_HZ,
                 frame_samples: int = FRAME_SAMPLES) -> None:
        self.config = config or VadConfig()
        self.frame_samples = frame_samples
        ms_per_frame = 1000.0 * frame_samples / sample_rate
        self._min_speech_frames = max(1, int(np.ceil(self.config.min_speech_ms / ms_per_frame)))
        self._min_silence_frames = max(1, int(np.ceil(self.config.min_silence_ms / ms_per_frame)))
        self._pad_samples = int(round(self.config.speech_pad_ms * sample_rate / 1000))
        self.reset()

    def reset(self) -> None:
        self._frame = 0
        self._onset: int | None = None  # first frame of candidate or confirmed speech
        self.in_speech = False
        self._last_speech = -1  # last frame at or above threshold in the current segment
        self._silence_from: int | None = None
        self._prev_end_sample = 0
        self.segment_start_sample: int | None = None
        """Start (with pad) of the segment in progress, None when not in speech."""

    @property
    def position_sample(self) -> int:
        return self._frame * self.frame_samples

    @property
    def start_lookback_samples(self) -> int:
        """A `SpeechStarted` reported by the frame ending at sample P starts at or after P minus this
        (min_speech frames plus the pad): lets callers push many frames at once and still act per frame."""
        return self._min_speech_frames * self.frame_samples + self._pad_samples

    def push(self, probs: np.ndarray) -> list[VadEvent]:
        """Advance by one frame per probability; events in stream order."""
        cfg = self.config
        low = cfg.silence_threshold
        events: list[VadEvent] = []
        for p in np.asarray(probs, dtype=np.float32).reshape(-1):
            f = self._frame
            self._frame += 1
            if not self.in_speech:
                if self._onset is None:
                    if p >= cfg.threshold:
                        self._onset = f
                elif p < low:
                    self._onset = None  # a burst too short to be speech
                if self._onset is not None and self._frame - self._onset >= self._min_speech_frames:
                    start = max(self._prev_end_sample, self._onset * self.frame_samples - self._pad_samples, 0)
                    self.in_speech = True
                    self.segment_start_sample = start
                    self._last_speech = f
                    self._silence_from = None
                    events.append(SpeechStarted(start))
                continue
            if p >= cfg.threshold:
                self._last_speech = f
                self._silence_from = None
            elif p < low and self._silence_from is None:
                self._silence_from = f
            if self._silence_from is not None and self._frame - self._silence_from >= self._min_silence_frames:
                events.append(self._end(min((self._last_speech + 1) * self.frame_samples + self._pad_samples,
                                            self.position_sample)))
        return events

    def flush(self) -> list[VadEvent]:
        """End of input: close a segment in progress at the current position."""
        if not self.in_speech:
            self._onset = None
            return []
        return [self._end(self.position_sample)]

    def _end(self, end_sample: int) -> SpeechEnded:
        start = self.segment_start_sample or 0
        self.in_speech = False
        self._onset = None
        self._silence_from = None
        self.segment_start_sample = None
        self._prev_end_sample = end_sample
        return SpeechEnded(start, end_sample, self.position_sample)
