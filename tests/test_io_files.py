"""Audio file I/O on real speech: soundfile formats, ffmpeg containers, streaming, clear errors."""

from __future__ import annotations

import math
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtaudio.dsp.resample import resample
from rtaudio.errors import AudioError, EmptyAudioError, ToolMissingError, UnsupportedFormatError
from rtaudio.io.files import AudioReader, read_audio, write_audio

SHORT = "ljspeech_LJ001-0019.flac"
LONG = "long_ljspeech_LJ001-0001_to_0017.flac"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


@pytest.fixture(scope="module")
def speech(speech_dir: Path) -> tuple[np.ndarray, int]:
    return read_audio(speech_dir / SHORT)


def test_read_real_flac(speech_dir: Path, speech: tuple[np.ndarray, int]) -> None:
    x, rate = speech
    info = sf.info(str(speech_dir / SHORT))
    assert rate == info.samplerate == 16000 and x.dtype == np.float32 and x.ndim == 1
    assert x.size == info.frames and 0.05 < np.abs(x).max() <= 1.0


def test_read_with_target_rate_uses_our_resampler(speech_dir: Path, speech: tuple[np.ndarray, int]) -> None:
    y, rate = read_audio(speech_dir / SHORT, target_rate_hz=24000)
    assert rate == 24000 and y.size == math.ceil(speech[0].size * 24000 / 16000)
    np.testing.assert_array_equal(y, resample(speech[0], 16000, 24000))


@pytest.mark.parametrize("ext,subtype,atol", [(".wav", None, 1 / 32768), (".wav", "FLOAT", 0.0),
                                              (".flac", "PCM_24", 1 / 2**23), (".aiff", None, 1 / 32768)])
def test_lossless_round_trip(tmp_path: Path, speech: tuple[np.ndarray, int], ext: str, subtype: str | None,
                             atol: float) -> None:
    x, rate = speech
    path = tmp_path / f"out{ext}"
    write_audio(path, x, rate, subtype=subtype)
    y, r = read_audio(path)
    assert r == rate and y.size == x.size
    np.testing.assert_allclose(y, x, atol=atol)


@pytest.mark.parametrize("ext", [".ogg", ".mp3"])
def test_lossy_round_trip_keeps_the_signal(tmp_path: Path, speech: tuple[np.ndarray, int], ext: str) -> None:
    x, rate = speech
    write_audio(tmp_path / f"out{ext}", x, rate)
    y, r = read_audio(tmp_path / f"out{ext}", target_rate_hz=rate)
    assert r == rate and abs(y.size - x.size) < 0.1 * rate
    _assert_similar(x, y)


def _assert_similar(x: np.ndarray, y: np.ndarray) -> None:
    """Lossy codecs may add delay: peak normalised cross-correlation over lags 0..6000 samples."""
    n = min(x.size, y.size) - 6000
    a, b = x[:n].astype(np.float64), y[: n + 6000].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(a.size + b.size)))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)[:6000]
    csum = np.concatenate([[0.0], np.cumsum(b**2)])
    energy = np.sqrt(csum[n:n + 6000] - csum[:6000])  # |y[lag:lag+n]| for each lag
    assert np.max(corr / (np.linalg.norm(a) * energy + 1e-12)) > 0.9


def test_stereo_is_downmixed(tmp_path: Path) -> None:
    st = np.stack([np.full(800, 0.5, np.float32), np.full(800, -0.25, np.float32)], axis=1)
    write_audio(tmp_path / "st.wav", st, 8000, subtype="FLOAT")
    y, rate = read_audio(tmp_path / "st.wav")
    assert rate == 8000 and y.shape == (800,)
    np.testing.assert_allclose(y, 0.125)


@needs_ffmpeg
@pytest.mark.parametrize("ext", [".m4a", ".webm", ".mkv"])
def test_ffmpeg_containers_round_trip(tmp_path: Path, speech: tuple[np.ndarray, int], ext: str) -> None:
    x, rate = speech
    write_audio(tmp_path / f"out{ext}", x, rate)
    with AudioReader(tmp_path / f"out{ext}", block_samples=4096, target_rate_hz=16000) as reader:
        assert reader.duration_s is not None and abs(reader.duration_s - x.size / rate) < 0.2
        blocks = list(reader.blocks())
    assert all(b.sample_rate == 16000 for b in blocks) and max(b.samples.size for b in blocks) <= 4096 * 2
    y = np.concatenate([b.samples for b in blocks])
    _assert_similar(x, y)


def test_missing_ffmpeg_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"\x00" * 100)
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg anywhere on PATH
    with pytest.raises(ToolMissingError, match="ffmpeg.*install FFmpeg"):
        read_audio(video)
    with pytest.raises(ToolMissingError, match="ffmpeg"):
        write_audio(tmp_path / "out.webm", np.zeros(10, np.float32), 16000)
    (tmp_path / "junk.wav").write_bytes(b"not audio at all")
    with pytest.raises(UnsupportedFormatError, match="WAV, FLAC"):
        read_audio(tmp_path / "junk.wav")


@needs_ffmpeg
def test_garbage_through_ffmpeg_is_unsupported(tmp_path: Path) -> None:
    (tmp_path / "junk.mp4").write_bytes(b"definitely not a video" * 10)
    with pytest.raises(UnsupportedFormatError, match="junk.mp4"):
        read_audio(tmp_path / "junk.mp4")


def test_bad_paths_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="not found"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(UnsupportedFormatError, match="unknown extension"):
        write_audio(tmp_path / "x.xyz", np.zeros(4, np.float32), 16000)
    write_audio(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(EmptyAudioError, match="no audio"):
        read_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match="float"):
        write_audio(tmp_path / "x.wav", np.zeros(4, np.int16), 16000)


def test_clipping_on_integer_write(tmp_path: Path) -> None:
    write_audio(tmp_path / "loud.wav", np.array([2.0, -2.0, 0.5], np.float32), 16000)
    y, _ = read_audio(tmp_path / "loud.wav")
    np.testing.assert_allclose(y, [32767 / 32768, -1.0, 0.5])


def test_block_reader_streams_long_file_at_constant_memory(speech_dir: Path) -> None:
    path = speech_dir / LONG
    whole_bytes = sf.info(str(path)).frames * 4
    tracemalloc.start()
    try:
        n, peak_block = 0, 0
        with AudioReader(path, block_samples=16000) as reader:
            for block in reader.blocks():
                assert block.start_sample == n
                n += block.samples.size
                peak_block = max(peak_block, block.samples.size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == sf.info(str(path)).frames and peak_block == 16000
    assert peak < whole_bytes / 8, f"peak {peak} bytes for a {whole_bytes}-byte signal"
