"""Biquad designs (responses at known points), kernel vs references, chunked == whole."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.dsp import filters as F
from rtaudio.errors import AudioError, ConfigError

RATE = 16000
EQ = np.vstack([F.highpass(80, RATE), F.peaking(1000, 6, RATE), F.high_shelf(4000, -3, RATE),
                F.low_shelf(200, 3, RATE), F.lowpass(7000, RATE), F.dc_blocker(RATE)])


def _db(sos: np.ndarray, f_hz: float) -> float:
    return float(20 * np.log10(abs(F.frequency_response(sos, [f_hz], RATE)[0])))


@pytest.mark.parametrize("sos,f_hz,want_db,tol", [
    (F.highpass(80, RATE), 80, -3.0103, 1e-3), (F.highpass(80, RATE), 4000, 0.0, 1e-3),
    (F.highpass(80, RATE), 10, -36.1, 0.2), (F.lowpass(1000, RATE), 1000, -3.0103, 1e-3),
    (F.peaking(1000, 6, RATE), 1000, 6.0, 1e-9), (F.peaking(1000, -9, RATE), 1000, -9.0, 1e-9),
    (F.low_shelf(200, 3, RATE), 10, 3.0, 0.01), (F.low_shelf(200, 3, RATE), 7000, 0.0, 0.01),
    (F.high_shelf(4000, -3, RATE), 7990, -3.0, 0.01), (F.high_shelf(4000, -3, RATE), 20, 0.0, 0.01),
    (F.dc_blocker(RATE), 0.001, -100.0, 30.0), (F.dc_blocker(RATE), 1000, 0.0, 0.01),
])
def test_designs_hit_their_specs(sos: np.ndarray, f_hz: float, want_db: float, tol: float) -> None:
    assert abs(_db(sos, f_hz) - want_db) <= tol


def test_kernel_matches_scipy_and_direct_form_reference() -> None:
    signal = pytest.importorskip("scipy.signal")
    x = (np.random.default_rng(0).standard_normal(4000) * 0.3).astype(np.float32)
    y = F.sos_filter(x, EQ)
    np.testing.assert_allclose(y, signal.sosfilt(EQ, x.astype(np.float64)), atol=1e-6)
    np.testing.assert_allclose(y, F.sos_filter_reference(x, EQ), atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**16), chunk_max=st.integers(1, 800))
def test_chunked_equals_whole(n: int, seed: int, chunk_max: int) -> None:
    x = (np.random.default_rng(seed).standard_normal(n) * 0.3).astype(np.float32)
    rng = np.random.default_rng(seed + 1)
    f, parts, i = F.SosFilter(EQ), [], 0
    while i < n:
        k = int(rng.integers(1, chunk_max + 1))
        parts.append(f.push(x[i:i + k]))
        i += k
    got = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    np.testing.assert_array_equal(got, F.sos_filter(x, EQ))


def test_dc_is_removed() -> None:
    x = np.full(RATE * 2, 0.5, np.float32) + 0.1 * np.sin(2 * np.pi * 440 * np.arange(RATE * 2) / RATE).astype(np.float32)
    y = F.sos_filter(x, F.highpass(40, RATE))
    assert abs(float(np.mean(y[RATE:]))) < 1e-4
    assert abs(np.std(y[RATE:]) - 0.1 / np.sqrt(2)) < 1e-3


def test_bad_designs_and_input() -> None:
    with pytest.raises(ConfigError, match="frequency"):
        F.highpass(9000, RATE)
    with pytest.raises(ConfigError, match="shape"):
        F.SosFilter(np.zeros((2, 5)))
    with pytest.raises(ConfigError, match="normalised"):
        F.SosFilter(np.array([1.0, 0, 0, 2.0, 0, 0]))
    with pytest.raises(AudioError):
        F.sos_filter(np.zeros((4, 2), np.float32), EQ)
