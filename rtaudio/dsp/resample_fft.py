"""FFT block engine of the resampler: polyphase overlap-save at the common low rate.

For out/in = L/M (small L, M), write output n = L*a + p and input j = M*b + q. Output phase p is
then a sum over input phases q of ordinary convolutions at the low rate in/M = out/L:

    y_p[a] = sum_q sum_d g[p, q, d] * x_q[a - dmin - d],   x_q[b] = x[M*b + q]

with g the bank's taps regrouped (`design_fft_plan`). Each convolution is done by overlap-save
on blocks of `hop` low-rate outputs, FFT size `nfft`: M forward real FFTs, L*M products per bin
and L inverse real FFTs per block, instead of k multiply-adds per output. Blocks sit at fixed
absolute stream positions (block b: outputs L*hop*b .. L*hop*(b+1) - 1), so any chunking of the
input computes the same blocks from the same samples: bit-identical output.

Each real window of nfft samples goes through one complex FFT of nfft/2 points (even samples
as real part, odd as imaginary); the real-input split, the filter and the real-output merge fold
into two complex products per bin (`_spectral_product`). No bit-reversal permutation is ever
applied: the forward FFTs (decimation in frequency) take the windows in natural order, a gather
with unit stride, and leave bit-reversed spectra; the product works in that order (coefficients
stored permuted, `pair` finding bin nh - k) and the inverse (decimation in time) takes it as it is.
The FFTs are our own float32 radix-2 kernels: numpy's pocketfft costs ~5 us a call, about half a
block's budget here. float32 arithmetic puts the noise floor
near -136 dB (sine-sweep SNR), level with soxr HQ; bench/dsp.py measures it. soxr does integer
ratios with one DFT stage too (read for the idea only).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from rtaudio.dsp import resample_lanes
from rtaudio.errors import ConfigError

if TYPE_CHECKING:
    from rtaudio.dsp.resample import FilterBank

MAX_FFT_RATIO = 8  # up and down both at most this: the FFT engine; above, the direct kernels
MAX_NFFT = 4096


@dataclass(frozen=True, eq=False)
class FftPlan:
    """Overlap-save plan for out/in = up/down (cached, read-only: shared by every stream).

    The spectral coefficients carry the 1/(nfft/2) of the unnormalised inverse FFT.
    """

    up: int
    down: int
    nfft: int
    hop: int
    """Low-rate outputs per block (each is `up` outputs): nfft - taps + 1."""
    taps: int
    """Length D of every sub-filter g[p, q, :], low-rate samples."""
    dmin: int
    """Offset of g[..., 0]: y_p[a] uses x_q[a - dmin - d]; negative dmin reads ahead."""
    g: np.ndarray
    """float64 (up, down, taps) sub-filters, for the numpy reference."""
    coef: np.ndarray
    """float32 (4, up, down, nfft/2): re A, im A, re B, im B (from `_spectral_product`), in the
    bit-reversed order the FFTs leave spectra in: [..., i] is bin rev[i]."""
    twiddles: np.ndarray
    """float32 (3, nfft/2): the half-size FFT's twiddles by stage, st[h + t] = exp(-2 pi i t / 2h):
    re, im (forward) and -im (inverse)."""
    rev: np.ndarray
    """int64 (nfft/2,) bit reversal permutation of the half-size complex FFT."""
    pair: np.ndarray
    """int64 (nfft/2,): pair[i] = rev[(nfft/2 - rev[i]) % (nfft/2)], where a bit-reversed spectrum holds
    bin nfft/2 - k when row i holds bin k."""

    @property
    def dmax(self) -> int:
        return self.dmin + self.taps - 1

    def blocks_ready(self, samples_in: int) -> int:
        """Blocks whose every input sample has arrived: block b needs inputs < down*((b+1)*hop - dmin)."""
        return max(0, (samples_in // self.down + self.dmin) // self.hop)

    def first_input_needed(self, block: int) -> int:
        """Absolute input index of the oldest sample block `block` reads."""
        return self.down * (block * self.hop - self.dmax)


def subfilter_span(bank: FilterBank) -> tuple[int, int]:
    """(dmin, dmax): the low-rate lags the sub-filters of `bank` cover (see module docstring)."""
    k, up, down = bank.taps_per_phase, bank.up, bank.down
    c = [(p * down + k * up // 2) // up for p in range(up)]  # newest input j_hi of output phase p at a = 0
    # Tap i of output phase p reads input j = M*a + c_p - k + 1 + i = M*b + q: i = q - c_p + k - 1 - M*d.
    dmin = min(-((c[p] - q) // down) for p in range(up) for q in range(down))
    dmax = max((q - c[p] + k - 1) // down for p in range(up) for q in range(down))
    return dmin, dmax


def choose_nfft(bank: FilterBank, out_rate_hz: int, max_block_ms: float) -> int | None:
    """Largest FFT size whose block is at most max_block_ms of output; None: use the direct kernels."""
    if max(bank.up, bank.down) > MAX_FFT_RATIO:
        return None
    dmin, dmax = subfilter_span(bank)
    n_taps = dmax - dmin + 1
    best = None
    nfft = 16
    while nfft <= MAX_NFFT:
        hop = nfft - n_taps + 1
        if nfft >= 2 * n_taps and hop * bank.up * 1000.0 / out_rate_hz <= max_block_ms:
            best = nfft
        nfft *= 2
    return best


@lru_cache(maxsize=32)
def design_fft_plan(bank: FilterBank, nfft: int) -> FftPlan:
    """Regroup a polyphase bank into its up * down sub-filters and their spectra (cached per bank)."""
    bank_taps, up, down = bank.taps, bank.up, bank.down
    k = bank.taps_per_phase
    half = k * up // 2
    c = [(p * down + half) // up for p in range(up)]
    dmin, dmax = subfilter_span(bank)
    n_taps = dmax - dmin + 1
    if nfft < max(16, 2 * n_taps) or nfft & (nfft - 1):
        raise ConfigError(f"nfft {nfft} must be a power of two >= max(16, 2 * {n_taps})")
    g = np.zeros((up, down, n_taps))
    for p in range(up):
        row = bank_taps[(p * down + half) % up].astype(np.float64)
        for q in range(down):
            for d in range(dmin, dmax + 1):
                i = q - c[p] + k - 1 - down * d
                if 0 <= i < k:
                    g[p, q, d - dmin] = row[i]
    a, b = _spectral_product(np.fft.rfft(g, nfft, axis=2) / (nfft // 2))  # our inverse is unnormalised
    h = np.concatenate([np.full(1, 1)] + [np.full(1 << e, 1 << e) for e in range(int(math.log2(nfft // 2)))])
    t = np.arange(nfft // 2) - h
    t[0] = 0
    bits = int(math.log2(nfft // 2))
    rev = np.array([int(f"{i:0{bits}b}"[::-1], 2) if bits else 0 for i in range(nfft // 2)], np.int64)
    plan = FftPlan(
        up=up, down=down, nfft=nfft, hop=nfft - n_taps + 1, taps=n_taps, dmin=dmin, g=g,
        coef=np.ascontiguousarray(np.stack([a.real, a.imag, b.real, b.imag])[..., rev], np.float32), rev=rev,
        pair=rev[(nfft // 2 - rev) % (nfft // 2)],
        twiddles=np.stack([np.cos(np.pi * t / h), -np.sin(np.pi * t / h), np.sin(np.pi * t / h)]).astype(np.float32),
    )
    for arr in (plan.g, plan.coef, plan.twiddles, plan.rev, plan.pair):
        arr.flags.writeable = False  # shared by every stream through the cache
    return plan


def _spectral_product(spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A, B (complex128, (up, down, nh)) with Zout_p[k] = sum_q A Z_q[k] + B conj Z_q[(nh - k) % nh].

    spec: (up, down, nh + 1) filter spectra G. A real signal of length N = 2 nh is transformed as
    the complex z[m] = x[2m] + i x[2m+1] of length nh: X[k] = alpha_k Z[k] + beta_k conj Z[nh - k],
    alpha = (1 - i W^k) / 2, beta = (1 + i W^k) / 2, W = exp(-2 pi i / N); the inverse packs
    Y = G X back as Zout[k] = gamma_k Y[k] + delta_k conj Y[nh - k], gamma = (1 + i W^-k) / 2,
    delta = (1 - i W^-k) / 2. Expanding both gives A and B.
    """
    nh = spec.shape[2] - 1
    k = np.arange(nh + 1)
    w = np.exp(-2j * np.pi * k / (2 * nh))
    alpha, beta = (1 - 1j * w) / 2, (1 + 1j * w) / 2
    gamma, delta = (1 + 1j / w[:nh]) / 2, (1 - 1j / w[:nh]) / 2
    g, g_rev = spec[:, :, :nh], spec[:, :, nh:0:-1]  # G[k] and G[nh - k], k < nh
    a = gamma * g * alpha[:nh] + delta * np.conj(g_rev * beta[nh:0:-1])
    b = gamma * g * beta[:nh] + delta * np.conj(g_rev * alpha[nh:0:-1])
    return a, b


