"""`rtaudio edit` on real speech: loudness normalisation checked by pyloudnorm, exact cuts and
trims, concat, ducked mix, conversion, constant memory on a two-minute file, and the CLI."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtaudio.cli import main as cli_main
from rtaudio.edit import EditPlan, find_sound_bounds, parse_range_s, parse_time_s, run_edit
from rtaudio.errors import ConfigError, EmptyAudioError
from rtaudio.io.files import read_audio, write_audio

SPEECH = "ljspeech_LJ001-0019.flac"
LONG = "long_ljspeech_LJ001-0001_to_0017.flac"


def test_normalize_real_recording_to_minus_16_lufs(speech_dir: Path, tmp_path: Path) -> None:
    pyln = pytest.importorskip("pyloudnorm")
    out = tmp_path / "norm.wav"
    report = run_edit(EditPlan(inputs=(speech_dir / SPEECH,), output=out, normalize_lufs=-16.0))
    x, rate = sf.read(str(out))
    measured = pyln.Meter(rate).integrated_loudness(x)
    assert abs(measured - (-16.0)) < 0.5, measured
    assert report.input_lufs is not None and report.input_lufs < -18  # it really was quieter before
    assert np.max(np.abs(x)) <= 1.0


def test_cut_removes_exactly_the_range(tmp_path: Path) -> None:
    ramp = (np.arange(8000) / 8000).astype(np.float32)
    write_audio(tmp_path / "ramp.wav", ramp, 8000, subtype="FLOAT")
    run_edit(EditPlan(inputs=(tmp_path / "ramp.wav",), output=tmp_path / "cut.wav", subtype="FLOAT",
                      cuts_s=((0.25, 0.5), (0.4, 0.75))))
    y, _ = read_audio(tmp_path / "cut.wav")
    np.testing.assert_array_equal(y, np.concatenate([ramp[:2000], ramp[6000:]]))


def test_trim_silence_keeps_the_speech(speech_dir: Path, tmp_path: Path) -> None:
    speech, rate = read_audio(speech_dir / SPEECH)
    bounds = find_sound_bounds(iter([speech]), rate, -50.0, 0.0)
    assert bounds is not None
    padded = np.concatenate([np.zeros(2 * rate, np.float32), speech, np.zeros(3 * rate, np.float32)])
    write_audio(tmp_path / "padded.wav", padded, rate, subtype="FLOAT")
    run_edit(EditPlan(inputs=(tmp_path / "padded.wav",), output=tmp_path / "trim.wav", trim_silence=True,
                      keep_silence_ms=100, subtype="FLOAT"))
    y, _ = read_audio(tmp_path / "trim.wav")
    start = 2 * rate + bounds[0] - rate // 10
    np.testing.assert_array_equal(y, padded[start: start + (bounds[1] - bounds[0]) + rate // 5])
    write_audio(tmp_path / "silent.wav", np.zeros(rate, np.float32), rate)
    with pytest.raises(EmptyAudioError, match="quieter"):
        run_edit(EditPlan(inputs=(tmp_path / "silent.wav",), output=tmp_path / "x.wav", trim_silence=True))


def test_concat_with_crossfade_resample_and_convert(speech_dir: Path, tmp_path: Path) -> None:
    a, rate = read_audio(speech_dir / SPEECH)
    b, _ = read_audio(speech_dir / "an4_an131-fkdo-b.flac")
    report = run_edit(EditPlan(inputs=(speech_dir / SPEECH, speech_dir / "an4_an131-fkdo-b.flac"),
                               output=tmp_path / "joined.flac", crossfade_ms=50, rate_hz=8000))
    info = sf.info(str(tmp_path / "joined.flac"))
    assert info.samplerate == report.rate_hz == 8000 and info.format == "FLAC"
    expected = round(a.size / 2) + round(b.size / 2) - 400  # each resampled to 8 kHz, minus the 50 ms overlap
    assert abs(info.frames - expected) <= 1


def test_mix_with_ducking_dips_the_background(speech_dir: Path, tmp_path: Path) -> None:
    speech, rate = read_audio(speech_dir / SPEECH)
    speech = np.concatenate([np.zeros(rate, np.float32), speech])  # one second before the talking starts
    write_audio(tmp_path / "speech.wav", speech, rate, subtype="FLOAT")
    tone = (0.1 * np.sin(2 * np.pi * 100 * np.arange(speech.size + rate) / rate)).astype(np.float32)
    write_audio(tmp_path / "tone.wav", tone, rate, subtype="FLOAT")
    run_edit(EditPlan(inputs=(tmp_path / "speech.wav",), output=tmp_path / "mixed.wav",
                      background=tmp_path / "tone.wav", subtype="FLOAT"))
    y, _ = read_audio(tmp_path / "mixed.wav")
    assert y.size == speech.size  # the background is cut to the main audio
    bg = y - speech
    talking = np.abs(speech) > 0.05
    assert 0.4 * 0.1 / np.sqrt(2) > np.sqrt(np.mean(bg[talking] ** 2))  # ducked by ~12 dB while talking
    assert abs(np.sqrt(np.mean(bg[: rate // 2] ** 2)) - 0.1 / np.sqrt(2)) < 1e-3  # full level before speech


def test_long_file_streams_at_constant_memory(speech_dir: Path, tmp_path: Path) -> None:
    path = speech_dir / LONG
    decoded_bytes = sf.info(str(path)).frames * 4
    tracemalloc.start()
    try:
        run_edit(EditPlan(inputs=(path,), output=tmp_path / "long.flac", normalize_lufs=-20.0, trim_silence=True))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < decoded_bytes / 4, f"peak {peak / 1e6:.1f} MB for {decoded_bytes / 1e6:.1f} MB of audio"
    assert abs(sf.info(str(tmp_path / "long.flac")).duration - 117.5) < 1.0


def test_time_parsing_and_errors(tmp_path: Path) -> None:
    assert parse_time_s("1:15.5") == 75.5 and parse_time_s("0:01:00") == 60 and parse_range_s("1-2.5") == (1, 2.5)
    for bad in ("abc", "1:2:3:4", "-1"):
        with pytest.raises(ConfigError):
            parse_time_s(bad)
    with pytest.raises(ConfigError):
        parse_range_s("12")
    with pytest.raises(ConfigError):
        EditPlan(inputs=(), output=tmp_path / "x.wav")
    with pytest.raises(ConfigError):
        EditPlan(inputs=(tmp_path / "a.wav",), output=tmp_path / "x.wav", cuts_s=((2.0, 1.0),))
    write_audio(tmp_path / "a.wav", np.ones(800, np.float32) * 0.1, 8000)
    with pytest.raises(EmptyAudioError, match="no audio"):
        run_edit(EditPlan(inputs=(tmp_path / "a.wav",), output=tmp_path / "x.wav", cuts_s=((0.0, 5.0),)))
    assert not (tmp_path / "x.wav").exists()


def test_cli(speech_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.ogg"
    code = cli_main(["edit", str(speech_dir / SPEECH), "-o", str(out), "--normalize-lufs", "-18", "--rate", "22050",
                     "--cut", "0:01-0:02", "--no-progress"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    info = sf.info(str(out))
    assert info.samplerate == 22050 and abs(info.duration - (6.416 - 1.0)) < 0.05
    assert cli_main(["edit", str(tmp_path / "missing.wav"), "-o", str(out)]) == 1
    assert "not found" in capsys.readouterr().err
