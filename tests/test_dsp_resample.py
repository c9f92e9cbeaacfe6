"""Polyphase resampler: kernels vs numpy references, chunked == whole, quality vs soxr, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.dsp import resample as resample_module
from rtaudio.dsp import resample_fft, resample_lanes
from rtaudio.dsp.resample import (
    WHOLE_SIGNAL,
    Resampler,
    ResamplerConfig,
    design_filter_bank,
    resample,
    resample_reference,
)
from rtaudio.dsp.sweep import exp_sweep, resample_quality
from rtaudio.errors import AudioError, ConfigError, SampleRateError

RATES = [8000, 16000, 22050, 24000, 44100, 48000]
PAIRS = [(a, b) for a, b in itertools.product(RATES, RATES) if a != b]
FFT_PAIRS = [(48000, 16000), (16000, 48000), (24000, 16000), (16000, 24000), (8000, 16000), (22050, 44100),
             (24000, 48000), (8000, 48000)]
DIRECT = ResamplerConfig(max_block_ms=0.0)
FFT = WHOLE_SIGNAL  # 64 ms blocks
CONFIGS = [FFT, DIRECT, ResamplerConfig(max_block_ms=12.0),  # default, direct, short FFT blocks
           ResamplerConfig(40.0 / 80.0, 1.0, 40.0, max_block_ms=12.0)]  # a short filter: FFT sizes 64 and 128


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.3).astype(np.float32)


@pytest.mark.parametrize("in_rate,out_rate", PAIRS)
def test_kernel_matches_numpy_reference(in_rate: int, out_rate: int) -> None:
    x = _noise(1500, in_rate + out_rate)
    y = resample(x, in_rate, out_rate)
    assert y.dtype == np.float32 and y.size == math.ceil(x.size * out_rate / in_rate)
    np.testing.assert_allclose(y, resample_reference(x, in_rate, out_rate), atol=1e-6)


@pytest.mark.parametrize("in_rate,out_rate", [(48000, 16000), (16000, 48000), (24000, 16000), (44100, 16000)])
def test_each_kernel_matches_numpy_reference(in_rate: int, out_rate: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The direct kernels (per-phase FIR and dot product, forced via the dispatch limit) and the FFT engine."""
    x = _noise(2000, 7)
    ref = resample_reference(x, in_rate, out_rate)
    for limit in (0, 1000):  # 0: every ratio takes the dot kernel; 1000: every ratio the phase kernel
        monkeypatch.setattr(resample_module, "MAX_PHASE_KERNEL_RATIO", limit)
        resample_module._kernel_plan.cache_clear()
        np.testing.assert_allclose(resample(x, in_rate, out_rate, DIRECT), ref, atol=1e-6)
    resample_module._kernel_plan.cache_clear()
    monkeypatch.setattr(resample_fft, "MAX_FFT_RATIO", 1000)  # 44.1k -> 16k too
    r = Resampler(in_rate, out_rate, ResamplerConfig(max_block_ms=200.0))
    assert r.engine == "fft"
    np.testing.assert_allclose(np.concatenate([r.push(x), r.flush()]), ref, atol=1e-6)


@pytest.mark.parametrize("in_rate,out_rate", FFT_PAIRS)
def test_fft_engine_for_small_ratios_within_block_budget(in_rate: int, out_rate: int) -> None:
    for budget_ms in (48.0, 64.0):
        r = Resampler(in_rate, out_rate, ResamplerConfig(max_block_ms=budget_ms))
        assert r.engine == "fft" and budget_ms / 4 < r.block_ms <= budget_ms
    assert Resampler(in_rate, out_rate, DIRECT).engine == "direct"
    assert Resampler(44100, 16000).engine == "direct" and Resampler(22050, 48000).engine == "direct"


@pytest.mark.parametrize("in_rate,out_rate,nfft", [(48000, 16000, 512), (48000, 16000, 2048), (16000, 48000, 1024),
                                                   (24000, 16000, 256), (16000, 24000, 512), (8000, 48000, 4096)])
