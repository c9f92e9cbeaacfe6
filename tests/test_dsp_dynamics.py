"""Gain, soft limiter, AGC, ducking mixer and fades: kernels vs references, chunked == whole."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio import dsp
from rtaudio.dsp import dynamics as D
from rtaudio.dsp.fades import FadeCurve, crossfade, fade_in, fade_out
from rtaudio.dsp.loudness import rms_dbfs
from rtaudio.errors import AudioError, ConfigError

RATE = 16000


def _talk(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    """Noise bursts (250 ms on / 250 ms off) at `level` RMS, like syllables and pauses."""
    n = int(seconds * RATE)
    x = np.random.default_rng(seed).standard_normal(n) * level
    gate = (np.arange(n) // (RATE // 4)) % 2 == 0
    return (x * gate).astype(np.float32)


def test_gain_and_soft_limit() -> None:
    x = np.array([0.1, -0.5, 0.95, -3.0, 10.0], np.float32)
    np.testing.assert_allclose(D.apply_gain(x, -6.0206), x * 0.5, rtol=1e-4)
    y = D.soft_limit(x, threshold=0.9)
    np.testing.assert_array_equal(y[:2], x[:2])  # untouched below the knee
    assert np.all(np.abs(y) <= 1.0) and 0.9 < y[2] < 0.95 and y[3] < -0.99 and y[4] > 0.99
    ramp = np.linspace(-3, 3, 10001, dtype=np.float32)
    assert np.all(np.diff(D.soft_limit(ramp)) >= 0)  # monotonic
    with pytest.raises(ConfigError):
        D.soft_limit(x, threshold=1.0)


def test_agc_brings_quiet_and_loud_talkers_to_target() -> None:
    for level in (0.01, 0.3):  # -40 and -10 dBFS: within the AGC's +-24 dB reach
        x = _talk(6.0, level)
        y = D.Agc(RATE).push(x)
        assert abs(rms_dbfs(y[-2 * RATE:][x[-2 * RATE:] != 0]) - (-20.0)) < 2.0, level
    silence = np.zeros(RATE, np.float32)
    agc = D.Agc(RATE)
    agc.push(silence)
    assert agc.gain_db == 0.0  # gated: no boost on silence


def test_ducking_dips_background_only_while_foreground_talks() -> None:
    music = (0.1 * np.sin(2 * np.pi * 220 * np.arange(4 * RATE) / RATE)).astype(np.float32)
    voice = np.zeros(4 * RATE, np.float32)
    voice[RATE:2 * RATE] = _talk(1.0, 0.2)[:RATE] + 0.01
    mixer = D.DuckingMixer(RATE)
    out = mixer.push(music, voice)
    bg = out - voice
    gain_during = np.sqrt(np.mean(bg[int(1.5 * RATE):2 * RATE] ** 2)) / np.sqrt(np.mean(music[:RATE] ** 2))
    gain_after = np.sqrt(np.mean(bg[-RATE // 2:] ** 2)) / np.sqrt(np.mean(music[:RATE] ** 2))
    assert abs(20 * np.log10(gain_during) + 12) < 0.5 and abs(20 * np.log10(gain_after)) < 0.1


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), chunk_max=st.integers(1, 2000))
def test_kernels_match_references_and_chunking(seed: int, chunk_max: int) -> None:
    rng = np.random.default_rng(seed)
    x = _talk(0.5, float(rng.uniform(0.001, 0.5)), seed)
    bg = (rng.standard_normal(x.size) * 0.1).astype(np.float32)
    agc, mixer, a_parts, m_parts, i = D.Agc(RATE), D.DuckingMixer(RATE), [], [], 0
    while i < x.size:
        k = int(rng.integers(1, chunk_max + 1))
        a_parts.append(agc.push(x[i:i + k]))
        m_parts.append(mixer.push(bg[i:i + k], x[i:i + k]))
        i += k
    np.testing.assert_array_equal(np.concatenate(a_parts), D.Agc(RATE).push(x))
    np.testing.assert_array_equal(np.concatenate(m_parts), D.DuckingMixer(RATE).push(bg, x))
    np.testing.assert_allclose(np.concatenate(a_parts), D.agc_reference(x, RATE), atol=1e-6)
    np.testing.assert_allclose(np.concatenate(m_parts), D.duck_reference(bg, x, RATE), atol=1e-6)


def test_mix_pads_and_applies_gains() -> None:
    out = D.mix(np.ones(4, np.float32), np.ones(2, np.float32), gains_db=(0.0, -6.0206))
    np.testing.assert_allclose(out, [1.5, 1.5, 1.0, 1.0], rtol=1e-4)
    with pytest.raises(ConfigError):
        D.mix(np.ones(2, np.float32), gains_db=(0.0, 0.0))
    with pytest.raises(AudioError):
        D.DuckingMixer(RATE).push(np.ones(3, np.float32), np.ones(2, np.float32))


@pytest.mark.parametrize("curve", list(FadeCurve))
def test_fades_and_crossfade(curve: FadeCurve) -> None:
    x = np.ones(100, np.float32)
    fi, fo = fade_in(x, 10, curve), fade_out(x, 10, curve)
    assert fi[0] == 0.0 and fi[10:].min() == 1.0 and np.all(np.diff(fi[:11]) > 0)
    assert fo[-10] == 1.0 and fo[:90].min() == 1.0 and np.all(np.diff(fo[-11:]) <= 0)
    up, down = curve.ramp(64), curve.falling(64)
    total = up + down if curve is FadeCurve.LINEAR else up**2 + down**2
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    xf = crossfade(np.ones(50, np.float32), -np.ones(30, np.float32), 20, curve)
    assert xf.size == 60 and xf[0] == 1.0 and xf[-1] == -1.0
    assert crossfade(x, x, 0).size == 200 and crossfade(x[:5], x, 50).size == 100


def test_warmup_compiles_everything_quickly() -> None:
    t0 = time.perf_counter()
    dsp.warmup()
    dsp.warmup()
    assert time.perf_counter() - t0 < 30  # cold Numba cache compiles; warm loads from disk