@njit(nogil=True, cache=True, inline="always")
def _cmul(c: float, d: float, r: float, i: float) -> tuple[float, float]:
    return c * r - d * i, c * i + d * r


def _fft_natural_in(re: np.ndarray, im: np.ndarray, tw_re: np.ndarray, tw_im: np.ndarray) -> None:
    """In-place unnormalised forward complex FFT of size n = re.size (a power of two >= 8), float32.

    Input in natural order, output bit-reversed (the spectral product reads it there, so the
    windows are gathered with unit stride and no permutation is ever applied). Radix-2
    decimation in frequency: the big stages first, twiddles tw_*[h + t] = exp(-2 pi i t / 2h)
    read contiguously so the butterfly loop vectorises; the last three fused per group of 8, with
    their twiddles -i exact (forward only).
    """
    n = re.size
    h = n // 2
    while h >= 8:
        wr, wi = tw_re[h:2 * h], tw_im[h:2 * h]
        for s in range(0, n, 2 * h):
            ra, ia, rb, ib = re[s:s + h], im[s:s + h], re[s + h:s + 2 * h], im[s + h:s + 2 * h]
            for t in range(h):
                dr = ra[t] - rb[t]
                di = ia[t] - ib[t]
                ra[t] = ra[t] + rb[t]
                ia[t] = ia[t] + ib[t]
                rb[t], ib[t] = _cmul(wr[t], wi[t], dr, di)
        h //= 2
    c41, d41, c43, d43 = tw_re[5], tw_im[5], tw_re[7], tw_im[7]
    for s in range(0, n, 8):
        x0, x1, x2, x3, x4, x5, x6, x7 = re[s], re[s + 1], re[s + 2], re[s + 3], re[s + 4], re[s + 5], re[s + 6], re[s + 7]
        y0, y1, y2, y3, y4, y5, y6, y7 = im[s], im[s + 1], im[s + 2], im[s + 3], im[s + 4], im[s + 5], im[s + 6], im[s + 7]
        # h = 4 (twiddles 1, w41, -i, w43)
        a0r, a0i, a4r, a4i = x0 + x4, y0 + y4, x0 - x4, y0 - y4
        a1r, a1i = x1 + x5, y1 + y5
        a5r, a5i = _cmul(c41, d41, x1 - x5, y1 - y5)
        a2r, a2i, a6r, a6i = x2 + x6, y2 + y6, y2 - y6, x6 - x2
        a3r, a3i = x3 + x7, y3 + y7
        a7r, a7i = _cmul(c43, d43, x3 - x7, y3 - y7)
        # h = 2 (twiddles 1, -i)
        b0r, b0i, b2r, b2i = a0r + a2r, a0i + a2i, a0r - a2r, a0i - a2i
        b1r, b1i, b3r, b3i = a1r + a3r, a1i + a3i, a1i - a3i, a3r - a1r
        b4r, b4i, b6r, b6i = a4r + a6r, a4i + a6i, a4r - a6r, a4i - a6i
        b5r, b5i, b7r, b7i = a5r + a7r, a5i + a7i, a5i - a7i, a7r - a5r
        # h = 1
        re[s], im[s], re[s + 1], im[s + 1] = b0r + b1r, b0i + b1i, b0r - b1r, b0i - b1i
        re[s + 2], im[s + 2], re[s + 3], im[s + 3] = b2r + b3r, b2i + b3i, b2r - b3r, b2i - b3i
        re[s + 4], im[s + 4], re[s + 5], im[s + 5] = b4r + b5r, b4i + b5i, b4r - b5r, b4i - b5i
        re[s + 6], im[s + 6], re[s + 7], im[s + 7] = b6r + b7r, b6i + b7i, b6r - b7r, b6i - b7i