def test_fft_blocks_match_numpy_fft_reference(in_rate: int, out_rate: int, nfft: int) -> None:
    """The Numba block kernel vs the same overlap-save done with np.fft in float64, and vs direct."""
    plan = resample_fft.design_fft_plan(design_filter_bank(in_rate, out_rate), nfft)
    x = _noise(6000, nfft)
    n_out = math.ceil(x.size * out_rate / in_rate)
    ref = resample_fft.blocks_reference(plan, x.astype(np.float64), n_out)
    np.testing.assert_array_equal(ref, resample_reference(x, in_rate, out_rate))  # float64 both: same rounding
    out = np.full(n_out, np.nan, np.float32)
    n_blocks = -(-n_out // (plan.up * plan.hop))
    resample_fft.run_blocks(plan, resample_fft.FftScratch(plan), x, 0, x.size, 0, n_blocks, out, 0)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    part = np.full(n_out - 37, np.nan, np.float32)  # one block at a time, into a window that starts mid-block
    for b in range(n_blocks):
        resample_fft.run_blocks(plan, resample_fft.FftScratch(plan), x, 0, x.size, b, 1, part, 37)
    np.testing.assert_array_equal(part, out[37:])


@pytest.mark.parametrize("n", [8, 16, 64, 512, 2048])
def test_fft_matches_numpy_fft(n: int) -> None:
    plan = resample_fft.design_fft_plan(design_filter_bank(48000, 16000), 2 * n) if n >= 256 else None
    rng = np.random.default_rng(n)
    z = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    m = np.arange(n)
    h = np.maximum(1, 2 ** np.floor(np.log2(np.maximum(m, 1))).astype(np.int64))
    t = m - h
    st_re, st_im = np.cos(np.pi * t / h).astype(np.float32), (-np.sin(np.pi * t / h)).astype(np.float32)
    bits = int(math.log2(n))
    rev = np.array([int(f"{i:0{bits}b}"[::-1], 2) for i in range(n)], np.int64)
    if plan is not None:  # the plan builds the same tables
        np.testing.assert_array_equal(plan.twiddles[0, 1:], st_re[1:])
        np.testing.assert_array_equal(plan.rev, rev)
    tol = 2e-6 * n ** 0.5 * math.log2(n)
    for sign, ref in ((1, np.fft.fft(z)), (-1, np.fft.ifft(z) * n)):
        re, im = z.real[rev].astype(np.float32), z.imag[rev].astype(np.float32)  # it takes bit-reversed input
        resample_fft._fft_jit(re, im, st_re, (sign * st_im).astype(np.float32))
        np.testing.assert_allclose(re + 1j * im, ref, atol=tol)
    re, im = z.real.astype(np.float32), z.imag.astype(np.float32)  # the forward one: natural in, bit-reversed out
    resample_fft._fft_fwd_jit(re, im, st_re, st_im)
    np.testing.assert_allclose((re + 1j * im)[rev], np.fft.fft(z), atol=tol)


def test_fill_streams_matches_numpy() -> None:
    buf = _noise(100, 3)
    xs = np.empty((3, 40), np.float32)
    resample_module._fill_streams(buf, 5, 3, xs)
    padded = np.concatenate([buf, np.zeros(200, np.float32)])
    np.testing.assert_array_equal(xs, padded[5 + np.arange(40)[None, :] * 3 + np.arange(3)[:, None]])


@settings(max_examples=40, deadline=None)
@given(pair=st.sampled_from(PAIRS + FFT_PAIRS), config=st.sampled_from(CONFIGS), n=st.integers(0, 6000),
       seed=st.integers(0, 2**16), chunk_max=st.integers(1, 2000))
def test_chunked_equals_whole(pair: tuple[int, int], config: ResamplerConfig, n: int, seed: int,
                              chunk_max: int) -> None:
    x = _noise(n, seed)
    rng = np.random.default_rng(seed)
    r = Resampler(*pair, config)
    parts, i = [], 0
    while i < n:
        k = int(rng.integers(0, chunk_max + 1))  # empty pushes too
        parts.append(r.push(x[i:i + k]))
        i += k
        assert r.samples_out == r.outputs_ready(min(i, n))  # each push returns exactly what is ready
    parts.append(r.flush())
    np.testing.assert_array_equal(np.concatenate(parts), resample(x, *pair, config))
    assert r.samples_out == math.ceil(n * pair[1] / pair[0])


@pytest.mark.parametrize("config", [FFT, DIRECT], ids=["fft", "direct"])
def test_output_is_time_aligned_and_streams(config: ResamplerConfig) -> None:
    """A 440 Hz tone keeps its phase (no delay) and output flows before flush, within the stated latency."""
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)
    r = Resampler(48000, 16000, config)
    first = r.push(x[:4800])
    assert first.size == r.outputs_ready(4800) >= math.ceil((4800 - r.latency_in_samples) / 3) > 0
    if r.engine == "direct":
        assert first.size == math.ceil((4800 - r.latency_in_samples) / 3)  # outputs whose window is complete
    y = np.concatenate([first, r.push(x[4800:]), r.flush()])
    ideal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.max(np.abs(y[800:-800] - ideal[800:-800])) < 1e-5


@pytest.mark.parametrize("in_rate,out_rate", [(48000, 16000), (16000, 48000), (44100, 16000), (24000, 22050),
                                              (22050, 48000), (8000, 16000)])
def test_quality_within_1db_of_soxr(in_rate: int, out_rate: int) -> None:
    soxr = pytest.importorskip("soxr")
    peer = resample_quality(lambda x: soxr.resample(x, in_rate, out_rate), in_rate, out_rate, duration_s=1.0)
    for config in (FFT, DIRECT):
        ours = resample_quality(lambda x, c=config: resample(x, in_rate, out_rate, c), in_rate, out_rate,
                                duration_s=1.0)
        assert ours.snr_db > 110 and ours.snr_db >= peer.snr_db - 1.0
        if peer.aliasing_db is not None:
            assert ours.aliasing_db is not None and ours.aliasing_db <= peer.aliasing_db + 1.0


