"""Polyphase resampler: kernel vs numpy reference, chunked == whole, quality vs soxr, errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.dsp import resample as resample_module
from rtaudio.dsp.resample import Resampler, ResamplerConfig, design_filter_bank, resample, resample_reference
from rtaudio.dsp.sweep import exp_sweep, resample_quality
from rtaudio.errors import AudioError, ConfigError, SampleRateError

RATES = [8000, 16000, 22050, 24000, 44100, 48000]
PAIRS = [(a, b) for a, b in itertools.product(RATES, RATES) if a != b]


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
    """Both kernels (per-phase FIR and dot product) on the same ratio, forced via the dispatch limit."""
    x = _noise(2000, 7)
    ref = resample_reference(x, in_rate, out_rate)
    for limit in (0, 1000):  # 0: every ratio takes the dot kernel; 1000: every ratio the phase kernel
        monkeypatch.setattr(resample_module, "MAX_PHASE_KERNEL_RATIO", limit)
        resample_module._kernel_plan.cache_clear()
        np.testing.assert_allclose(resample(x, in_rate, out_rate), ref, atol=1e-6)
    resample_module._kernel_plan.cache_clear()


def test_fill_streams_matches_numpy() -> None:
    buf = _noise(100, 3)
    xs = np.empty((3, 40), np.float32)
    resample_module._fill_streams(buf, 5, 3, xs)
    padded = np.concatenate([buf, np.zeros(200, np.float32)])
    np.testing.assert_array_equal(xs, padded[5 + np.arange(40)[None, :] * 3 + np.arange(3)[:, None]])


@settings(max_examples=30, deadline=None)
@given(pair=st.sampled_from(PAIRS), n=st.integers(0, 3000), seed=st.integers(0, 2**16),
       chunk_max=st.integers(1, 900))
def test_chunked_equals_whole(pair: tuple[int, int], n: int, seed: int, chunk_max: int) -> None:
    x = _noise(n, seed)
    rng = np.random.default_rng(seed)
    r = Resampler(*pair)
    parts, i = [], 0
    while i < n:
        k = int(rng.integers(0, chunk_max + 1))  # empty pushes too
        parts.append(r.push(x[i:i + k]))
        i += k
    parts.append(r.flush())
    np.testing.assert_array_equal(np.concatenate(parts), resample(x, *pair))
    assert r.samples_out == math.ceil(n * pair[1] / pair[0])


def test_output_is_time_aligned_and_streams() -> None:
    """A 440 Hz tone keeps its phase (no delay) and output flows before flush."""
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)
    r = Resampler(48000, 16000)
    first = r.push(x[:4800])
    assert first.size == math.ceil((4800 - r.latency_in_samples) / 3)  # outputs whose window is complete
    y = np.concatenate([first, r.push(x[4800:]), r.flush()])
    ideal = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.max(np.abs(y[800:-800] - ideal[800:-800])) < 1e-5


@pytest.mark.parametrize("in_rate,out_rate", [(48000, 16000), (16000, 48000), (44100, 16000), (24000, 22050),
                                              (22050, 48000), (8000, 16000)])
def test_quality_within_1db_of_soxr(in_rate: int, out_rate: int) -> None:
    soxr = pytest.importorskip("soxr")
    ours = resample_quality(lambda x: resample(x, in_rate, out_rate), in_rate, out_rate, duration_s=1.0)
    peer = resample_quality(lambda x: soxr.resample(x, in_rate, out_rate), in_rate, out_rate, duration_s=1.0)
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
    r = Resampler(48000, 16000)
    r.flush()
    with pytest.raises(ConfigError):
        r.push(np.zeros(10, np.float32))
