"""Whisper log-mel: filterbank, kernel vs reference, faster-whisper parity, streaming == whole."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.dsp import mel
from rtaudio.errors import AudioError, ConfigError, EmptyAudioError

faster_whisper_fe = pytest.importorskip("faster_whisper.feature_extractor")


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(n) * 0.1).astype(np.float32)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_filterbank_matches_whisper_formula(n_mels: int) -> None:
    ref = faster_whisper_fe.FeatureExtractor(n_mels).mel_filters
    got = mel.mel_filters(n_mels)
    assert got.shape == (n_mels, 201) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)


def test_hann_window_is_periodic() -> None:
    w = mel.hann_window()
    np.testing.assert_allclose(w, np.hanning(401)[:-1], atol=1e-15)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_kernel_matches_numpy_reference(n_mels: int) -> None:
    rng = np.random.default_rng(3)
    spec = rng.standard_normal((37, 201)) + 1j * rng.standard_normal((37, 201))
    spec[5] = 0.0  # silent frame exercises the 1e-10 floor
    w, lo, hi = mel._sparse_filters(n_mels)
    out = np.empty((n_mels, 37), np.float32)
    mel._power_log_mel_jit(spec, w, lo, hi, out, 0)
    np.testing.assert_allclose(out, mel.power_mel_reference(spec, n_mels), rtol=1e-6)
    assert np.all(out[:, 5] == np.float32(1e-10))


def test_framing_kernel_matches_numpy_reference() -> None:
    padded = _noise(5000, 4)
    out = np.empty((12, 400), np.float64)
    mel._window_frames_jit(padded, 320, mel.hann_window(), out)
    np.testing.assert_array_equal(out, mel.window_frames_reference(padded, 320, 12))


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("padding", [0, 160, 4000])
def test_matches_faster_whisper_on_real_speech(speech_dir, n_mels: int, padding: int) -> None:
    audio, rate = sf.read(speech_dir / "ljspeech_LJ001-0019.flac", dtype="float32")
    assert rate == 16000
    got = mel.log_mel_spectrogram(audio, n_mels=n_mels, padding=padding)
    ref = faster_whisper_fe.FeatureExtractor(n_mels)(audio, padding=padding)
    assert got.shape == ref.shape == (n_mels, (len(audio) + padding) // 160)
    np.testing.assert_allclose(got, ref, atol=1e-3)
    np.testing.assert_allclose(got, mel.log_mel_reference(audio, n_mels, padding), atol=1e-5)


def test_sine_peaks_in_its_band() -> None:
    t = np.arange(16000) / 16000
    logmel = mel.log_mel_spectrogram(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    centres = mel._mel_to_hz(np.linspace(0, mel._hz_to_mel(np.array(8000.0)), 82))[1:-1]
    assert abs(centres[int(np.argmax(logmel[:, 50]))] - 1000) < 60
    assert logmel.min() >= logmel.max() - 2.0 - 1e-6  # clamp: at most 8 log10 units -> 2 after /4


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 4000), seed=st.integers(0, 2**16), n_mels=st.sampled_from([80, 128]),
       chunk_max=st.integers(1, 1200))
def test_stream_chunked_equals_whole(n: int, seed: int, n_mels: int, chunk_max: int) -> None:
    x = _noise(n, seed)
    rng = np.random.default_rng(seed)
    stream = mel.MelStream(n_mels)
    parts, i = [], 0
    while i < n:
        k = int(rng.integers(1, chunk_max + 1))
        parts.append(stream.push(x[i:i + k]))
        i += k
    parts.append(stream.flush())
    got = np.concatenate(parts, axis=1)
    assert got.shape == (n_mels, n // 160)
    assert stream.frames_out == n // 160
    if n:
        whole = mel._log10_mel(np.pad(x, 200, mode="reflect"), n // 160, n_mels)
        np.testing.assert_allclose(got, whole, atol=1e-4)
        if n >= 160:
            np.testing.assert_allclose(mel.normalize_log_mel(got), mel.log_mel_spectrogram(x, n_mels), atol=1e-4)


def test_stream_latency_and_reset() -> None:
    stream = mel.MelStream()
    assert stream.push(_noise(200)).shape == (80, 0)  # reflect needs sample 200
    assert stream.push(_noise(200, 1)[:1]).shape == (80, 1)  # 201 samples -> frame 0
    assert stream.push(_noise(159)).shape == (80, 1)  # frame 1 needs 160 + 200 samples
    stream.flush()
    with pytest.raises(ConfigError):
        stream.push(_noise(10))
    stream.reset()
    assert stream.push(_noise(1000)).shape[1] == (1000 - 200) // 160 + 1


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(AudioError, match="1-D"):
        mel.log_mel_spectrogram(np.zeros((2, 400), np.float32))
    with pytest.raises(AudioError, match="float"):
        mel.log_mel_spectrogram(np.zeros(400, np.int16))
    with pytest.raises(EmptyAudioError):
        mel.log_mel_spectrogram(np.zeros(0, np.float32))
    with pytest.raises(ConfigError):
        mel.MelStream(n_mels=0)
    with pytest.raises(ConfigError):
        mel.log_mel_spectrogram(np.zeros(400, np.float32), padding=-1)