def test_passband_flat_and_stopband_rejected() -> None:
    for f, lo_db, hi_db in [(1000, -0.001, 0.001), (7000, -0.01, 0.01), (8100, -200, -120), (12000, -300, -120)]:
        x = exp_sweep(48000, f, f * 1.0001, 1.0).astype(np.float32)
        y = resample(x, 48000, 16000)[1600:-1600].astype(np.float64)
        level = 20 * np.log10(np.sqrt(2 * np.mean(y**2)) / 0.5 + 1e-300)
        assert lo_db <= level <= hi_db, (f, level)


def test_same_rate_is_passthrough() -> None:
    x = _noise(1000)
    r = Resampler(16000, 16000)
    np.testing.assert_array_equal(np.concatenate([r.push(x), r.flush()]), x)


def test_filter_bank_shape_and_symmetry() -> None:
    fb = design_filter_bank(44100, 16000)
    assert (fb.up, fb.down) == (160, 441) and fb.taps.flags.c_contiguous
    proto = fb.taps[:, ::-1].T.reshape(-1).astype(np.float64)  # back to the prototype order
    np.testing.assert_allclose(proto[1:], proto[1:][::-1], atol=1e-9)  # linear phase
    np.testing.assert_allclose(fb.taps.astype(np.float64).sum(axis=1), 1.0, atol=1e-6)  # unity DC per phase


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(SampleRateError):
        Resampler(0, 16000)
    with pytest.raises(SampleRateError):
        Resampler(16000, 16000.5)  # type: ignore[arg-type]
    with pytest.raises(SampleRateError, match="phases"):
        Resampler(44099, 48000)
    with pytest.raises(AudioError, match="1-D"):
        resample(np.zeros((10, 2), np.float32), 48000, 16000)
    with pytest.raises(AudioError, match="float"):
        resample(np.zeros(10, np.int16), 48000, 16000)
    with pytest.raises(ConfigError):
        ResamplerConfig(passband_end_fraction=1.0, stopband_begin_fraction=0.9)
    with pytest.raises(ConfigError):
        ResamplerConfig(max_block_ms=-1.0)
    r = Resampler(48000, 16000)
    r.flush()
    with pytest.raises(ConfigError):
        r.push(np.zeros(10, np.float32))


@pytest.mark.parametrize("in_rate,out_rate,nfft", [(48000, 16000, 1024), (16000, 48000, 512), (24000, 16000, 512),
                                                   (16000, 24000, 1024), (8000, 48000, 4096)])
def test_lane_kernel_is_bit_identical_to_block_kernel(in_rate: int, out_rate: int, nfft: int) -> None:
    """Blocks as SIMD lanes (whole signals, big pushes) vs one block at a time, for any lane count:
    the same operations per lane, so streams and resample() stay equal bit for bit."""
    plan = resample_fft.design_fft_plan(design_filter_bank(in_rate, out_rate), nfft)
    x = _noise(40 * nfft, nfft + 1)
    n_out = math.ceil(x.size * out_rate / in_rate)
    n_blocks = -(-n_out // (plan.up * plan.hop))
    one = np.full(n_out - 37, np.nan, np.float32)
    single = resample_fft.FftScratch(plan)
    resample_fft._blocks_jit(x, 0, x.size, 0, n_blocks, one, 37, plan.hop, plan.dmax, plan.coef, plan.twiddles,
                             plan.pair, single.spectra, single.acc)
    for lanes in (1, 7, 32, 64):
        out = np.full(n_out - 37, np.nan, np.float32)
        scratch = np.zeros(resample_lanes.scratch_size(plan.down, nfft, lanes), np.float32)
        resample_lanes.lanes_jit(x, 0, x.size, 0, n_blocks, out, 37, plan.hop, plan.dmax, plan.coef, plan.twiddles,
                                 plan.pair, lanes, scratch)
        np.testing.assert_array_equal(out, one)


@pytest.mark.parametrize("n", [8, 16, 32, 64, 128, 512, 1024])
def test_lane_fft_is_bit_identical_to_fft(n: int) -> None:
    """Both lane FFTs (two radix-2 stages per pass) against the one-block FFTs, each lane bit for bit."""
    plan = resample_fft.design_fft_plan(design_filter_bank(48000, 16000), 2048)  # twiddles serve every n <= 1024
    z = np.random.default_rng(n).standard_normal((2, n, 5)).astype(np.float32)
    pairs = [(resample_lanes._fft_lanes_jit, resample_fft._fft_jit, plan.twiddles[2]),
             (resample_lanes._fft_lanes_fwd_jit, resample_fft._fft_fwd_jit, plan.twiddles[1])]
    for lanes_fft, one_fft, tw_im in pairs:
        re, im = z[0].copy(), z[1].copy()
        lanes_fft(re, im, plan.twiddles[0], tw_im)
        for v in range(5):
            r, i = z[0, :, v].copy(), z[1, :, v].copy()
            one_fft(r, i, plan.twiddles[0], tw_im)
            np.testing.assert_array_equal(re[:, v], r)
            np.testing.assert_array_equal(im[:, v], i)
