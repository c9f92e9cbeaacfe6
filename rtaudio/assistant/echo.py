"""Acoustic echo cancellation, so the assistant does not hear its own voice.

A normalised-LMS adaptive FIR filter models the path speaker -> room -> microphone from the playback signal
(the reference) and subtracts its estimate from the microphone. The bulk delay of that path (sound-card
buffers plus distance) is estimated once by cross-correlation, so the filter only has to cover the room's
reverberant tail. Adaptation is frozen while the near-end talker is loud (a simple double-talk detector),
otherwise the filter would learn to cancel the user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from rtaudio.errors import ConfigError


def nlms_reference(mic: np.ndarray, ref: np.ndarray, weights: np.ndarray, history: np.ndarray,
                   hold: np.ndarray, mu: float, eps: float, geigel: float, hold_samples: int) -> np.ndarray:
    """Plain numpy NLMS with a Geigel double-talk detector; the reference for `_nlms_kernel`.

    mic, ref: float32 (n,) aligned blocks; weights, history: float64 (L,) (history newest first);
    hold: int64 (1,) samples left in a double-talk hold. All state is updated in place.
    """
    out = np.empty(len(mic), dtype=np.float32)
    for i in range(len(mic)):
        history[1:] = history[:-1].copy()
        history[0] = ref[i]
        e = mic[i] - float(np.dot(weights, history))
        out[i] = e
        if abs(mic[i]) > geigel * np.max(np.abs(history)):
            hold[0] = hold_samples
        if hold[0] > 0:
            hold[0] -= 1
        else:
            weights += (mu / (float(np.dot(history, history)) + eps)) * e * history
    return out


@njit(nogil=True, cache=True)
def _nlms_kernel(mic, ref, weights, history, hold, mu, eps, geigel, hold_samples, out):  # pragma: no cover
    n_taps = weights.shape[0]
    for i in range(mic.shape[0]):
        for k in range(n_taps - 1, 0, -1):
            history[k] = history[k - 1]
        history[0] = ref[i]
        y = 0.0
        energy = 0.0
        peak = 0.0
        for k in range(n_taps):
            y += weights[k] * history[k]
            energy += history[k] * history[k]
            a = abs(history[k])
            if a > peak:
                peak = a
        e = mic[i] - y
        out[i] = e
        if abs(mic[i]) > geigel * peak:
            hold[0] = hold_samples
        if hold[0] > 0:
            hold[0] -= 1
        else:
            g = mu * e / (energy + eps)
            for k in range(n_taps):
                weights[k] += g * history[k]


def estimate_delay(mic: np.ndarray, ref: np.ndarray, max_delay_samples: int) -> int:
    """Bulk delay (samples) of the echo path by FFT cross-correlation (GCC-PHAT weighting)."""
    n = len(mic) + len(ref)
    size = 1 << (n - 1).bit_length()
    spec = np.fft.rfft(mic, size) * np.conj(np.fft.rfft(ref, size))
    spec /= np.abs(spec) + 1e-12
    corr = np.fft.irfft(spec, size)[: max_delay_samples + 1]
    return int(np.argmax(corr))


@dataclass(frozen=True)
class EchoCancellerConfig:
    filter_taps: int = 512
    """Length of the adaptive filter (512 taps = 32 ms of room tail at 16 kHz)."""
    step_size: float = 0.5
    max_delay_ms: float = 500.0
    geigel_threshold: float = 0.7
    """Double talk when |mic| exceeds this fraction of the recent reference peak (echo is quieter than that)."""
    double_talk_hold_ms: float = 60.0
    sample_rate_hz: int = 16000

    def __post_init__(self) -> None:
        if self.filter_taps < 16 or not 0 < self.step_size <= 1.0:
            raise ConfigError("filter_taps must be >= 16 and 0 < step_size <= 1")


class EchoCanceller:
    """Streaming AEC: `push_reference(played)` as audio goes out, `process(mic) -> cleaned mic`."""

    def __init__(self, config: EchoCancellerConfig | None = None) -> None:
        self.config = config or EchoCancellerConfig()
        c = self.config
        self.max_delay = int(c.max_delay_ms * c.sample_rate_hz / 1000)
        self.weights = np.zeros(c.filter_taps, dtype=np.float64)
        self.history = np.zeros(c.filter_taps, dtype=np.float64)
        self._ref = np.zeros(0, dtype=np.float32)  # reference not yet consumed, aligned with mic time
        self.hold = np.zeros(1, dtype=np.int64)
        self._line = np.zeros(self.max_delay + 1, dtype=np.float32)
        self.delay_samples: int | None = None
        self._calib_mic: list[np.ndarray] = []
        self._calib_ref: list[np.ndarray] = []

    def push_reference(self, played: np.ndarray) -> None:
        """Samples sent to the speaker, in the same time base as the microphone stream."""
        self._ref = np.concatenate([self._ref, played.astype(np.float32)])

    def process(self, mic: np.ndarray) -> np.ndarray:
        mic = mic.astype(np.float32)
        ref = self._take_reference(len(mic))
        if not np.any(ref) and not np.any(self.history):
            return mic
        if self.delay_samples is None:
            self._calib_mic.append(mic)
            self._calib_ref.append(ref)
            if sum(len(x) for x in self._calib_mic) < self.max_delay * 2:
                return mic  # still measuring the echo path; gating covers this first half second
            m, r = np.concatenate(self._calib_mic), np.concatenate(self._calib_ref)
            self.delay_samples = estimate_delay(m, r, self.max_delay)
            self._calib_mic.clear()
            self._calib_ref.clear()
            return self._cancel(mic, ref)
        return self._cancel(mic, ref)

    def _cancel(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        assert self.delay_samples is not None
        delayed = self._delayed(ref)
        out = np.empty_like(mic)
        c = self.config
        hold = int(c.double_talk_hold_ms * c.sample_rate_hz / 1000)
        _nlms_kernel(mic, delayed, self.weights, self.history, self.hold, c.step_size, 1e-6, c.geigel_threshold, hold, out)
        return out

    def _delayed(self, ref: np.ndarray) -> np.ndarray:
        d = self.delay_samples or 0
        joined = np.concatenate([self._line, ref])
        start = len(self._line) - d
        out = joined[start:start + len(ref)]
        self._line = joined[-len(self._line):]
        return out.astype(np.float32)

    def _take_reference(self, n: int) -> np.ndarray:
        ref = np.zeros(n, dtype=np.float32)
        k = min(n, len(self._ref))
        ref[:k] = self._ref[:k]
        self._ref = self._ref[k:]
        return ref
