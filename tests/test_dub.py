"""Dubbing subtitles: parsing, placement at cue times, squeezing long cues, ducking a background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtaudio.dsp.dynamics import DuckingConfig
from rtaudio.errors import ConfigError, ModelError, TextError, ToolMissingError
from rtaudio.stt.subtitles import Cue
from rtaudio.tts.config import SynthesisConfig
from rtaudio.tts.dub import Dubber, DubConfig, mix_under, read_subtitles, trim_silence
from rtaudio.tts.voice import PiperVoice

SRT = """1
00:00:00,500 --> 00:00:02,000
Hello and welcome.

2
00:00:02,500 --> 00:00:03,300
<i>Today we talk about the long history of the twentieth century.</i>

3
00:00:05,000 --> 00:00:07,000
Thank you
for watching.
"""


@pytest.fixture(scope="module")
def voice() -> PiperVoice:
    try:
        return PiperVoice.load("piper-joe")
    except (ModelError, ToolMissingError) as e:
        pytest.skip(f"voice unavailable: {e}")


def test_read_srt_and_vtt() -> None:
    cues = read_subtitles(SRT)
    assert cues == [Cue(0.5, 2.0, "Hello and welcome."),
                    Cue(2.5, 3.3, "Today we talk about the long history of the twentieth century."),
                    Cue(5.0, 7.0, "Thank you for watching.")]
    vtt = "WEBVTT\n\n00:01.000 --> 00:02.500\nFirst line\n\n01:00:00.000 --> 01:00:01.000 align:start\n<b>Second</b>\n"
    assert read_subtitles(vtt) == [Cue(1.0, 2.5, "First line"), Cue(3600.0, 3601.0, "Second")]
    with pytest.raises(TextError, match="no subtitle cues"):
        read_subtitles("just some text")
    with pytest.raises(TextError, match="ends before it starts"):
        read_subtitles("1\n00:00:05,000 --> 00:00:01,000\nBackwards\n")
    with pytest.raises(ConfigError):
        DubConfig(max_speedup=0.5)


def test_trim_silence() -> None:
    rate = 1000
    x = np.zeros(3000, np.float32)
    x[1000:2000] = 0.5
    y = trim_silence(x, rate, -40.0, margin_ms=20.0)
    assert len(y) == 1000 + 2 * 20
    assert len(trim_silence(np.zeros(500, np.float32), rate, -40.0)) == 0


def onset_s(x: np.ndarray, rate: int, start_s: float) -> float:
    """First time after `start_s` where the 10 ms envelope passes -40 dBFS."""
    win = rate // 100
    begin = int(start_s * rate)
    env = np.convolve(np.abs(x[begin:]), np.ones(win) / win, "same")
    return start_s + float(np.argmax(env > 0.01)) / rate


def test_cues_land_at_their_times_and_long_ones_are_squeezed(voice: PiperVoice) -> None:
    cues = read_subtitles(SRT)
    track, report = Dubber(voice, DubConfig(max_speedup=1.8), SynthesisConfig(seed=0)).render(cues)
    rate = voice.sample_rate
    assert [r.start_s for r in report] == [0.5, 2.5, 5.0]
    for r in report:
        assert onset_s(track, rate, r.start_s - 0.2) == pytest.approx(r.start_s, abs=0.05)
        assert np.abs(track[int(r.end_s * rate) + 10:int(r.end_s * rate) + 200]).max(initial=0) < 0.05
    assert report[0].speedup == 1.0 and report[2].speedup == 1.0
    long = report[1]
    assert long.speedup == pytest.approx(1.8)  # far too long for 0.8 s: squeezed to the limit, then overruns
    assert long.overrun_s > 0.5
    assert np.abs(track[:int(0.45 * rate)]).max() == 0.0  # nothing before the first cue


def test_background_is_ducked_under_speech(voice: PiperVoice) -> None:
    from rtaudio.dsp.resample import resample

    speech, _ = Dubber(voice, synthesis=SynthesisConfig(seed=0)).render([Cue(1.0, 3.0, "Hello and welcome.")])
    bg_rate = 16000
    t = np.arange(5 * bg_rate) / bg_rate
    background = (0.1 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    mixed = mix_under(speech, voice.sample_rate, background, bg_rate, DuckingConfig(duck_db=-12.0))
    assert len(mixed) == len(background)
    fg = np.pad(resample(speech, voice.sample_rate, bg_rate), (0, len(background)))[:len(background)]
    bg_part = mixed - fg  # what is left of the background
    before = np.sqrt(np.mean(bg_part[: int(0.9 * bg_rate)] ** 2))
    during = np.sqrt(np.mean(bg_part[int(1.5 * bg_rate):int(1.9 * bg_rate)] ** 2))
    after = np.sqrt(np.mean(bg_part[int(4.2 * bg_rate):] ** 2))
    assert during / before == pytest.approx(10 ** (-12 / 20), rel=0.15)
    assert after / before == pytest.approx(1.0, rel=0.05)


def test_dub_command(tmp_path: Path, voice: PiperVoice) -> None:
    import soundfile as sf

    from rtaudio.cli import main

    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHello there.\n", encoding="utf-8")
    bg = tmp_path / "music.wav"
    sf.write(bg, (0.05 * np.sin(np.arange(3 * 16000) / 16000 * 2 * np.pi * 220)).astype(np.float32), 16000)
    out = tmp_path / "track.wav"
    assert main(["dub", str(srt), "-o", str(out), "--background", str(bg)]) == 0
    info = sf.info(out)
    assert info.samplerate == 16000 and info.duration == pytest.approx(3.0, abs=0.01)
    assert main(["dub", str(tmp_path / "missing.srt"), "-o", str(out)]) == 1