def _fft_bitrev_in(re: np.ndarray, im: np.ndarray, tw_re: np.ndarray, tw_im: np.ndarray) -> None:
    """In-place unnormalised complex FFT of size n = re.size (a power of two >= 8), float32.

    Input in bit-reversed order (the order `_fft_natural_in` leaves a spectrum in), output natural.
    tw_*[h + t] = exp(-2 pi i t / 2h) (forward; conjugate it for the inverse) for the stage of
    half-size h. Radix-2 decimation in time: the first three stages run fused per group of 8, the
    rest read their twiddles contiguously so the butterfly loop vectorises.
    """
    n = re.size
    c2, d2 = tw_re[3], tw_im[3]
    c41, d41, c42, d42, c43, d43 = tw_re[5], tw_im[5], tw_re[6], tw_im[6], tw_re[7], tw_im[7]
    for s in range(0, n, 8):
        # h = 1
        a0r, a0i = re[s] + re[s + 1], im[s] + im[s + 1]
        a1r, a1i = re[s] - re[s + 1], im[s] - im[s + 1]
        a2r, a2i = re[s + 2] + re[s + 3], im[s + 2] + im[s + 3]
        a3r, a3i = re[s + 2] - re[s + 3], im[s + 2] - im[s + 3]
        a4r, a4i = re[s + 4] + re[s + 5], im[s + 4] + im[s + 5]
        a5r, a5i = re[s + 4] - re[s + 5], im[s + 4] - im[s + 5]
        a6r, a6i = re[s + 6] + re[s + 7], im[s + 6] + im[s + 7]
        a7r, a7i = re[s + 6] - re[s + 7], im[s + 6] - im[s + 7]
        # h = 2
        yr, yi = _cmul(c2, d2, a3r, a3i)
        b0r, b0i, b2r, b2i = a0r + a2r, a0i + a2i, a0r - a2r, a0i - a2i
        b1r, b1i, b3r, b3i = a1r + yr, a1i + yi, a1r - yr, a1i - yi
        yr, yi = _cmul(c2, d2, a7r, a7i)
        b4r, b4i, b6r, b6i = a4r + a6r, a4i + a6i, a4r - a6r, a4i - a6i
        b5r, b5i, b7r, b7i = a5r + yr, a5i + yi, a5r - yr, a5i - yi
        # h = 4
        re[s], im[s], re[s + 4], im[s + 4] = b0r + b4r, b0i + b4i, b0r - b4r, b0i - b4i
        yr, yi = _cmul(c41, d41, b5r, b5i)
        re[s + 1], im[s + 1], re[s + 5], im[s + 5] = b1r + yr, b1i + yi, b1r - yr, b1i - yi
        yr, yi = _cmul(c42, d42, b6r, b6i)
        re[s + 2], im[s + 2], re[s + 6], im[s + 6] = b2r + yr, b2i + yi, b2r - yr, b2i - yi
        yr, yi = _cmul(c43, d43, b7r, b7i)
        re[s + 3], im[s + 3], re[s + 7], im[s + 7] = b3r + yr, b3i + yi, b3r - yr, b3i - yi
    h = 8
    while h < n:
        wr, wi = tw_re[h:2 * h], tw_im[h:2 * h]
        for s in range(0, n, 2 * h):
            ra, ia, rb, ib = re[s:s + h], im[s:s + h], re[s + h:s + 2 * h], im[s + h:s + 2 * h]
            for t in range(h):
                c, d = wr[t], wi[t]
                xr = c * rb[t] - d * ib[t]
                xi = c * ib[t] + d * rb[t]
                rb[t] = ra[t] - xr
                ib[t] = ia[t] - xi
                ra[t] = ra[t] + xr
                ia[t] = ia[t] + xi
        h *= 2


