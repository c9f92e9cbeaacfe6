"""`rtaudio say`: text or stdin lines to a file at the requested rate, clear errors otherwise."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import soundfile as sf

from rtaudio.cli import main
from rtaudio.errors import ModelError, ToolMissingError


@pytest.fixture(scope="module", autouse=True)
def _voice_available() -> None:
    from rtaudio.tts.voice import PiperVoice

    try:
        PiperVoice.load("piper-joe")
    except (ModelError, ToolMissingError) as e:
        pytest.skip(f"voice unavailable: {e}")


def test_say_text_to_file_at_rate(tmp_path: Path) -> None:
    out = tmp_path / "hello.wav"
    assert main(["say", "Hello there. It is 5 p.m.", "-o", str(out), "--rate", "16000", "--seed", "1"]) == 0
    info = sf.info(out)
    assert info.samplerate == 16000
    assert 1.0 < info.duration < 4.0


def test_say_reads_stdin_line_by_line_and_skips_bad_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lines.wav"
    monkeypatch.setattr("sys.stdin", io.StringIO("First line.\n\n你好\nSecond line.\n"))
    assert main(["say", "-o", str(out), "--speed", "1.2"]) == 0
    assert sf.info(out).samplerate == 22050
    assert sf.info(out).duration > 1.0


@pytest.mark.parametrize(("args", "message"), [
    (["say", "   ", "-o", "x.wav"], "nothing to say"),
    (["say", "hi", "--voice", "nope", "-o", "x.wav"], "unknown"),
    (["say", "hi", "--speed", "0", "-o", "x.wav"], "speed"),
    (["say", "hi", "--rate", "5", "-o", "x.wav"], "rate"),
])
def test_say_errors(args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_stdin_pipe_is_cut_into_lines_and_sentences(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import os

    from rtaudio.tts.say_command import _texts

    r, w = os.pipe()
    data = "Café one. Café two is here\nlast line".encode()
    os.write(w, data[:4] + data[4:5])  # "é" split across reads is decoded whole
    os.write(w, data[5:])
    os.close(w)
    with os.fdopen(r, "r") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        assert list(_texts(argparse.Namespace(text=None))) == ["Café one.", "Café two is here", "last line"]
