"""The voice loop end to end with the real recognizer, the real voice and real speech as the user."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtaudio.assistant.loop import (
    LISTENING,
    BargeIn,
    PlaybackPaused,
    TurnCancelled,
    TurnEnded,
    TurnLikely,
    UserSpeechStarted,
    VoiceLoop,
)
from rtaudio.assistant.responders import EchoResponder
from rtaudio.assistant.runner import AssistantRunner
from rtaudio.assistant.turns import TurnConfig
from rtaudio.stt.recognizer import WhisperRecognizer
from rtaudio.stt.streaming import StreamingRecognizer
from rtaudio.tts.config import SynthesisConfig
from rtaudio.tts.voice import PiperVoice

STEP = 320  # 20 ms


@pytest.fixture(scope="module")
def models():  # type: ignore[no-untyped-def]
    return WhisperRecognizer.load("whisper-tiny.en"), PiperVoice.load("piper-joe")


def make_loop(models) -> tuple[VoiceLoop, AssistantRunner]:  # type: ignore[no-untyped-def]
    rec, voice = models
    loop = VoiceLoop(StreamingRecognizer(rec, LISTENING))
    runner = AssistantRunner(loop, EchoResponder(words_per_delta=3), voice, SynthesisConfig(noise_scale=0, noise_w=0))
    return loop, runner


def pump(loop: VoiceLoop, runner: AssistantRunner, mic: np.ndarray, echo=None):  # type: ignore[no-untyped-def]
    """Feed `mic` in 20 ms steps, pulling 20 ms of speaker each step; returns (events with sample index, speaker)."""
    events, speaker = [], []
    for i in range(0, len(mic), STEP):
        played = loop.pull_speaker(STEP)
        speaker.append(played)
        block = mic[i:i + STEP]
        if echo is not None:
            block = block + echo(played)
        evs = loop.push_mic(block)
        runner.handle(evs)
        events += [(i, e) for e in evs]
        if loop.reply_active and not np.any(played):
            runner.join(0.02)  # let the worker synthesize: the test runs faster than real time
    return events, np.concatenate(speaker)


def speech(speech_dir: Path, name: str) -> np.ndarray:
    x, rate = sf.read(speech_dir / name, dtype="float32")
    assert rate == 16000
    return x


def test_turn_is_answered_with_speech(models, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    loop, runner = make_loop(models)
    user = speech(speech_dir, "librispeech_2412-153948-0002.flac")
    mic = np.concatenate([np.zeros(8000, np.float32), user, np.zeros(16000 * 8, np.float32)])
    events, speaker = pump(loop, runner, mic)
    turns = [e for _, e in events if isinstance(e, TurnEnded)]
    assert len(turns) == 1 and "honest" in turns[0].text.lower()
    assert turns[0].decided_s - turns[0].speech_end_s < 1.5
    assert np.abs(speaker).max() > 0.05, "the reply was spoken"
    assert [m.role for m in loop.history] == ["user", "assistant"]
    assert loop.history[1].content.startswith("You said:")


def test_barge_in_stops_playback_within_200_ms(models, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    loop, runner = make_loop(models)
    first = speech(speech_dir, "librispeech_2412-153948-0002.flac")
    second = speech(speech_dir, "librispeech_3752-4944-0000.flac")
    gap = np.zeros(16000 * 3, np.float32)
    mic = np.concatenate([np.zeros(8000, np.float32), first, gap, second, np.zeros(16000 * 3, np.float32)])
    events, speaker = pump(loop, runner, mic)
    rms = np.sqrt(np.mean(second[: len(second) // STEP * STEP].reshape(-1, STEP) ** 2, axis=1))
    onset = 8000 + len(first) + len(gap) + int(np.argmax(rms > 0.02)) * STEP  # where the user's voice starts
    playing_before = np.abs(speaker[onset - 4800: onset]).max()
    assert playing_before > 0.01, "the assistant was talking when the user cut in"
    paused = [i for i, e in events if isinstance(e, PlaybackPaused) and i >= onset - 1600]
    assert paused and paused[0] - onset <= 0.2 * 16000, (paused[0] - onset) / 16000
    after = speaker[paused[0] + STEP:]
    assert np.abs(after[: 16000]).max() == 0.0, "playback stopped"
    barge = [e for _, e in events if isinstance(e, BargeIn)]
    assert len(barge) == 1
    interrupted = [m for m in loop.history if m.interrupted]
    assert len(interrupted) == 1
    heard = interrupted[0].content.lower()
    assert heard and "you said: no one who is himself honest will doubt my being so".startswith(heard.rstrip(".")[:12])


def test_own_voice_fed_back_is_not_a_user_turn(models, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    loop, runner = make_loop(models)
    user = speech(speech_dir, "librispeech_2412-153948-0002.flac")
    delay = np.zeros(1600, np.float32)  # 100 ms speaker-to-mic path

    def room(played: np.ndarray) -> np.ndarray:
        nonlocal delay
        joined = np.concatenate([delay, 0.4 * played])
        out, delay = joined[: len(played)], joined[len(played):]
        return out

    mic = np.concatenate([np.zeros(8000, np.float32), user, np.zeros(16000 * 10, np.float32)])
    events, speaker = pump(loop, runner, mic, echo=room)
    assert np.abs(speaker).max() > 0.05
    started = [i for i, e in events if isinstance(e, UserSpeechStarted)]
    turns = [e for _, e in events if isinstance(e, TurnEnded)]
    assert len(turns) == 1, f"the assistant heard itself: {[t.text for t in turns]}"
    assert not [e for _, e in events if isinstance(e, BargeIn)]
    assert len(started) >= 1


def test_reply_is_prepared_during_the_pause_and_played_on_the_turn_end(models, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    loop, runner = make_loop(models)
    user = speech(speech_dir, "librispeech_2412-153948-0002.flac")
    mic = np.concatenate([np.zeros(8000, np.float32), user, np.zeros(16000 * 6, np.float32)])
    events, speaker = pump(loop, runner, mic)
    likely = [(i, e) for i, e in events if isinstance(e, TurnLikely)]
    ended = [(i, e) for i, e in events if isinstance(e, TurnEnded)]
    assert len(likely) == 1 and len(ended) == 1
    (i_likely, ev_likely), (i_end, ev_end) = likely[0], ended[0]
    assert i_likely < i_end, "prepared before the turn detector's wait was over"
    assert ev_end.prepared and ev_end.reply_id == ev_likely.reply_id and ev_end.text == ev_likely.text
    assert not np.any(speaker[:i_end]), "nothing plays before the turn is confirmed"
    assert np.abs(speaker[i_end:]).max() > 0.05
    assert [m.role for m in loop.history] == ["user", "assistant"]


def test_prepared_reply_is_dropped_when_the_user_goes_on(models, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    rec, voice = models
    patient = TurnConfig(complete_silence_ms=1500, default_silence_ms=1500, continuation_silence_ms=2000)
    loop = VoiceLoop(StreamingRecognizer(rec, LISTENING), patient)
    runner = AssistantRunner(loop, EchoResponder(words_per_delta=3), voice, SynthesisConfig(noise_scale=0, noise_w=0))
    first = speech(speech_dir, "librispeech_2412-153948-0002.flac")
    second = speech(speech_dir, "librispeech_3752-4944-0000.flac")
    pause = np.zeros(int(16000 * 0.3), np.float32)  # with the recordings own silences: past the VAD endpoint, short of the turn wait
    mic = np.concatenate([np.zeros(8000, np.float32), first, pause, second, np.zeros(16000 * 4, np.float32)])
    events, speaker = pump(loop, runner, mic)
    kinds = [type(e).__name__ for _, e in events if isinstance(e, (TurnLikely, TurnCancelled, TurnEnded))]
    assert kinds[:2] == ["TurnLikely", "TurnCancelled"], kinds
    ended = [e for _, e in events if isinstance(e, TurnEnded)]
    assert len(ended) == 1 and "honest" in ended[0].text.lower() and len(ended[0].text.split()) > 14
    assert np.abs(speaker).max() > 0.05, "the reply to the whole turn plays"
    assert [m.role for m in loop.history] == ["user"] and loop.history[0].content == ended[0].text


def test_listener_thread_answers_while_the_audio_side_only_feeds_and_pulls(models, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    loop, runner = make_loop(models)
    seen: list[object] = []
    runner.start_listening(seen.extend)
    user = speech(speech_dir, "librispeech_2412-153948-0002.flac")
    mic = np.concatenate([np.zeros(8000, np.float32), user, np.zeros(16000 * 8, np.float32)])
    played = []
    try:
        for i in range(0, len(mic), STEP):
            played.append(runner.pull_speaker(STEP))
            runner.feed_mic(mic[i:i + STEP])
            time.sleep(0.005)  # 4x real time: the listener takes what has queued up in one go
    finally:
        runner.stop()
    assert not runner.errors
    ended = [e for e in seen if isinstance(e, TurnEnded)]
    assert len(ended) == 1 and "honest" in ended[0].text.lower()
    assert np.abs(np.concatenate(played)).max() > 0.05, "the reply was spoken"
