"""Offline recognition with the real tiny.en ONNX graphs on real speech: windows, long form, words,
silence, prompts, errors and the `rtaudio transcribe` command."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtaudio.cli import main as cli_main
from rtaudio.errors import (
    AudioError,
    ConfigError,
    EmptyAudioError,
    ModelNotFetchedError,
    UnknownModelError,
    UnsupportedFormatError,
)
from rtaudio.stt.decoding import DecodeOptions, has_repetition_loop
from rtaudio.stt.longform import LongFormTranscriber
from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer, split_segments
from rtaudio.stt.textnorm import normalize_english

GREEDY = DecodeOptions(beam_size=1)


def _wer(ref: str, hyp: str) -> float:
    import jiwer

    return float(jiwer.wer(normalize_english(ref), normalize_english(hyp)))


@pytest.fixture(scope="module")
def recognizer() -> WhisperRecognizer:
    try:
        return WhisperRecognizer.load("whisper-tiny.en")
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")


def _read(speech_dir: Path, name: str) -> np.ndarray:
    x, sr = sf.read(speech_dir / name, dtype="float32")
    assert sr == 16000
    return x


@pytest.mark.parametrize("name", ["librispeech_1988-24833-0000.flac", "ljspeech_LJ001-0020.flac",
                                  "vctk_p238_165.flac"])
def test_window_transcript_matches_reference(recognizer: WhisperRecognizer, speech_dir: Path,
                                             speech_manifest: dict[str, str], name: str) -> None:
    audio = _read(speech_dir, name)
    result = recognizer.transcribe_window(audio)
    assert _wer(speech_manifest[name], result.text) <= 0.15, result.text
    assert result.segments and result.no_speech_prob < 0.5 and result.avg_logprob > -1.0
    duration = audio.size / 16000
    for seg in result.segments:
        assert 0.0 <= seg.start_s < seg.end_s <= duration + 0.02
        assert seg.tokens and seg.compression_ratio > 0


def test_speech_cut_at_the_window_end_does_not_loop(speech_dir: Path, speech_manifest: dict[str, str]) -> None:
    """LJ001-0021 stops mid-sentence; greedy fp32 decoding of it used to repeat its last phrase."""
    try:
        fp32 = WhisperRecognizer.load("whisper-tiny.en", RecognizerConfig(precision="fp32"))
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")
    name = "ljspeech_LJ001-0021.flac"
    result = fp32.transcribe_window(_read(speech_dir, name))
    assert not has_repetition_loop([t for s in result.segments for t in s.tokens if t < fp32.tokenizer.eot])
    assert _wer(speech_manifest[name], result.text) <= 0.15, result.text


def test_word_timestamps_are_ordered_and_inside_the_speech(recognizer: WhisperRecognizer,
                                                           speech_dir: Path) -> None:
    audio = _read(speech_dir, "jfk_inaugural_ask_not.flac")
    result = recognizer.transcribe_window(audio, options=DecodeOptions(word_timestamps=True))
    words = [w for s in result.segments for w in s.words]
    assert "".join(w.text for w in words).strip() == result.text.strip()
    assert all(s.start_s <= s.words[0].start_s and s.words[-1].end_s <= s.end_s + 1e-6 for s in result.segments)
    starts = [w.start_s for w in words]
    assert starts == sorted(starts) and all(w.end_s >= w.start_s for w in words)
    assert all(0.0 <= w.probability <= 1.0 for w in words)
    # "country" is said twice; the second time is the last word, near the end (~10.3 s)
    country = [w for w in words if "country" in w.text]
    assert len(country) == 2 and 9.0 < country[1].start_s < 10.8 and country[0].end_s < 7.5

def test_a_spelled_string_keeps_its_length(recognizer: WhisperRecognizer, speech_dir: Path) -> None:
    # "G F T U ONE THREE THREE TWO", spelled over 0.3-3.8 s, comes out as one word "GFTU1332.": its
    # time must not be cut to a typical word's length (it ended at 1.4 s, two seconds early)
    audio = _read(speech_dir, "an4_an403-mdms2-b.flac")
    words = recognizer.transcribe(audio, DecodeOptions(word_timestamps=True)).words
    assert words and words[-1].end_s > 3.0, [(w.text, w.start_s, w.end_s) for w in words]



def test_silence_and_noise_give_no_segments(recognizer: WhisperRecognizer) -> None:
    silence = np.zeros(3 * 16000, np.float32)
    result = recognizer.transcribe_window(silence)
    assert result.segments == [] and result.text == ""
    hum = (0.01 * np.sin(2 * np.pi * 50 * np.arange(4 * 16000) / 16000)).astype(np.float32)  # mains hum
    result = recognizer.transcribe_window(hum)  # loud enough to run the model
    assert result.no_speech_prob > 0.6 and result.segments == [], result.text


def test_prompt_steers_spelling(recognizer: WhisperRecognizer, speech_dir: Path) -> None:
    audio = _read(speech_dir, "librispeech_1988-24833-0000.flac")
    plain = recognizer.transcribe_window(audio, options=GREEDY).text
    shouted = recognizer.transcribe_window(audio, prompt="THE TWO STRAY KITTENS. ALL CAPITALS.", options=GREEDY).text
    assert plain != shouted and sum(c.isupper() for c in shouted) > sum(c.isupper() for c in plain) + 10


def test_long_form_across_windows_equals_the_concatenated_references(recognizer: WhisperRecognizer,
                                                                     speech_dir: Path,
                                                                     speech_manifest: dict[str, str]) -> None:
    names = ["ljspeech_LJ001-0021.flac", "ljspeech_LJ001-0022.flac", "ljspeech_LJ001-0023.flac",
             "ljspeech_LJ001-0024.flac", "ljspeech_LJ001-0025.flac"]
    gap = np.zeros(8000, np.float32)
    audio = np.concatenate([x for n in names for x in (_read(speech_dir, n), gap)])
    assert audio.size > 32 * 16000  # at least two windows
    lf = LongFormTranscriber(recognizer, GREEDY)
    streamed = []
    for block in np.array_split(audio, 7):  # blocks of ~5 s
        streamed += lf.push(block)
    streamed += lf.flush()
    transcript = lf.result()
    assert transcript.segments == streamed
    reference = " ".join(speech_manifest[n] for n in names)
    assert _wer(reference, transcript.text) < 0.12, transcript.text
    ends = [s.end_s for s in transcript.segments]
    assert ends == sorted(ends) and ends[-1] <= audio.size / 16000 + 0.05
    assert transcript.duration_s == pytest.approx(audio.size / 16000)


def test_split_segments_follows_timestamp_pairs(recognizer: WhisperRecognizer) -> None:
    tok = recognizer.tokenizer
    ts = tok.timestamp
    a, b = tok.encode(" Hello"), tok.encode(" world")
    pieces, consumed = split_segments([ts(0.0), *a, ts(1.0), ts(1.5), *b, ts(2.5)], tok, 10.0)
    assert [(p[0], p[1]) for p in pieces] == [(0.0, 1.0), (1.5, 2.5)]
    assert consumed == 10.0  # a single closing timestamp: the text ended cleanly, the window is done
    pieces, consumed = split_segments([ts(0.0), *a, ts(1.0), ts(1.5), *b], tok, 10.0)
    assert len(pieces) == 1 and consumed == pytest.approx(1.0)  # unfinished last segment is decoded again
    pieces, consumed = split_segments([ts(0.0), *a, ts(1.0), ts(1.5), *b, ts(2.5), ts(2.5)], tok, 10.0)
    assert len(pieces) == 2 and consumed == pytest.approx(2.5)  # a closed pair: restart at its time
    pieces, _ = split_segments([ts(0.0), *a, ts(12.0)], tok, 4.0)
    assert pieces[0][:2] == (0.0, 4.0)  # stamped into the padding: clamped to the audio


def test_bad_input_raises_clear_errors(recognizer: WhisperRecognizer) -> None:
    with pytest.raises(EmptyAudioError):
        recognizer.transcribe_window(np.zeros(0, np.float32))
    with pytest.raises(AudioError, match="at most 30"):
        recognizer.transcribe_window(np.zeros(31 * 16000, np.float32))
    with pytest.raises(AudioError, match="mono"):
        recognizer.transcribe_window(np.zeros((100, 2), np.float32))
    with pytest.raises(AudioError, match="float"):
        recognizer.transcribe_window(np.zeros(100, np.int16))
    with pytest.raises(ConfigError, match="English-only"):
        recognizer.transcribe_window(np.zeros(16000, np.float32), options=DecodeOptions(task="translate"))
    with pytest.raises(ConfigError):
        DecodeOptions(beam_size=0)
    with pytest.raises(ConfigError):
        RecognizerConfig(precision="int4")
    with pytest.raises(UnknownModelError):
        WhisperRecognizer.load("whisper-huge")


def test_model_not_fetched_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTAUDIO_HOME", str(tmp_path))
    with pytest.raises(ModelNotFetchedError, match="rtaudio models fetch whisper-tiny.en"):
        WhisperRecognizer.load("tiny.en")


def test_transcribe_command_formats(recognizer: WhisperRecognizer, speech_dir: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = speech_dir / "librispeech_1988-24833-0000.flac"
    assert cli_main(["transcribe", str(src), "--beam-size", "1", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "kittens" in text.lower() and text.count("\n") == 1
    out = tmp_path / "t.json"
    assert cli_main(["transcribe", str(src), "-f", "json", "-o", str(out), "--word-timestamps", "--no-progress"]) == 0
    data = json.loads(out.read_text())
    assert data["language"] == "en" and data["segments"][0]["words"]
    assert cli_main(["transcribe", str(src), "-f", "srt", "--no-progress"]) == 0
    srt = capsys.readouterr().out
    assert srt.startswith("1\n00:00:0") and " --> " in srt


def test_transcribe_command_rejects_unreadable_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     recognizer: WhisperRecognizer) -> None:
    fake = tmp_path / "notes.wav"
    fake.write_text("not audio")
    with pytest.raises(UnsupportedFormatError):
        from rtaudio.stt.transcribe import transcribe_file

        transcribe_file(recognizer, fake)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(EmptyAudioError):
        transcribe_file(recognizer, empty)
    assert cli_main(["transcribe", str(tmp_path / "missing.flac"), "--no-progress"]) == 1
    assert "not found" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
def test_transcribes_video_through_ffmpeg(recognizer: WhisperRecognizer, speech_dir: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    src = speech_dir / "librispeech_1988-24833-0000.flac"
    video = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:r=10", "-i", str(src),
                    "-shortest", "-c:v", "libx264", "-c:a", "aac", "-ar", "44100", str(video)], check=True)
    assert cli_main(["transcribe", str(video), "--beam-size", "1", "--no-progress"]) == 0
    assert "kittens" in capsys.readouterr().out.lower()
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg on PATH any more
    assert cli_main(["transcribe", str(video), "--no-progress"]) == 1
    assert "ffmpeg" in capsys.readouterr().err.lower()
