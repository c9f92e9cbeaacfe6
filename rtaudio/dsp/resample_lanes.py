"""Many overlap-save blocks at once: the FFT engine's blocks as SIMD lanes (whole signals, big pushes).

`resample_fft._blocks_kernel` transforms one block at a time and vectorises inside each FFT, where
the first stages are too short for SIMD. Here `lanes` consecutive blocks are transformed together,
laid out (nh, lanes) so every butterfly, product and sum runs across blocks with unit stride: the
512-point FFT takes ~1.0 us a lane at 64 lanes instead of ~3.1 us (one core, AVX2), and a whole
signal ~1.3x less time in all; the gather of the windows into lanes (strided stores) is now the
largest single cost after the forward FFTs. Each lane does the
very operations of `_blocks_kernel`, in the same order and without fastmath, so the output is
bit-identical to it, whatever the grouping: `run_blocks` may send any run of blocks either way and
streams stay equal to `resample()` bit for bit (tests compare both ways).
"""

from __future__ import annotations

import numpy as np
from numba import njit

LANES = 64  # blocks per group: fastest measured (32-192 tried; the loops vectorise 32 lanes at a time)
MIN_BLOCKS = 16  # fewer blocks than this go one at a time (`_blocks_kernel`): equal speed at ~8


def scratch_size(down: int, nfft: int, lanes: int) -> int:
    """float32 scratch `_lanes_kernel` needs: `down` input spectra, one output spectrum, 4 rows of sums."""
    return (2 * down + 2) * (nfft // 2) * lanes + 4 * lanes


def _fft_lanes(re: np.ndarray, im: np.ndarray, tw_re: np.ndarray, tw_im: np.ndarray) -> None:
    """`resample_fft._fft_bitrev_in` on every column of re, im (nh, lanes) float32, in place.

    Same stages, twiddles and operation order per lane (bit-identical); the loops over lanes are
    innermost and contiguous, so they vectorise at every stage.
    """
    n, nv = re.shape
    c2, d2 = tw_re[3], tw_im[3]
    c41, d41, c42, d42, c43, d43 = tw_re[5], tw_im[5], tw_re[6], tw_im[6], tw_re[7], tw_im[7]
    for s in range(0, n, 8):
        x0, x1, x2, x3, x4, x5, x6, x7 = re[s], re[s + 1], re[s + 2], re[s + 3], re[s + 4], re[s + 5], re[s + 6], re[s + 7]
        y0, y1, y2, y3, y4, y5, y6, y7 = im[s], im[s + 1], im[s + 2], im[s + 3], im[s + 4], im[s + 5], im[s + 6], im[s + 7]
        for v in range(nv):
            # h = 1
            a0r, a0i = x0[v] + x1[v], y0[v] + y1[v]
            a1r, a1i = x0[v] - x1[v], y0[v] - y1[v]
            a2r, a2i = x2[v] + x3[v], y2[v] + y3[v]
            a3r, a3i = x2[v] - x3[v], y2[v] - y3[v]
            a4r, a4i = x4[v] + x5[v], y4[v] + y5[v]
            a5r, a5i = x4[v] - x5[v], y4[v] - y5[v]
            a6r, a6i = x6[v] + x7[v], y6[v] + y7[v]
            a7r, a7i = x6[v] - x7[v], y6[v] - y7[v]
            # h = 2
            yr, yi = c2 * a3r - d2 * a3i, c2 * a3i + d2 * a3r
            b0r, b0i, b2r, b2i = a0r + a2r, a0i + a2i, a0r - a2r, a0i - a2i
            b1r, b1i, b3r, b3i = a1r + yr, a1i + yi, a1r - yr, a1i - yi
            yr, yi = c2 * a7r - d2 * a7i, c2 * a7i + d2 * a7r
            b4r, b4i, b6r, b6i = a4r + a6r, a4i + a6i, a4r - a6r, a4i - a6i
            b5r, b5i, b7r, b7i = a5r + yr, a5i + yi, a5r - yr, a5i - yi
            # h = 4
            x0[v], y0[v], x4[v], y4[v] = b0r + b4r, b0i + b4i, b0r - b4r, b0i - b4i
            yr, yi = c41 * b5r - d41 * b5i, c41 * b5i + d41 * b5r
            x1[v], y1[v], x5[v], y5[v] = b1r + yr, b1i + yi, b1r - yr, b1i - yi
            yr, yi = c42 * b6r - d42 * b6i, c42 * b6i + d42 * b6r
            x2[v], y2[v], x6[v], y6[v] = b2r + yr, b2i + yi, b2r - yr, b2i - yi
            yr, yi = c43 * b7r - d43 * b7i, c43 * b7i + d43 * b7r
            x3[v], y3[v], x7[v], y7[v] = b3r + yr, b3i + yi, b3r - yr, b3i - yi
    h = 8
    while h < n:
        for s in range(0, n, 2 * h):
            for t in range(h):
                c, d = tw_re[h + t], tw_im[h + t]
                ra, ia, rb, ib = re[s + t], im[s + t], re[s + h + t], im[s + h + t]
                for v in range(nv):
                    xr = c * rb[v] - d * ib[v]
                    xi = c * ib[v] + d * rb[v]
                    rb[v] = ra[v] - xr
                    ib[v] = ia[v] - xi
                    ra[v] = ra[v] + xr
                    ia[v] = ia[v] + xi
        h *= 2


_fft_lanes_jit = njit(nogil=True, cache=True)(_fft_lanes)


def _lanes_kernel(buf: np.ndarray, buf_start: int, n_avail: int, block0: int, n_blocks: int,
                  out: np.ndarray, out_start: int, hop: int, dmax: int, coef: np.ndarray,
                  twiddles: np.ndarray, rev: np.ndarray, lanes: int, scratch: np.ndarray) -> None:
    """`resample_fft._blocks_kernel`'s contract (same arguments, same output), `lanes` blocks at a time.

    scratch: float32, at least `scratch_size(down, nfft, lanes)`. Output phase p's spectrum is summed straight into its
    bit-reversed place (W[rev k] = U[k] + V[nh - k]), so no full U, V planes are kept.
    """
    a_re, a_im, b_re, b_im = coef[0], coef[1], coef[2], coef[3]
    st_re, st_im, st_im_inv = twiddles[0], twiddles[1], twiddles[2]
    up, down, nh = coef.shape[1], coef.shape[2], coef.shape[3]
    n_taps = 2 * nh - hop + 1
    for g0 in range(block0, block0 + n_blocks, lanes):
        nv = min(lanes, block0 + n_blocks - g0)
        z = scratch[:2 * down * nh * nv].reshape(down, 2, nh, nv)
        w = scratch[2 * down * nh * nv:(2 * down + 2) * nh * nv].reshape(2, nh, nv)
        acc = scratch[(2 * down + 2) * nh * nv:(2 * down + 2) * nh * nv + 4 * nv].reshape(4, nv)
        wr, wi, ur, ui, vr, vi = w[0], w[1], acc[0], acc[1], acc[2], acc[3]
        for q in range(down):
            zrq, ziq = z[q, 0], z[q, 1]
            for v in range(nv):  # lane v: block g0 + v's window of input phase q, as in _blocks_kernel
                j0 = down * ((g0 + v) * hop - dmax) + q
                if j0 >= 0 and j0 + (2 * nh - 1) * down < n_avail:
                    ev = buf[j0 - buf_start:]
                    for i in range(nh):
                        j = 2 * down * rev[i]
                        zrq[i, v] = ev[j]
                        ziq[i, v] = ev[j + down]
                else:
                    for i in range(nh):
                        j = j0 + 2 * down * rev[i]
                        zrq[i, v] = buf[j - buf_start] if 0 <= j < n_avail else np.float32(0.0)
                        j += down
                        ziq[i, v] = buf[j - buf_start] if 0 <= j < n_avail else np.float32(0.0)
            _fft_lanes_jit(zrq, ziq, st_re, st_im)
        for p in range(up):
            for i in range(nh):
                k = rev[i]
                kk = (nh - k) & (nh - 1)
                ur[:] = 0.0
                ui[:] = 0.0
                vr[:] = 0.0
                vi[:] = 0.0
                for q in range(down):
                    ar, ai, br, bi = a_re[p, q, k], a_im[p, q, k], b_re[p, q, kk], b_im[p, q, kk]
                    zk_r, zk_i, zkk_r, zkk_i = z[q, 0, k], z[q, 1, k], z[q, 0, kk], z[q, 1, kk]
                    for v in range(nv):
                        ur[v] += ar * zk_r[v] - ai * zk_i[v]
                        ui[v] += ar * zk_i[v] + ai * zk_r[v]
                        vr[v] += br * zkk_r[v] + bi * zkk_i[v]
                        vi[v] += bi * zkk_r[v] - br * zkk_i[v]
                wr_i, wi_i = wr[i], wi[i]
                for v in range(nv):
                    wr_i[v] = ur[v] + vr[v]
                    wi_i[v] = ui[v] + vi[v]
            _fft_lanes_jit(wr, wi, st_re, st_im_inv)
            for v in range(nv):
                a0 = (g0 + v) * hop - (n_taps - 1)
                t_lo = max(n_taps - 1, (out_start - p + up - 1) // up - a0)
                t_hi = min(2 * nh, (out_start + out.size - p + up - 1) // up - a0)
                for t in range(t_lo + t_lo % 2, t_hi, 2):
                    out[up * (a0 + t) + p - out_start] = wr[t // 2, v]
                for t in range(t_lo + 1 - t_lo % 2, t_hi, 2):
                    out[up * (a0 + t) + p - out_start] = wi[t // 2, v]


lanes_jit = njit(nogil=True, cache=True)(_lanes_kernel)
