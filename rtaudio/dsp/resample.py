"""Streaming rational resampler: polyphase Kaiser-windowed sinc, state carried across chunks.

Output sample n sits at input time n * in_rate / out_rate (no delay: the filter is centred), so
`resample(x)` is time-aligned with `x` and has ceil(len(x) * out / in) samples. Chunked
`push()`es followed by `flush()` give exactly the whole-signal output, because every output
sample is computed by the same kernel from the same input samples whatever the chunking.

Default quality is close to soxr's "HQ": flat (< 0.01 dB) to 91 % of the lower Nyquist,
135 dB rejection from the lower Nyquist up, so nothing folds back (measured in bench/dsp.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from rtaudio.errors import AudioError, ConfigError, SampleRateError

MAX_PHASES = 2048  # L of the reduced ratio L/M; 44.1k <-> 8k needs 441
MAX_BANK_COEFFS = 4_000_000  # 16 MB of float32 coefficients at most


@dataclass(frozen=True)
class ResamplerConfig:
    """Anti-alias filter design, as fractions of the lower of the two Nyquist frequencies."""

    passband_end_fraction: float = 0.91
    """Frequencies below this keep their level (ripple about 10**(-stopband_db/20))."""
    stopband_begin_fraction: float = 1.0
    """From here up the filter rejects by `stopband_attenuation_db`: 1.0 means no aliasing at all."""
    stopband_attenuation_db: float = 135.0
    """Kaiser design attenuation; also sets the passband ripple."""

    def __post_init__(self) -> None:
        if not 0.0 < self.passband_end_fraction < self.stopband_begin_fraction <= 1.5:
            raise ConfigError(
                "need 0 < passband_end_fraction < stopband_begin_fraction <= 1.5, got "
                f"{self.passband_end_fraction} and {self.stopband_begin_fraction}"
            )
        if not 40.0 <= self.stopband_attenuation_db <= 180.0:
            raise ConfigError(f"stopband_attenuation_db must be in [40, 180], got {self.stopband_attenuation_db}")


@dataclass(frozen=True)
class FilterBank:
    """Polyphase bank for out/in = up/down: `taps` float32 (up, taps_per_phase), read-only.

    taps[p, i] weights input sample j_hi - taps_per_phase + 1 + i for an output whose position on
    the up-sampled grid, n * down + taps_per_phase * up / 2, has phase p = that % up.
    """

    up: int
    down: int
    taps_per_phase: int
    taps: np.ndarray


def _check_rate(name: str, rate_hz: int) -> int:
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, np.integer)) or not 1000 <= rate_hz <= 768_000:
        raise SampleRateError(f"{name} must be an integer rate in Hz between 1000 and 768000, got {rate_hz!r}")
    return int(rate_hz)


@lru_cache(maxsize=32)
def design_filter_bank(in_rate_hz: int, out_rate_hz: int, config: ResamplerConfig = ResamplerConfig()) -> FilterBank:
    """Kaiser-windowed sinc for in -> out, split into polyphase rows (cached per rate pair)."""
    in_rate_hz, out_rate_hz = _check_rate("in_rate_hz", in_rate_hz), _check_rate("out_rate_hz", out_rate_hz)
    g = math.gcd(in_rate_hz, out_rate_hz)
    up, down = out_rate_hz // g, in_rate_hz // g
    if up > MAX_PHASES:
        raise SampleRateError(
            f"{in_rate_hz} Hz -> {out_rate_hz} Hz reduces to {up}/{down}: more than {MAX_PHASES} phases; "
            "resample through a rate with a simpler ratio"
        )
    scale = min(1.0, up / down)  # cutoff relative to the input Nyquist
    a_db = config.stopband_attenuation_db
    transition = (config.stopband_begin_fraction - config.passband_end_fraction) * 0.5 * scale  # cycles/sample
    length = (a_db - 7.95) / (2.285 * 2.0 * math.pi * transition)  # Kaiser's length estimate (input samples)
    k = 2 * math.ceil(length / 2)  # taps per phase, even so the centre lands on the grid
    if k * up > MAX_BANK_COEFFS:
        raise SampleRateError(f"filter for {in_rate_hz} Hz -> {out_rate_hz} Hz would need {k * up} taps")
    cutoff = 0.5 * (config.passband_end_fraction + config.stopband_begin_fraction) * 0.5 * scale
    beta = 0.1102 * (a_db - 8.7) if a_db > 50 else 0.5842 * (a_db - 21) ** 0.4 + 0.07886 * (a_db - 21)
    tau = np.arange(k * up, dtype=np.float64) / up - k / 2  # offset from the output time, input samples
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (2.0 * tau / k) ** 2, 0.0, None))) / np.i0(beta)
    proto = 2.0 * cutoff * np.sinc(2.0 * cutoff * tau) * window
    proto[0] = 0.0  # tau = -k/2 has no mirror at +k/2: drop it to keep the filter symmetric
    taps = np.ascontiguousarray(proto.reshape(k, up).T[:, ::-1], dtype=np.float32)
    taps.flags.writeable = False
    return FilterBank(up=up, down=down, taps_per_phase=k, taps=taps)


def _resample_kernel(buf: np.ndarray, buf_start: int, taps: np.ndarray, up: int, down: int,
                     n0: int, n_out: int, out: np.ndarray) -> None:
    """out[i] = output sample n0 + i, from input held in buf (buf[0] is input index buf_start)."""
    k = taps.shape[1]
    half = k * up // 2
    for i in range(n_out):
        pos = (n0 + i) * down + half
        j_hi = pos // up
        row = taps[pos - j_hi * up]
        s = j_hi - k + 1 - buf_start
        seg = buf[s:s + k]  # a slice, so indexing below needs no negative-index checks and vectorises
        acc = np.float32(0.0)
        for t in range(k):
            acc += row[t] * seg[t]
        out[i] = acc


_resample_jit = njit(nogil=True, cache=True, fastmath=True)(_resample_kernel)


def resample_reference(x: np.ndarray, in_rate_hz: int, out_rate_hz: int,
                       config: ResamplerConfig = ResamplerConfig()) -> np.ndarray:
    """Whole-signal numpy reference (float64 sums) of what `Resampler` computes; for tests."""
    fb = design_filter_bank(in_rate_hz, out_rate_hz, config)
    k, up, down = fb.taps_per_phase, fb.up, fb.down
    xp = np.concatenate([np.zeros(k), np.asarray(x, np.float64), np.zeros(k)])
    n = np.arange(-(-len(x) * up // down), dtype=np.int64)
    pos = n * down + k * up // 2
    j_hi = pos // up
    idx = (j_hi - k + 1 + k)[:, None] + np.arange(k)[None, :]
    return np.einsum("nk,nk->n", fb.taps[pos % up].astype(np.float64), xp[idx]).astype(np.float32)


def _as_float32_1d(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise AudioError(f"resampler takes 1-D mono float samples, got shape {a.shape} (downmix first)")
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"resampler takes float samples in [-1, 1], got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


class Resampler:
    """Sans-I/O streaming resampler for one mono stream: push float32 chunks, get float32 out.

    Output trails input by half the filter (taps_per_phase / 2 input samples, ~6 ms at 48 kHz
    -> 16 kHz); `flush()` zero-pads the end and returns the rest.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int, config: ResamplerConfig | None = None) -> None:
        self.in_rate_hz = _check_rate("in_rate_hz", in_rate_hz)
        self.out_rate_hz = _check_rate("out_rate_hz", out_rate_hz)
        self.passthrough = self.in_rate_hz == self.out_rate_hz
        self._bank = None if self.passthrough else design_filter_bank(self.in_rate_hz, self.out_rate_hz,
                                                                      config or ResamplerConfig())
        self.reset()

    @property
    def latency_in_samples(self) -> int:
        """Input samples a push must be ahead of an output before it is emitted."""
        return 0 if self._bank is None else self._bank.taps_per_phase // 2

    def reset(self) -> None:
        k = 0 if self._bank is None else self._bank.taps_per_phase
        self._buf = np.zeros(k, np.float32)  # input from index self._buf_start (starts with k zeros)
        self._buf_start = -k
        self.samples_in = 0
        self.samples_out = 0
        self._finished = False

    def push(self, x: np.ndarray) -> np.ndarray:
        """Add float 1-D samples at in_rate_hz; returns the float32 output they complete."""
        if self._finished:
            raise ConfigError("Resampler.push after flush(); call reset() to start a new stream")
        a = _as_float32_1d(x)
        self.samples_in += a.size
        if self._bank is None:
            self.samples_out += a.size
            return a.copy()
        fb = self._bank
        self._buf = np.concatenate([self._buf, a])
        # Output n is ready once its newest input j_hi(n) = (n*down + k*up/2) // up has arrived.
        ready = (self.samples_in * fb.up - fb.taps_per_phase * fb.up // 2 + fb.down - 1) // fb.down
        return self._emit(max(ready, self.samples_out))

    def flush(self) -> np.ndarray:
        """End of stream: the remaining output (the total is ceil(samples_in * out / in))."""
        if self._finished:
            return np.zeros(0, np.float32)
        self._finished = True
        if self._bank is None:
            return np.zeros(0, np.float32)
        fb = self._bank
        self._buf = np.concatenate([self._buf, np.zeros(fb.taps_per_phase, np.float32)])
        return self._emit(-(-self.samples_in * fb.up // fb.down))

    def _emit(self, end: int) -> np.ndarray:
        fb = self._bank
        assert fb is not None
        n_new = end - self.samples_out
        out = np.empty(n_new, np.float32)
        if n_new:
            _resample_jit(self._buf, self._buf_start, fb.taps, fb.up, fb.down, self.samples_out, n_new, out)
        self.samples_out = end
        # Keep input from the oldest sample the next output needs.
        first_needed = (end * fb.down + fb.taps_per_phase * fb.up // 2) // fb.up - fb.taps_per_phase + 1
        drop = max(0, first_needed - self._buf_start)
        if drop:
            self._buf = self._buf[drop:].copy()
            self._buf_start += drop
        return out


def resample(x: np.ndarray, in_rate_hz: int, out_rate_hz: int, config: ResamplerConfig | None = None) -> np.ndarray:
    """Whole-signal resampling, float32 1-D; identical to pushing `x` in any chunks and flushing."""
    r = Resampler(in_rate_hz, out_rate_hz, config)
    head = r.push(x)
    return np.concatenate([head, r.flush()])
