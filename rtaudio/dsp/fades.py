"""Fades and crossfades on mono float32 audio, with linear or equal-power curves.

Equal-power (sin/cos) keeps the summed power constant across a crossfade of uncorrelated
material (music, different takes); linear keeps the summed amplitude constant, which suits
crossfading two copies of the same signal (e.g. splicing TTS chunks).
"""

from __future__ import annotations

import enum

import numpy as np

from rtaudio.errors import AudioError, ConfigError


class FadeCurve(enum.Enum):
    LINEAR = "linear"
    EQUAL_POWER = "equal_power"

    def ramp(self, n: int) -> np.ndarray:
        """Rising gain from 0 towards 1 over n samples (float32); the first sample is 0."""
        t = np.arange(n, dtype=np.float64) / max(n, 1)
        g = t if self is FadeCurve.LINEAR else np.sin(0.5 * np.pi * t)
        return g.astype(np.float32)

    def falling(self, n: int) -> np.ndarray:
        """The complementary falling gain: ramp + falling = 1 (linear) or ramp**2 + falling**2 = 1."""
        t = np.arange(n, dtype=np.float64) / max(n, 1)
        g = 1.0 - t if self is FadeCurve.LINEAR else np.cos(0.5 * np.pi * t)
        return g.astype(np.float32)


def _mono(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"fades take 1-D float samples, got {a.dtype} {a.shape}")
    return a.astype(np.float32)


def _check_len(n: int, size: int) -> int:
    if n < 0:
        raise ConfigError(f"fade length must be >= 0 samples, got {n}")
    return min(n, size)


def fade_in(x: np.ndarray, n_samples: int, curve: FadeCurve = FadeCurve.EQUAL_POWER) -> np.ndarray:
    out = _mono(x)
    n = _check_len(n_samples, out.size)
    out[:n] *= curve.ramp(n)
    return out


def fade_out(x: np.ndarray, n_samples: int, curve: FadeCurve = FadeCurve.EQUAL_POWER) -> np.ndarray:
    out = _mono(x)
    n = _check_len(n_samples, out.size)
    if n:
        out[-n:] *= curve.falling(n)
    return out


def crossfade(a: np.ndarray, b: np.ndarray, overlap_samples: int,
              curve: FadeCurve = FadeCurve.EQUAL_POWER) -> np.ndarray:
    """a then b, overlapping by overlap_samples (clamped to the shorter): len(a) + len(b) - overlap."""
    x, y = _mono(a), _mono(b)
    n = _check_len(overlap_samples, min(x.size, y.size))
    if n == 0:
        return np.concatenate([x, y])
    middle = x[x.size - n:] * curve.falling(n) + y[:n] * curve.ramp(n)
    return np.concatenate([x[: x.size - n], middle, y[n:]])