_fft_fwd_jit = njit(nogil=True, cache=True)(_fft_natural_in)
_fft_jit = njit(nogil=True, cache=True)(_fft_bitrev_in)


def _blocks_kernel(buf: np.ndarray, buf_start: int, n_avail: int, block0: int, n_blocks: int,
                   out: np.ndarray, out_start: int, hop: int, dmax: int, coef: np.ndarray,
                   twiddles: np.ndarray, pair: np.ndarray, spectra: np.ndarray, acc: np.ndarray) -> None:
    """Blocks block0 .. block0 + n_blocks - 1 into out (out[0] is output out_start; others skipped).

    buf[0] is input buf_start; inputs below 0 or at/after n_avail read as zeros (stream start, flush).
    Scratch, float32: spectra (4, down, nfft/2) and acc (2, nfft/2). Few arguments on purpose:
    each array costs Numba's dispatcher ~0.3 us, and a 20 ms push has ~10 us in all.
    """
    zr, zi, zr2, zi2 = spectra[0], spectra[1], spectra[2], spectra[3]
    wr, wi = acc[0], acc[1]
    a_re, a_im, b_re, b_im = coef[0], coef[1], coef[2], coef[3]
    st_re, st_im, st_im_inv = twiddles[0], twiddles[1], twiddles[2]
    up, down, nh = coef.shape[1], coef.shape[2], coef.shape[3]
    n_taps = 2 * nh - hop + 1
    for blk in range(block0, block0 + n_blocks):
        # Input phase q's window w[t] = x[j0 + t * down + q], t < nfft, as z[m] = w[2m] + i w[2m+1]:
        # row m of phase q, part c (re, im) is x[j0 + 2 * down * m + c * down + q].
        j0 = down * (blk * hop - dmax)
        if j0 >= 0 and j0 + 2 * nh * down <= n_avail:  # whole window inside: the usual case
            ev = buf[j0 - buf_start:]
            for q in range(down):
                zrq, ziq = zr[q], zi[q]
                for m in range(nh):
                    zrq[m] = ev[2 * down * m + q]
                    ziq[m] = ev[2 * down * m + down + q]
        else:
            for q in range(down):
                zrq, ziq = zr[q], zi[q]
                for m in range(nh):
                    j = j0 + 2 * down * m + q
                    zrq[m] = buf[j - buf_start] if 0 <= j < n_avail else np.float32(0.0)
                    j += down
                    ziq[m] = buf[j - buf_start] if 0 <= j < n_avail else np.float32(0.0)
        for q in range(down):
            _fft_fwd_jit(zr[q], zi[q], st_re, st_im)  # Z_q, bit-reversed: row i holds bin rev[i]
            zrq, ziq, zrm, zim = zr[q], zi[q], zr2[q], zi2[q]
            for i in range(nh):  # the bin nh - k beside bin k, so the product's loops vectorise
                zrm[i] = zrq[pair[i]]
                zim[i] = ziq[pair[i]]
        for p in range(up):
            # Output phase p's half-size spectrum, in the bit-reversed order the inverse takes:
            # Zout[k] = sum_q A[p, q, k] Z_q[k] + B[p, q, k] conj Z_q[nh - k] (the real-FFT split, the
            # filter and the inverse split in one product); the row of bin nh - k is pair[i].
            wr[:] = 0.0
            wi[:] = 0.0
            for q in range(down):
                ar, ai, br, bi = a_re[p, q], a_im[p, q], b_re[p, q], b_im[p, q]
                zrq, ziq, zrm, zim = zr[q], zi[q], zr2[q], zi2[q]
                for i in range(nh):
                    wr[i] += (ar[i] * zrq[i] - ai[i] * ziq[i]) + (br[i] * zrm[i] + bi[i] * zim[i])
                    wi[i] += (ar[i] * ziq[i] + ai[i] * zrq[i]) + (bi[i] * zrm[i] - br[i] * zim[i])
            _fft_jit(wr, wi, st_re, st_im_inv)
            # Circular samples t >= n_taps - 1 are valid: low-rate output a = blk * hop + t - (n_taps - 1).
            a0 = blk * hop - (n_taps - 1)
            t_lo = max(n_taps - 1, (out_start - p + up - 1) // up - a0)
            t_hi = min(2 * nh, (out_start + out.size - p + up - 1) // up - a0)
            for t in range(t_lo + t_lo % 2, t_hi, 2):
                out[up * (a0 + t) + p - out_start] = wr[t // 2]
            for t in range(t_lo + 1 - t_lo % 2, t_hi, 2):
                out[up * (a0 + t) + p - out_start] = wi[t // 2]


_blocks_jit = njit(nogil=True, cache=True)(_blocks_kernel)


class FftScratch:
    """Per-stream scratch for `_blocks_kernel`, allocated once (no allocation per push)."""

    def __init__(self, plan: FftPlan) -> None:
        nh = plan.nfft // 2
        self.spectra = np.zeros((4, plan.down, nh), np.float32)
        self.acc = np.zeros((2, nh), np.float32)


_LANE_SCRATCH = threading.local()  # one per thread, reused by every stream and call: ~1 MB, fully overwritten


def _lane_scratch(size: int) -> np.ndarray:
    buf: np.ndarray | None = getattr(_LANE_SCRATCH, "buf", None)
    if buf is None or buf.size < size:
        buf = _LANE_SCRATCH.buf = np.empty(size, np.float32)
    return buf


def run_blocks(plan: FftPlan, scratch: FftScratch, buf: np.ndarray, buf_start: int, n_avail: int,
               block0: int, n_blocks: int, out: np.ndarray, out_start: int) -> None:
    """Compute blocks block0 .. block0 + n_blocks - 1 into out (see `_blocks_kernel`).

    Runs of many blocks (a whole signal, a file's big pushes) go `resample_lanes.LANES` at a time
    through the lane kernel, bit-identical and faster; a live stream's one block per push, and a
    remainder under `resample_lanes.MIN_BLOCKS`, go one at a time.
    """
    lanes = resample_lanes.LANES
    n_lane = n_blocks if n_blocks % lanes >= resample_lanes.MIN_BLOCKS else n_blocks - n_blocks % lanes
    if n_lane > 0:
        resample_lanes.lanes_jit(buf, buf_start, n_avail, block0, n_lane, out, out_start, plan.hop, plan.dmax,
                                 plan.coef, plan.twiddles, plan.pair, lanes,
                                 _lane_scratch(resample_lanes.scratch_size(plan.down, plan.nfft, lanes)))
    if n_blocks > n_lane:
        _blocks_jit(buf, buf_start, n_avail, block0 + n_lane, n_blocks - n_lane, out, out_start, plan.hop,
                    plan.dmax, plan.coef, plan.twiddles, plan.pair, scratch.spectra, scratch.acc)


def blocks_reference(plan: FftPlan, x: np.ndarray, n_out: int) -> np.ndarray:
    """Numpy (float64 np.fft) reference of the block engine over a whole signal x (zeros around it)."""
    up, down, hop, nfft = plan.up, plan.down, plan.hop, plan.nfft
    n_blocks = -(-n_out // (up * hop))
    n_low = n_blocks * hop + plan.taps
    xx = np.zeros(down * (n_low + plan.dmax + 1))
    head = down * plan.dmax  # xx[head + j] = x[j]
    m = min(x.size, xx.size - head)
    xx[head:head + m] = x[:m]
    xq = xx.reshape(-1, down).T  # xq[q, b + dmax] = x_q[b]
    g = np.fft.rfft(plan.g, nfft, axis=2)
    y = np.zeros((up, n_blocks * hop))
    for blk in range(n_blocks):
        win = xq[:, blk * hop: blk * hop + nfft]
        spec = np.einsum("pqf,qf->pf", g, np.fft.rfft(win, nfft, axis=1))
        y[:, blk * hop:(blk + 1) * hop] = np.fft.irfft(spec, nfft, axis=1)[:, plan.taps - 1:]
    return y.T.reshape(-1)[:n_out].astype(np.float32)
