"""WSOLA time-stretching: change duration, keep pitch (used to fit dubbed speech into subtitle cues).

Waveform-similarity overlap-add: output frames of `frame_samples` are laid every `frame_samples // 2`
samples with a periodic Hann window (which sums to one at 50 % overlap). Frame k is read from the
input near k * hop * rate, shifted by up to +-`tolerance_samples` to the place most similar (largest
cross-correlation) to the natural continuation of the previous frame, so periods line up and no
phase jumps are heard (similarity is measured on every second sample, which halves the search cost
and still resolves pitch periods). `rate` > 1 shortens, < 1 lengthens; output length is
round(len(x) / rate).

`wsola` is the Numba kernel; `wsola_reference` is the same algorithm in plain numpy for tests.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rtaudio.errors import ConfigError


def _check(x: np.ndarray, rate: float, frame_samples: int, tolerance_samples: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ConfigError("wsola needs mono 1-D audio")
    if not 0.25 <= rate <= 4.0:
        raise ConfigError(f"rate must be within 0.25..4, got {rate}")
    if frame_samples < 16 or frame_samples % 2:
        raise ConfigError("frame_samples must be even and >= 16")
    if not 0 <= tolerance_samples <= frame_samples:
        raise ConfigError("tolerance_samples must be within 0..frame_samples")
    return x


def _layout(n_in: int, rate: float, frame: int, tol: int) -> tuple[int, int, int, int]:
    """(output length, frame count, front padding, padded input length) shared by both versions."""
    hop = frame // 2
    n_out = int(round(n_in / rate))
    n_frames = (n_out + hop) // hop + 1
    front = hop + tol
    padded = front + n_in + frame + tol + int(np.ceil(n_frames * hop * rate)) + 1
    return n_out, n_frames, front, padded


def _hann(frame: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(frame) / frame)).astype(np.float32)


@njit(nogil=True, cache=True)
def _wsola_kernel(xp: np.ndarray, out: np.ndarray, window: np.ndarray, n_frames: int, rate: float,
                  tol: int, start: int) -> None:  # pragma: no cover - compiled
    frame = window.shape[0]
    hop = frame // 2
    prev = start
    for i in range(frame):
        out[i] += window[i] * xp[start + i]
    for k in range(1, n_frames):
        nominal = start + int(np.floor(k * hop * rate + 0.5))
        natural = prev + hop
        best = -np.inf
        best_d = 0
        for d in range(-tol, tol + 1):
            acc = 0.0
            pos = nominal + d
            for i in range(0, frame, 2):
                acc += np.float64(xp[natural + i]) * np.float64(xp[pos + i])
            if acc > best:
                best = acc
                best_d = d
        pos = nominal + best_d
        base = k * hop
        for i in range(frame):
            out[base + i] += window[i] * xp[pos + i]
        prev = pos


def wsola(x: np.ndarray, rate: float, frame_samples: int = 512, tolerance_samples: int = 192) -> np.ndarray:
    """float32 mono `x` played `rate` times faster at the same pitch; length round(len(x) / rate)."""
    x = _check(x, rate, frame_samples, tolerance_samples)
    n_out, n_frames, front, padded = _layout(len(x), rate, frame_samples, tolerance_samples)
    xp = np.zeros(padded, dtype=np.float32)
    xp[front:front + len(x)] = x
    out = np.zeros(n_frames * (frame_samples // 2) + frame_samples, dtype=np.float32)
    _wsola_kernel(xp, out, _hann(frame_samples), n_frames, float(rate), tolerance_samples, tolerance_samples)
    hop = frame_samples // 2
    return out[hop:hop + n_out].copy()


def wsola_reference(x: np.ndarray, rate: float, frame_samples: int = 512, tolerance_samples: int = 192) -> np.ndarray:
    """Plain numpy WSOLA, the reference for `wsola`."""
    x = _check(x, rate, frame_samples, tolerance_samples)
    frame, tol, hop = frame_samples, tolerance_samples, frame_samples // 2
    n_out, n_frames, front, padded = _layout(len(x), rate, frame, tol)
    xp = np.zeros(padded, dtype=np.float32)
    xp[front:front + len(x)] = x
    xp64 = xp.astype(np.float64)
    window = _hann(frame)
    out = np.zeros(n_frames * hop + frame, dtype=np.float32)
    start = prev = tol
    out[:frame] += window * xp[start:start + frame]
    for k in range(1, n_frames):
        nominal = start + int(np.floor(k * hop * rate + 0.5))
        natural = xp64[prev + hop:prev + hop + frame:2]
        region = xp64[nominal - tol:nominal + tol + frame]
        scores = np.array([np.dot(region[d:d + frame:2], natural) for d in range(2 * tol + 1)])
        pos = nominal - tol + int(np.argmax(scores))
        out[k * hop:k * hop + frame] += window * xp[pos:pos + frame]
        prev = pos
    return out[hop:hop + n_out].copy()
