"""Silero VAD: parity with silero's own framing, chunked == whole, segmenter rules, silence and noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.errors import ConfigError, SampleRateError
from rtaudio.stt.vad import (
    CONTEXT_SAMPLES,
    FRAME_SAMPLES,
    SileroVad,
    SileroVadModel,
    SpeechEnded,
    SpeechStarted,
    VadConfig,
    VadSegmenter,
)


@pytest.fixture(scope="module")
def model() -> SileroVadModel:
    return SileroVadModel.load()


@pytest.fixture(scope="module")
def jfk(speech_dir: Path) -> np.ndarray:
    x, sr = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")
    assert sr == 16000
    return x


def _reference_probs(model: SileroVadModel, x: np.ndarray) -> np.ndarray:
    """Silero's own feeding: zero context first, then the last 64 samples of the previous frame."""
    state = np.zeros((2, 1, 128), np.float32)
    context = np.zeros(CONTEXT_SAMPLES, np.float32)
    out = []
    for i in range(0, len(x) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        inp = np.concatenate([context, x[i: i + FRAME_SAMPLES]])[None, :]
        p, state = model.run(inp, state)
        out.append(p)
        context = inp[0, -CONTEXT_SAMPLES:]
    return np.array(out, np.float32)


def test_probabilities_match_reference_framing(model: SileroVadModel, jfk: np.ndarray) -> None:
    probs = SileroVad(model).push(jfk[: 16000 * 4])
    np.testing.assert_array_equal(probs, _reference_probs(model, jfk[: 16000 * 4]))


@settings(max_examples=6, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=40))
def test_chunked_equals_whole(model: SileroVadModel, jfk: np.ndarray, sizes: list[int]) -> None:
    x = jfk[: sum(sizes)]
    whole = SileroVad(model).push(x)
    vad = SileroVad(model)
    parts, pos = [], 0
    for n in sizes:
        parts.append(vad.push(x[pos: pos + n]))
        pos += n
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert vad.frames_done == len(x) // FRAME_SAMPLES


def test_speech_found_where_jfk_speaks(model: SileroVadModel, jfk: np.ndarray) -> None:
    probs = SileroVad(model).push(jfk)
    seg = VadSegmenter(VadConfig())
    events = seg.push(probs) + seg.flush()
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert 2 <= len(starts) == len(ends) <= 6  # "And so my fellow Americans / ask not ... / ask what ..."
    covered = sum(e.end_sample - e.start_sample for e in ends) / 16000
    assert 6.0 < covered < 11.0
    # segments are ordered and never overlap
    bounds = [(e.start_sample, e.end_sample) for e in ends]
    assert all(a[1] <= b[0] for a, b in zip(bounds, bounds[1:], strict=False))


def test_silence_and_noise_have_no_speech(model: SileroVadModel) -> None:
    rng = np.random.default_rng(0)
    n = 16000 * 20
    t = np.arange(n) / 16000
    signals = {
        "silence": np.zeros(n, np.float32),
        "white noise": (0.05 * rng.standard_normal(n)).astype(np.float32),
        "hum": (0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32),
        "chords": (0.2 * sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0))
                   * (0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 0.5 * t)))).astype(np.float32),
    }
    for name, x in signals.items():
        seg = VadSegmenter()
        events = seg.push(SileroVad(model).push(x)) + seg.flush()
        assert events == [], name


def test_wrong_rate_is_a_clear_error(model: SileroVadModel) -> None:
    with pytest.raises(SampleRateError):
        SileroVad(model).push(np.zeros(1000, np.float32), sample_rate=8000)


def _frames(pattern: str) -> np.ndarray:
    """'S' speech (0.9), '.' silence (0.05), 'm' in-between (0.4)."""
    return np.array([{"S": 0.9, ".": 0.05, "m": 0.4}[c] for c in pattern], np.float32)


def test_segmenter_rules() -> None:
    cfg = VadConfig(threshold=0.5, min_speech_ms=96, min_silence_ms=160, speech_pad_ms=64)  # 3 / 5 / 2 frames
    seg = VadSegmenter(cfg)
    # a 2-frame click is dropped, a 6-frame word is speech, a 3-frame pause does not end it
    events = seg.push(_frames("..SS....SSSSSS...SSS......"))
    assert events[0] == SpeechStarted(start_sample=(8 - 2) * FRAME_SAMPLES)
    assert events[1] == SpeechEnded(start_sample=6 * FRAME_SAMPLES, end_sample=(20 + 2) * FRAME_SAMPLES)
    assert len(events) == 2
    # in-between frames continue a started silence (hysteresis) and do not start speech
    events = seg.push(_frames("mmmmmmmm"))
    assert events == []
    events = seg.push(_frames("SSSS.mmmm"))
    assert isinstance(events[0], SpeechStarted) and isinstance(events[1], SpeechEnded)
    assert seg.flush() == []


def test_segmenter_flush_closes_open_segment() -> None:
    seg = VadSegmenter(VadConfig(min_speech_ms=32, min_silence_ms=320, speech_pad_ms=0))
    events = seg.push(_frames("..SSSS"))
    assert events == [SpeechStarted(2 * FRAME_SAMPLES)] and seg.in_speech
    assert seg.flush() == [SpeechEnded(2 * FRAME_SAMPLES, 6 * FRAME_SAMPLES)]
    assert not seg.in_speech


def test_pads_never_overlap_previous_segment() -> None:
    seg = VadSegmenter(VadConfig(min_speech_ms=32, min_silence_ms=64, speech_pad_ms=64))
    events = seg.push(_frames("SS..SS..")) + seg.flush()
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ends) == 2 and ends[0].end_sample <= ends[1].start_sample


@pytest.mark.parametrize("kwargs", [
    {"threshold": 0.0}, {"threshold": 1.2}, {"neg_threshold": 0.9}, {"min_speech_ms": -1},
    {"min_silence_ms": 10}, {"speech_pad_ms": 900, "min_silence_ms": 500},
])
def test_bad_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        VadConfig(**kwargs)  # type: ignore[arg-type]
