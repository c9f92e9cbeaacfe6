"""Level meters: peak and RMS in dBFS, and EBU R128 / ITU-R BS.1770-4 loudness in LUFS.

Integrated loudness: K-weighting (a +4 dB high shelf from ~1.7 kHz and a 38 Hz high-pass),
mean square over 400 ms blocks every 100 ms, an absolute gate at -70 LUFS, then a relative
gate 10 LU below the loudness of the blocks that passed. `LoudnessMeter` streams this: it keeps
one float per 100 ms (36 kB an hour), so long files are measured at near-constant memory.
"""

from __future__ import annotations

import math

import numpy as np

from rtaudio.dsp.filters import SosFilter
from rtaudio.errors import AudioError, ConfigError

SILENCE_DB = -200.0  # what meters report for digital silence instead of -inf
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
BLOCK_S = 0.4
HOP_S = 0.1


def _float_array(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        raise AudioError(f"meters take float samples in [-1, 1], got dtype {a.dtype}")
    return a


def peak_dbfs(x: np.ndarray) -> float:
    """Sample peak in dBFS (1.0 = 0 dBFS); -200 for silence or empty input."""
    a = _float_array(x)
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else SILENCE_DB


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level in dBFS (a full-scale square wave is 0 dBFS, a full-scale sine -3.01)."""
    a = _float_array(x)
    ms = float(np.mean(np.square(a, dtype=np.float64))) if a.size else 0.0
    return 10.0 * math.log10(ms) if ms > 0 else SILENCE_DB


def k_weighting(rate_hz: int) -> np.ndarray:
    """BS.1770 K-weighting as two float64 sections for any rate.

    At 48 kHz this reproduces the coefficients tabled in BS.1770 (stage 1 shelf b = 1.53512486,
    -2.69169619, 1.19839281; stage 2 a = -1.99004745, 0.99007225); other rates use the same
    analogue prototype through the bilinear transform with pre-warping.
    """
    if rate_hz < 8000:
        raise ConfigError(f"K-weighting needs a sample rate of at least 8000 Hz, got {rate_hz}")
    # Stage 1: high shelf (+4 dB) whose analogue corner and Q were fitted to the 48 kHz table.
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate_hz)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    # Stage 2: the "RLB" high-pass near 38 Hz.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate_hz)
    a0 = 1.0 + k / q + k * k
    rlb = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, rlb], dtype=np.float64)


def gated_loudness(block_powers: np.ndarray) -> float:
    """Integrated LUFS from K-weighted 400 ms block mean squares (two-stage gating)."""
    z = np.asarray(block_powers, dtype=np.float64)
    if z.size == 0:
        return -math.inf
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10.0 * np.log10(z)
    z = z[lk > ABSOLUTE_GATE_LUFS]
    if z.size == 0:
        return -math.inf
    rel_gate = -0.691 + 10.0 * math.log10(float(np.mean(z))) + RELATIVE_GATE_LU
    with np.errstate(divide="ignore"):
        z = z[-0.691 + 10.0 * np.log10(z) > rel_gate]
    return -0.691 + 10.0 * math.log10(float(np.mean(z))) if z.size else -math.inf


class LoudnessMeter:
    """Streaming BS.1770 meter for mono (n,) or multichannel (n, channels) float audio.

    `push()` any chunk sizes; `integrated_lufs()` any time (-inf until a block passes the gates);
    `momentary_lufs()` is the last 400 ms block. Channels are summed with weight 1 (L, R, C).
    """

    def __init__(self, rate_hz: int, channels: int = 1) -> None:
        if channels < 1:
            raise ConfigError(f"channels must be >= 1, got {channels}")
        self.rate_hz = int(rate_hz)
        self.channels = channels
        sos = k_weighting(self.rate_hz)
        self._filters = [SosFilter(sos) for _ in range(channels)]
        self._hop = int(round(HOP_S * self.rate_hz))
        self._hops_per_block = int(round(BLOCK_S / HOP_S))
        self._acc = 0.0  # sum of squares in the current hop
        self._acc_n = 0
        self._hop_sums: list[float] = []  # last few complete hops (sum of squares, all channels)
        self._blocks: list[float] = []  # mean square of each complete 400 ms block
        self.samples_in = 0

    def push(self, x: np.ndarray) -> None:
        a = _float_array(x)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != self.channels:
            raise AudioError(f"meter expects (frames, {self.channels}) samples, got shape {np.shape(x)}")
        sq = np.zeros(a.shape[0], np.float64)
        for ch, f in enumerate(self._filters):
            y = f.push(np.ascontiguousarray(a[:, ch], dtype=np.float32)).astype(np.float64)
            sq += y * y
        self.samples_in += a.shape[0]
        i = 0
        while i < sq.size:
            take = min(self._hop - self._acc_n, sq.size - i)
            self._acc += float(np.sum(sq[i:i + take]))
            self._acc_n += take
            i += take
            if self._acc_n == self._hop:
                self._hop_sums.append(self._acc)
                self._acc, self._acc_n = 0.0, 0
                if len(self._hop_sums) >= self._hops_per_block:
                    block = self._hop_sums[-self._hops_per_block:]
                    self._blocks.append(sum(block) / (self._hop * self._hops_per_block))
                    del self._hop_sums[: -self._hops_per_block + 1]

    def integrated_lufs(self) -> float:
        return gated_loudness(np.array(self._blocks))

    def momentary_lufs(self) -> float:
        if not self._blocks or self._blocks[-1] <= 0:
            return -math.inf
        return -0.691 + 10.0 * math.log10(self._blocks[-1])


def integrated_lufs(x: np.ndarray, rate_hz: int) -> float:
    """Integrated loudness of a whole signal (n,) or (n, channels) in LUFS; -inf if all gated out."""
    a = _float_array(x)
    meter = LoudnessMeter(rate_hz, 1 if a.ndim == 1 else int(a.shape[1]))
    meter.push(a)
    return meter.integrated_lufs()
