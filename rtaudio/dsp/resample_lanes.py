"""Many overlap-save blocks at once: the FFT engine's blocks as SIMD lanes (whole signals, big pushes).

`resample_fft._blocks_kernel` transforms one block at a time and vectorises inside each FFT, where
the last stages are too short for SIMD. Here `lanes` consecutive blocks are transformed together,
laid out (nh, lanes) so every butterfly, product and sum runs across blocks with unit stride.
What keeps it fast is memory traffic, since 64 lanes of 512 rows are 128 KB a plane: the windows
are gathered row by row (each lane reads 2 * down consecutive inputs a row, every store is
contiguous), and the FFTs do two radix-2 stages per pass over memory (radix 2^2 with the very
operations of two radix-2 stages). Each lane does the operations of `_blocks_kernel` in the same
order and without fastmath, so the output is bit-identical to it, whatever the grouping:
`run_blocks` may send any run of blocks either way and streams stay equal to `resample()` bit for
bit (tests compare both ways).
"""

from __future__ import annotations

import numpy as np
from numba import njit

LANES = 64  # blocks per group: fastest measured (32-128 tried: fewer pay ~100 cycles of loop set-up a row, more overflow L2)
MIN_BLOCKS = 16  # fewer blocks than this go one at a time (`_blocks_kernel`)
TILE_ROWS = 16  # FFT rows gathered per tile: 64 lanes x 16 rows x 2 * down floats stay in L1


