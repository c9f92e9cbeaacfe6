"""Level control: gain, soft limiter, automatic gain control and a ducking mixer.

The stateful ones (AGC, ducking) are sans-I/O streaming objects whose per-sample loops are
Numba kernels with explicit state; a plain-Python reference sits beside each kernel and tests
check that chunked processing equals whole-signal processing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from rtaudio.errors import AudioError, ConfigError


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def apply_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    """x * 10**(gain_db/20) as float32 (no clipping: follow with `soft_limit` if needed)."""
    return (_float32(x) * np.float32(db_to_gain(gain_db))).astype(np.float32)


def soft_limit(x: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """Memoryless soft clipper: identity below `threshold`, a tanh knee above, never past +-1.0.

    The curve is continuous with slope 1 at the knee, so quiet audio is untouched and peaks are
    rounded instead of squared off; chunking cannot change the result.
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"soft_limit threshold must be in (0, 1), got {threshold}")
    a = _float32(x)
    mag = np.abs(a)
    over = mag > threshold
    if not np.any(over):
        return a.copy()
    out = a.copy()
    head = 1.0 - threshold
    out[over] = np.sign(a[over]) * (threshold + head * np.tanh((mag[over] - threshold) / head))
    return out


def _float32(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"expected float samples in [-1, 1], got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _mono32(x: np.ndarray, what: str) -> np.ndarray:
    a = _float32(x)
    if a.ndim != 1:
        raise AudioError(f"{what} takes 1-D mono samples, got shape {a.shape}")
    return a


def time_coef(time_ms: float, rate_hz: int) -> float:
    """One-pole smoothing coefficient reaching 1 - 1/e of a step in time_ms."""
    return math.exp(-1000.0 / (time_ms * rate_hz)) if time_ms > 0 else 0.0


# --- automatic gain control ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AgcConfig:
    target_dbfs: float = -20.0
    """RMS level the AGC steers speech towards."""
    max_gain_db: float = 24.0
    """Largest boost (quiet talkers); also caps how much noise can be lifted."""
    min_gain_db: float = -24.0
    """Largest cut."""
    gate_dbfs: float = -55.0
    """Below this level the gain is held, so pauses and room noise are not pumped up."""
    detector_ms: float = 50.0
    """Mean-square detector time constant."""
    attack_ms: float = 20.0
    """How fast the gain falls when the level jumps up."""
    release_ms: float = 1000.0
    """How fast the gain rises when the level drops."""

    def __post_init__(self) -> None:
        if self.min_gain_db > 0 or self.max_gain_db < 0:
            raise ConfigError("AGC needs min_gain_db <= 0 <= max_gain_db")
        if min(self.detector_ms, self.attack_ms, self.release_ms) <= 0:
            raise ConfigError("AGC time constants must be > 0 ms")
        if self.target_dbfs >= 0 or self.gate_dbfs >= self.target_dbfs:
            raise ConfigError("AGC needs gate_dbfs < target_dbfs < 0")


def _agc_kernel(x: np.ndarray, target_db: float, min_db: float, max_db: float, gate_db: float,
                det_c: float, att_c: float, rel_c: float, state: np.ndarray, out: np.ndarray) -> None:
    """state = [mean square, gain dB]; out = x * gain, float32."""
    ms = state[0]
    g_db = state[1]
    for i in range(x.shape[0]):
        v = np.float64(x[i])
        ms = det_c * ms + (1.0 - det_c) * v * v
        level_db = 10.0 * math.log10(ms + 1e-20)
        if level_db > gate_db:
            want = min(max(target_db - level_db, min_db), max_db)
            c = att_c if want < g_db else rel_c
            g_db = c * g_db + (1.0 - c) * want
        out[i] = v * 10.0 ** (g_db / 20.0)
    state[0] = ms
    state[1] = g_db


_agc_jit = njit(nogil=True, cache=True)(_agc_kernel)


def agc_reference(x: np.ndarray, rate_hz: int, config: AgcConfig = AgcConfig()) -> np.ndarray:
    """Plain-Python AGC from rest, for tests."""
    det, att, rel = (time_coef(t, rate_hz) for t in (config.detector_ms, config.attack_ms, config.release_ms))
    ms, g_db, out = 0.0, 0.0, []
    for v in np.asarray(x, np.float64).tolist():
        ms = det * ms + (1 - det) * v * v
        level = 10 * math.log10(ms + 1e-20)
        if level > config.gate_dbfs:
            want = min(max(config.target_dbfs - level, config.min_gain_db), config.max_gain_db)
            c = att if want < g_db else rel
            g_db = c * g_db + (1 - c) * want
        out.append(v * 10 ** (g_db / 20))
    return np.array(out, np.float32)


class Agc:
    """Streaming AGC for mono float32 at `rate_hz`; `gain_db` is the gain now applied."""

    def __init__(self, rate_hz: int, config: AgcConfig | None = None) -> None:
        self.rate_hz = rate_hz
        self.config = config or AgcConfig()
        c = self.config
        self._det_c = time_coef(c.detector_ms, rate_hz)
        self._att_c = time_coef(c.attack_ms, rate_hz)
        self._rel_c = time_coef(c.release_ms, rate_hz)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(2, np.float64)

    @property
    def gain_db(self) -> float:
        return float(self._state[1])

    def push(self, x: np.ndarray) -> np.ndarray:
        a = _mono32(x, "AGC")
        out = np.empty_like(a)
        c = self.config
        _agc_jit(a, c.target_dbfs, c.min_gain_db, c.max_gain_db, c.gate_dbfs, self._det_c, self._att_c, self._rel_c,
                 self._state, out)
        return out


# --- ducking mixer -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DuckingConfig:
    duck_db: float = -12.0
    """Background gain while the foreground is active."""
    threshold_dbfs: float = -40.0
    """Foreground envelope above this counts as active."""
    attack_ms: float = 30.0
    """How fast the background dips when the foreground starts."""
    release_ms: float = 400.0
    """How fast it comes back after the foreground stops."""
    envelope_ms: float = 10.0
    """Foreground peak-envelope release time (its attack is instant)."""

    def __post_init__(self) -> None:
        if self.duck_db > 0:
            raise ConfigError(f"duck_db must be <= 0 dB, got {self.duck_db}")
        if min(self.attack_ms, self.release_ms, self.envelope_ms) <= 0:
            raise ConfigError("ducking time constants must be > 0 ms")


def _duck_kernel(background: np.ndarray, foreground: np.ndarray, threshold: float, duck_gain: float,
                 env_c: float, att_c: float, rel_c: float, state: np.ndarray, out: np.ndarray) -> None:
    """state = [foreground envelope, background gain]; out = background * gain + foreground."""
    env = state[0]
    g = state[1]
    for i in range(background.shape[0]):
        f = np.float64(foreground[i])
        a = abs(f)
        env = a if a > env else env_c * env + (1.0 - env_c) * a
        want = duck_gain if env > threshold else 1.0
        c = att_c if want < g else rel_c
        g = c * g + (1.0 - c) * want
        out[i] = np.float64(background[i]) * g + f
    state[0] = env
    state[1] = g


_duck_jit = njit(nogil=True, cache=True)(_duck_kernel)


def duck_reference(background: np.ndarray, foreground: np.ndarray, rate_hz: int,
                   config: DuckingConfig = DuckingConfig()) -> np.ndarray:
    """Plain-Python ducking mix from rest, for tests."""
    env_c, att, rel = (time_coef(t, rate_hz) for t in (config.envelope_ms, config.attack_ms, config.release_ms))
    thr, duck = db_to_gain(config.threshold_dbfs), db_to_gain(config.duck_db)
    env, g, out = 0.0, 1.0, []
    for b, f in zip(np.asarray(background, np.float64).tolist(), np.asarray(foreground, np.float64).tolist(),
                    strict=True):
        env = abs(f) if abs(f) > env else env_c * env + (1 - env_c) * abs(f)
        want = duck if env > thr else 1.0
        c = att if want < g else rel
        g = c * g + (1 - c) * want
        out.append(b * g + f)
    return np.array(out, np.float32)


class DuckingMixer:
    """Mix a foreground (speech) over a background (music) that dips while the foreground talks."""

    def __init__(self, rate_hz: int, config: DuckingConfig | None = None) -> None:
        self.rate_hz = rate_hz
        self.config = config or DuckingConfig()
        c = self.config
        self._env_c = time_coef(c.envelope_ms, rate_hz)
        self._att_c = time_coef(c.attack_ms, rate_hz)
        self._rel_c = time_coef(c.release_ms, rate_hz)
        self.reset()

    def reset(self) -> None:
        self._state = np.array([0.0, 1.0])

    @property
    def background_gain(self) -> float:
        return float(self._state[1])

    def push(self, background: np.ndarray, foreground: np.ndarray) -> np.ndarray:
        """Equal-length mono chunks in, their mix out (float32, not limited)."""
        b, f = _mono32(background, "ducking"), _mono32(foreground, "ducking")
        if b.shape != f.shape:
            raise AudioError(f"ducking needs equal-length chunks, got {b.size} and {f.size}")
        out = np.empty_like(b)
        c = self.config
        _duck_jit(b, f, db_to_gain(c.threshold_dbfs), db_to_gain(c.duck_db), self._env_c, self._att_c, self._rel_c,
                  self._state, out)
        return out


def mix(*tracks: np.ndarray, gains_db: tuple[float, ...] | None = None) -> np.ndarray:
    """Sum mono tracks (shorter ones padded with silence) with optional per-track gains; float32."""
    if not tracks:
        raise AudioError("mix needs at least one track")
    arrays = [_mono32(t, "mix") for t in tracks]
    gains = gains_db or (0.0,) * len(arrays)
    if len(gains) != len(arrays):
        raise ConfigError(f"need one gain per track: {len(arrays)} tracks, {len(gains)} gains")
    out = np.zeros(max(a.size for a in arrays), np.float64)
    for a, g in zip(arrays, gains, strict=True):
        out[: a.size] += a * db_to_gain(g)
    return out.astype(np.float32)
