"""WSOLA time-stretching: Numba kernel == numpy reference, right length and timing, pitch kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtaudio.dsp.wsola import wsola, wsola_reference
from rtaudio.errors import ConfigError

RATE = 16000


def harmonic(f0: float, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 2 * f0 * t + 1.0)
            + 0.1 * np.sin(2 * np.pi * 3 * f0 * t + 2.0)).astype(np.float32)


def f0_autocorr(x: np.ndarray, rate: int, lo_hz: float = 60, hi_hz: float = 500) -> float:
    x = x - x.mean()
    ac = np.correlate(x, x, mode="full")[len(x) - 1:]
    lags = np.arange(int(rate / hi_hz), int(rate / lo_hz))
    best = lags[np.argmax(ac[lags])]
    return rate / best


@pytest.fixture(scope="module")
def speech(speech_dir: Path) -> np.ndarray:
    from rtaudio.io.files import read_audio

    x, _ = read_audio(speech_dir / "ljspeech_LJ001-0019.flac", target_rate_hz=RATE)
    return x[: 3 * RATE]


@pytest.mark.parametrize("rate", [0.75, 1.0, 1.3, 1.6, 2.0])
def test_kernel_equals_reference_on_speech(speech: np.ndarray, rate: float) -> None:
    out = wsola(speech, rate)
    assert out.dtype == np.float32
    assert len(out) == round(len(speech) / rate)
    np.testing.assert_allclose(out, wsola_reference(speech, rate), atol=1e-6)


@pytest.mark.parametrize("rate", [0.8, 1.5])
def test_kernel_equals_reference_on_tones_and_other_sizes(rate: float) -> None:
    x = harmonic(173.0, 1.0)
    np.testing.assert_allclose(wsola(x, rate, 256, 100), wsola_reference(x, rate, 256, 100), atol=1e-6)


@pytest.mark.parametrize("rate", [0.7, 1.5, 2.0])
def test_pitch_is_kept(rate: float) -> None:
    x = harmonic(150.0, 1.5)
    y = wsola(x, rate)
    mid = y[len(y) // 4: 3 * len(y) // 4]
    assert f0_autocorr(mid, RATE) == pytest.approx(150.0, rel=0.02)
    # a naive speed-up would move the pitch to 150 * rate; the level stays that of the input too
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.1)


def test_timing_scales_by_rate() -> None:
    """Tone bursts every 0.5 s come out every 0.5 / rate s."""
    rate_change = 1.6
    t = np.arange(4 * RATE) / RATE
    gate = (((t + 0.3) % 0.5) < 0.1).astype(np.float32)  # bursts at 0.2, 0.7, ... 3.7 s
    x = (harmonic(200.0, 4.0) * gate).astype(np.float32)
    y = wsola(x, rate_change)
    env = np.convolve(np.abs(y), np.ones(160) / 160, "same")
    onsets = np.flatnonzero((env[1:] > 0.1) & (env[:-1] <= 0.1)) / RATE
    assert len(onsets) == 8
    np.testing.assert_allclose(onsets, (0.2 + 0.5 * np.arange(8)) / rate_change, atol=0.02)


def test_bad_arguments() -> None:
    x = harmonic(100.0, 0.2)
    with pytest.raises(ConfigError):
        wsola(x, 0.1)
    with pytest.raises(ConfigError):
        wsola(np.zeros((10, 2), np.float32), 1.2)
    with pytest.raises(ConfigError):
        wsola(x, 1.2, frame_samples=511)
    assert len(wsola(np.zeros(0, np.float32), 1.5)) == 0