def scratch_size(down: int, nfft: int, lanes: int) -> int:
    """float32 scratch `_lanes_kernel` needs: `down` input spectra, one output spectrum, the gather's tile."""
    return (2 * down + 2) * (nfft // 2) * lanes + lanes * min(TILE_ROWS, nfft // 2) * 2 * down



def _fft_lanes_natural_in(re: np.ndarray, im: np.ndarray, tw_re: np.ndarray, tw_im: np.ndarray) -> None:
    """`resample_fft._fft_natural_in` on every column of re, im (nh, lanes) float32, in place.

    Same butterflies, twiddles and operation order per lane (bit-identical); stages h and h/2
    share one pass over memory, and the loops over lanes are innermost and contiguous.
    """
    n, nv = re.shape
    h = n // 2
    while h >= 8:
        if h >= 16:
            g = h // 2
            for s in range(0, n, 2 * h):
                for t in range(g):
                    c0, d0, c1, d1 = tw_re[h + t], tw_im[h + t], tw_re[h + g + t], tw_im[h + g + t]
                    c2, d2 = tw_re[g + t], tw_im[g + t]
                    x0, x1, x2, x3 = re[s + t], re[s + g + t], re[s + h + t], re[s + h + g + t]
                    y0, y1, y2, y3 = im[s + t], im[s + g + t], im[s + h + t], im[s + h + g + t]
                    for v in range(nv):
                        dr, di = x0[v] - x2[v], y0[v] - y2[v]  # stage h: rows t, t + h; t + g, t + h + g
                        a0r, a0i = x0[v] + x2[v], y0[v] + y2[v]
                        a2r, a2i = c0 * dr - d0 * di, c0 * di + d0 * dr
                        dr, di = x1[v] - x3[v], y1[v] - y3[v]
                        a1r, a1i = x1[v] + x3[v], y1[v] + y3[v]
                        a3r, a3i = c1 * dr - d1 * di, c1 * di + d1 * dr
                        dr, di = a0r - a1r, a0i - a1i  # stage g: rows t, t + g; t + h, t + h + g
                        x0[v], y0[v] = a0r + a1r, a0i + a1i
                        x1[v], y1[v] = c2 * dr - d2 * di, c2 * di + d2 * dr
                        dr, di = a2r - a3r, a2i - a3i
                        x2[v], y2[v] = a2r + a3r, a2i + a3i
                        x3[v], y3[v] = c2 * dr - d2 * di, c2 * di + d2 * dr
            h //= 4
        else:
            for s in range(0, n, 2 * h):
                for t in range(h):
                    c, d = tw_re[h + t], tw_im[h + t]
                    ra, ia, rb, ib = re[s + t], im[s + t], re[s + h + t], im[s + h + t]
                    for v in range(nv):
                        dr, di = ra[v] - rb[v], ia[v] - ib[v]
                        ra[v], ia[v] = ra[v] + rb[v], ia[v] + ib[v]
                        rb[v], ib[v] = c * dr - d * di, c * di + d * dr
            h //= 2
    c41, d41, c43, d43 = tw_re[5], tw_im[5], tw_re[7], tw_im[7]
    for s in range(0, n, 8):
        x0, x1, x2, x3, x4, x5, x6, x7 = re[s], re[s + 1], re[s + 2], re[s + 3], re[s + 4], re[s + 5], re[s + 6], re[s + 7]
        y0, y1, y2, y3, y4, y5, y6, y7 = im[s], im[s + 1], im[s + 2], im[s + 3], im[s + 4], im[s + 5], im[s + 6], im[s + 7]
        for v in range(nv):
            # h = 4
            a0r, a0i, a4r, a4i = x0[v] + x4[v], y0[v] + y4[v], x0[v] - x4[v], y0[v] - y4[v]
            a1r, a1i = x1[v] + x5[v], y1[v] + y5[v]
            dr, di = x1[v] - x5[v], y1[v] - y5[v]
            a5r, a5i = c41 * dr - d41 * di, c41 * di + d41 * dr
            a2r, a2i, a6r, a6i = x2[v] + x6[v], y2[v] + y6[v], y2[v] - y6[v], x6[v] - x2[v]
            a3r, a3i = x3[v] + x7[v], y3[v] + y7[v]
            dr, di = x3[v] - x7[v], y3[v] - y7[v]
            a7r, a7i = c43 * dr - d43 * di, c43 * di + d43 * dr
            # h = 2
            b0r, b0i, b2r, b2i = a0r + a2r, a0i + a2i, a0r - a2r, a0i - a2i
            b1r, b1i, b3r, b3i = a1r + a3r, a1i + a3i, a1i - a3i, a3r - a1r
            b4r, b4i, b6r, b6i = a4r + a6r, a4i + a6i, a4r - a6r, a4i - a6i
            b5r, b5i, b7r, b7i = a5r + a7r, a5i + a7i, a5i - a7i, a7r - a5r
            # h = 1
            x0[v], y0[v], x1[v], y1[v] = b0r + b1r, b0i + b1i, b0r - b1r, b0i - b1i
            x2[v], y2[v], x3[v], y3[v] = b2r + b3r, b2i + b3i, b2r - b3r, b2i - b3i
            x4[v], y4[v], x5[v], y5[v] = b4r + b5r, b4i + b5i, b4r - b5r, b4i - b5i
            x6[v], y6[v], x7[v], y7[v] = b6r + b7r, b6i + b7i, b6r - b7r, b6i - b7i


def _fft_lanes_bitrev_in(re: np.ndarray, im: np.ndarray, tw_re: np.ndarray, tw_im: np.ndarray) -> None:
    """`resample_fft._fft_bitrev_in` on every column of re, im (nh, lanes) float32, in place.

    Same stages, twiddles and operation order per lane (bit-identical); stages h and 2h share one
    pass over memory, and the loops over lanes are innermost and contiguous.
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
        if 4 * h <= n:
            for s in range(0, n, 4 * h):
                for t in range(h):
                    c0, d0, c1, d1 = tw_re[h + t], tw_im[h + t], tw_re[2 * h + t], tw_im[2 * h + t]
                    c3, d3 = tw_re[3 * h + t], tw_im[3 * h + t]
                    x0, x1, x2, x3 = re[s + t], re[s + h + t], re[s + 2 * h + t], re[s + 3 * h + t]
                    y0, y1, y2, y3 = im[s + t], im[s + h + t], im[s + 2 * h + t], im[s + 3 * h + t]
                    for v in range(nv):
                        xr, xi = c0 * x1[v] - d0 * y1[v], c0 * y1[v] + d0 * x1[v]  # stage h
                        a1r, a1i, a0r, a0i = x0[v] - xr, y0[v] - xi, x0[v] + xr, y0[v] + xi
                        xr, xi = c0 * x3[v] - d0 * y3[v], c0 * y3[v] + d0 * x3[v]
                        a3r, a3i, a2r, a2i = x2[v] - xr, y2[v] - xi, x2[v] + xr, y2[v] + xi
                        xr, xi = c1 * a2r - d1 * a2i, c1 * a2i + d1 * a2r  # stage 2h
                        x2[v], y2[v], x0[v], y0[v] = a0r - xr, a0i - xi, a0r + xr, a0i + xi
                        xr, xi = c3 * a3r - d3 * a3i, c3 * a3i + d3 * a3r
                        x3[v], y3[v], x1[v], y1[v] = a1r - xr, a1i - xi, a1r + xr, a1i + xi
            h *= 4
        else:
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


_fft_lanes_fwd_jit = njit(nogil=True, cache=True)(_fft_lanes_natural_in)
_fft_lanes_jit = njit(nogil=True, cache=True)(_fft_lanes_bitrev_in)


def _lanes_kernel(buf: np.ndarray, buf_start: int, n_avail: int, block0: int, n_blocks: int,
                  out: np.ndarray, out_start: int, hop: int, dmax: int, coef: np.ndarray,
                  twiddles: np.ndarray, pair: np.ndarray, lanes: int, scratch: np.ndarray) -> None:
    """`resample_fft._blocks_kernel`'s contract (same arguments, same output), `lanes` blocks at a time.

    scratch: float32, at least `scratch_size(down, nfft, lanes)`.
    """
    a_re, a_im, b_re, b_im = coef[0], coef[1], coef[2], coef[3]
    st_re, st_im, st_im_inv = twiddles[0], twiddles[1], twiddles[2]
    up, down, nh = coef.shape[1], coef.shape[2], coef.shape[3]
    n_taps = 2 * nh - hop + 1
    span = 2 * down
    rows = min(TILE_ROWS, nh)
    for g0 in range(block0, block0 + n_blocks, lanes):
        nv = min(lanes, block0 + n_blocks - g0)
        z = scratch[:span * nh * nv].reshape(span, nh, nv)  # plane c * down + q: phase q, part c (re, im)
        w = scratch[span * nh * nv:(span + 2) * nh * nv].reshape(2, nh, nv)
        tile = scratch[(span + 2) * nh * nv:(span + 2) * nh * nv + nv * rows * span].reshape(nv, rows * span)
        wr, wi = w[0], w[1]
        # Row m of plane o, lane v: x[j0_v + span * m + o], j0_v = down * ((g0 + v) * hop - dmax).
        j_first = down * (g0 * hop - dmax)
        step = down * hop
        if j_first >= 0 and j_first + step * (nv - 1) + span * nh <= n_avail:  # every window inside
            for m0 in range(0, nh, rows):  # a transpose through an L1 tile: contiguous copies, then contiguous stores
                for v in range(nv):
                    src, tv = buf[j_first + step * v + span * m0 - buf_start:], tile[v]
                    for r in range(rows * span):
                        tv[r] = src[r]
                for r in range(rows * span):
                    zr = z[r % span, m0 + r // span]
                    for v in range(nv):
                        zr[v] = tile[v, r]
        else:
            for m in range(nh):
                for v in range(nv):
                    j = j_first + step * v + span * m
                    for o in range(span):
                        z[o, m, v] = buf[j + o - buf_start] if 0 <= j + o < n_avail else np.float32(0.0)
        for q in range(down):
            _fft_lanes_fwd_jit(z[q], z[down + q], st_re, st_im)
        for p in range(up):
            for i in range(nh):
                m = pair[i]
                wr_i, wi_i = wr[i], wi[i]
                wr_i[:] = 0.0
                wi_i[:] = 0.0
                for q in range(down):
                    ar, ai, br, bi = a_re[p, q, i], a_im[p, q, i], b_re[p, q, i], b_im[p, q, i]
                    zr, zi, zr2, zi2 = z[q, i], z[down + q, i], z[q, m], z[down + q, m]
                    for v in range(nv):
                        wr_i[v] += (ar * zr[v] - ai * zi[v]) + (br * zr2[v] + bi * zi2[v])
                        wi_i[v] += (ar * zi[v] + ai * zr[v]) + (bi * zr2[v] - br * zi2[v])
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
