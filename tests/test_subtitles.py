"""Subtitle cues: broadcast limits, splitting at pauses and sentences, reading speed, SRT/VTT text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.errors import ConfigError
from rtaudio.frames import Word
from rtaudio.stt.results import Segment
from rtaudio.stt.subtitles import Cue, SubtitleConfig, build_cues, to_srt, to_vtt, wrap_lines


def _segment(words: list[tuple[str, float, float]]) -> Segment:
    ws = [Word(" " + t, a, b) for t, a, b in words]
    return Segment(" ".join(t for t, _, _ in words), ws[0].start_s, ws[-1].end_s, ws)


def _steady(text: str, start: float = 0.0, per_word: float = 0.3) -> list[tuple[str, float, float]]:
    return [(w, start + i * per_word, start + (i + 1) * per_word - 0.05) for i, w in enumerate(text.split())]


def test_lines_and_cues_respect_limits() -> None:
    text = ("Printing, in the only sense with which we are at present concerned, differs from most if not "
            "from all the arts and crafts represented in the Exhibition in being comparatively modern.")
    cues = build_cues([_segment(_steady(text))])
    assert len(cues) > 1
    for cue in cues:
        lines = cue.text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
        assert cue.end_s - cue.start_s <= 7.0 + 1e-9
    assert " ".join(c.text.replace("\n", " ") for c in cues) == text  # nothing lost or reordered
    starts = [c.start_s for c in cues]
    assert starts == sorted(starts)
    assert all(a.end_s <= b.start_s - 0.08 + 1e-9 for a, b in zip(cues, cues[1:], strict=False))  # gaps


def test_cues_split_at_pauses_and_sentence_ends() -> None:
    words = _steady("Ask not what your country can do.", 0.0) + _steady("Ask what you can do", 2.6)
    cues = build_cues([_segment(words)])
    assert [c.text.replace("\n", " ") for c in cues] == ["Ask not what your country can do.", "Ask what you can do"]
    pause = _steady("one two three", 0.0) + _steady("four five", 1.6)  # 0.75 s silence, no punctuation
    assert len(build_cues([_segment(pause)])) == 2


def test_reading_speed_extends_short_cues_into_gaps() -> None:
    fast = [("Extraordinarily", 0.0, 0.3), ("complicated", 0.3, 0.6), ("sentences.", 0.6, 0.9)]
    later = [("Next", 6.0, 6.3)]
    cues = build_cues([_segment(fast), _segment(later)])
    first = cues[0]
    assert len(first.text) / (first.end_s - first.start_s) <= 17.0 + 1e-6
    assert first.end_s <= cues[1].start_s - 0.08 + 1e-9
    # a close neighbour limits the extension (the gap is kept)
    tight = build_cues([_segment(fast), _segment([("Next", 1.5, 1.8)])])
    assert len(tight) == 2 and tight[0].end_s == pytest.approx(1.5 - 0.08)


def test_wrap_prefers_balance_and_punctuation() -> None:
    lines = wrap_lines("and so my fellow Americans, ask not what your country can do".split(), 42)
    assert lines == ["and so my fellow Americans,", "ask not what your country can do"]
    assert wrap_lines(["x" * 50], 42) is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.text("abcdefghij", min_size=1, max_size=14), st.floats(0.05, 0.8),
                          st.floats(0.0, 1.2)), min_size=1, max_size=60))
def test_any_word_stream_gives_valid_cues(spec: list[tuple[str, float, float]]) -> None:
    t, words = 0.0, []
    for text, dur, gap in spec:
        words.append((text, t + gap, t + gap + dur))
        t += gap + dur
    cues = build_cues([_segment(words)])
    assert " ".join(c.text.replace("\n", " ") for c in cues) == " ".join(w for w, _, _ in words)
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.start_s < a.end_s <= b.start_s
        assert b.start_s - a.end_s >= 0.08 - 1e-9 or a.end_s - a.start_s <= 0.1 + 1e-9  # the gap is kept
    for c in cues:
        assert all(len(line) <= 42 for line in c.text.split("\n")) and c.text.count("\n") <= 1


def test_segments_without_words_are_spread_by_characters() -> None:
    cues = build_cues([Segment(" Hello there. General Kenobi.", 1.0, 4.0)])
    assert cues[0].start_s == pytest.approx(1.0) and cues[-1].text.endswith("Kenobi.")


def test_srt_and_vtt_text() -> None:
    cues = [Cue(0.0, 1.5, "Hello"), Cue(3661.25, 3662.0, "two\nlines")]
    srt = to_srt(cues)
    assert srt == "1\n00:00:00,000 --> 00:00:01,500\nHello\n\n2\n01:01:01,250 --> 01:01:02,000\ntwo\nlines\n"
    vtt = to_vtt(cues)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nHello\n")
    assert re.search(r"01:01:01\.250 --> 01:01:02\.000\ntwo\nlines", vtt)


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        SubtitleConfig(max_chars_per_line=5)
    with pytest.raises(ConfigError):
        SubtitleConfig(min_duration_s=8.0, max_duration_s=7.0)
