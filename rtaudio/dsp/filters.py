"""Biquad IIR filters: RBJ-cookbook designs and a streaming second-order-section filter.

Coefficients are float64 second-order sections `(n_sections, 6)` = [b0 b1 b2 1 a1 a2] (scipy's
`sos` layout); the state `(n_sections, 2)` is carried across `push()` calls, so filtering in
chunks equals filtering the whole signal exactly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from rtaudio.errors import AudioError, ConfigError


def _check_freq(f_hz: float, rate_hz: int) -> None:
    if rate_hz <= 0 or not 0.0 < f_hz < rate_hz / 2:
        raise ConfigError(f"filter frequency must be in (0, {rate_hz / 2}) Hz for {rate_hz} Hz audio, got {f_hz}")


def _section(b0: float, b1: float, b2: float, a0: float, a1: float, a2: float) -> np.ndarray:
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]], dtype=np.float64)


def highpass(cutoff_hz: float, rate_hz: int, q: float = 1 / math.sqrt(2)) -> np.ndarray:
    """Second-order high-pass (Butterworth at the default Q): removes DC and rumble."""
    _check_freq(cutoff_hz, rate_hz)
    w = 2 * math.pi * cutoff_hz / rate_hz
    alpha, c = math.sin(w) / (2 * q), math.cos(w)
    return _section((1 + c) / 2, -(1 + c), (1 + c) / 2, 1 + alpha, -2 * c, 1 - alpha)


def lowpass(cutoff_hz: float, rate_hz: int, q: float = 1 / math.sqrt(2)) -> np.ndarray:
    """Second-order low-pass."""
    _check_freq(cutoff_hz, rate_hz)
    w = 2 * math.pi * cutoff_hz / rate_hz
    alpha, c = math.sin(w) / (2 * q), math.cos(w)
    return _section((1 - c) / 2, 1 - c, (1 - c) / 2, 1 + alpha, -2 * c, 1 - alpha)


def peaking(center_hz: float, gain_db: float, rate_hz: int, q: float = 1.0) -> np.ndarray:
    """Peaking EQ bell: +-gain_db at center_hz, bandwidth set by q."""
    _check_freq(center_hz, rate_hz)
    a = 10 ** (gain_db / 40)
    w = 2 * math.pi * center_hz / rate_hz
    alpha, c = math.sin(w) / (2 * q), math.cos(w)
    return _section(1 + alpha * a, -2 * c, 1 - alpha * a, 1 + alpha / a, -2 * c, 1 - alpha / a)


def _shelf(f_hz: float, gain_db: float, rate_hz: int, q: float, high: bool) -> np.ndarray:
    _check_freq(f_hz, rate_hz)
    a = 10 ** (gain_db / 40)
    w = 2 * math.pi * f_hz / rate_hz
    alpha, c = math.sin(w) / (2 * q), math.cos(w)
    s = 2 * math.sqrt(a) * alpha
    sign = 1.0 if high else -1.0  # the high shelf is the low shelf with cos(w) negated
    return _section(
        a * ((a + 1) + sign * (a - 1) * c + s), -sign * 2 * a * ((a - 1) + sign * (a + 1) * c),
        a * ((a + 1) + sign * (a - 1) * c - s),
        (a + 1) - sign * (a - 1) * c + s, sign * 2 * ((a - 1) - sign * (a + 1) * c), (a + 1) - sign * (a - 1) * c - s,
    )


def low_shelf(corner_hz: float, gain_db: float, rate_hz: int, q: float = 1 / math.sqrt(2)) -> np.ndarray:
    """Low shelf: +-gain_db below corner_hz."""
    return _shelf(corner_hz, gain_db, rate_hz, q, high=False)


def high_shelf(corner_hz: float, gain_db: float, rate_hz: int, q: float = 1 / math.sqrt(2)) -> np.ndarray:
    """High shelf: +-gain_db above corner_hz."""
    return _shelf(corner_hz, gain_db, rate_hz, q, high=True)


def dc_blocker(rate_hz: int, cutoff_hz: float = 10.0) -> np.ndarray:
    """One-pole DC blocker y[n] = g (x[n] - x[n-1]) + R y[n-1]; -3 dB near cutoff_hz, 0 dB at Nyquist."""
    _check_freq(cutoff_hz, rate_hz)
    r = math.exp(-2 * math.pi * cutoff_hz / rate_hz)
    g = (1.0 + r) / 2.0
    return _section(g, -g, 0.0, 1.0, -r, 0.0)


def frequency_response(sos: np.ndarray, freqs_hz: ArrayLike, rate_hz: int) -> np.ndarray:
    """Complex response of the cascade at freqs_hz."""
    z = np.exp(-1j * 2 * np.pi * np.asarray(freqs_hz, dtype=np.float64) / rate_hz)
    h = np.ones_like(z)
    for b0, b1, b2, _, a1, a2 in np.asarray(sos, dtype=np.float64):
        h *= (b0 + b1 * z + b2 * z * z) / (1 + a1 * z + a2 * z * z)
    return h


def _sos_kernel(x: np.ndarray, sos: np.ndarray, state: np.ndarray, out: np.ndarray) -> None:
    """Transposed direct form II, section by section; x, out float32 1-D; state float64 (n, 2) updated."""
    n = x.shape[0]
    for i in range(n):
        v = np.float64(x[i])
        for s in range(sos.shape[0]):
            y = sos[s, 0] * v + state[s, 0]
            state[s, 0] = sos[s, 1] * v - sos[s, 4] * y + state[s, 1]
            state[s, 1] = sos[s, 2] * v - sos[s, 5] * y
            v = y
        out[i] = v


_sos_jit = njit(nogil=True, cache=True)(_sos_kernel)


def sos_filter_reference(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Plain direct-form-I reference (float64, from rest) for tests: slow, independent of the kernel."""
    y = np.asarray(x, dtype=np.float64)
    for b0, b1, b2, _, a1, a2 in np.asarray(sos, dtype=np.float64):
        out = np.zeros_like(y)
        x1 = x2 = y1 = y2 = 0.0
        for i, v in enumerate(y.tolist()):
            o = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
            x2, x1, y2, y1 = x1, v, y1, o
            out[i] = o
        y = out
    return y.astype(np.float32)


def _as_sos(sos: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(np.atleast_2d(np.asarray(sos, dtype=np.float64)))
    if a.ndim != 2 or a.shape[1] != 6 or a.shape[0] < 1:
        raise ConfigError(f"second-order sections must have shape (n, 6), got {a.shape}")
    if not np.allclose(a[:, 3], 1.0):
        raise ConfigError("second-order sections must be normalised (a0 == 1)")
    return a


class SosFilter:
    """Streaming cascade of biquads on mono float32; stack sections with np.vstack([...])."""

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = _as_sos(sos)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((self.sos.shape[0], 2), np.float64)

    def push(self, x: np.ndarray) -> np.ndarray:
        a = np.asarray(x)
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
            raise AudioError(f"filters take 1-D float samples, got {a.dtype} {a.shape}")
        a = np.ascontiguousarray(a, dtype=np.float32)
        out = np.empty_like(a)
        _sos_jit(a, self.sos, self._state, out)
        return out


def sos_filter(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    """Whole-signal filtering from rest, float32 1-D."""
    return SosFilter(sos).push(x)
