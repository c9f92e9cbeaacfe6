"""Live caption cues: line and cue limits, minimum time on screen, reading speed, bounded delay."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.errors import ConfigError
from rtaudio.frames import Caption, Stability, Word
from rtaudio.stt.live_captions import LiveCaptionConfig, LiveCueBuilder, cues_from_captions
from rtaudio.stt.subtitles import Cue, to_srt, to_vtt

VOCAB = ("the quick brown fox jumps over a lazy dog while an extraordinarily long-winded narrator "
         "keeps talking about absolutely everything and nothing at all. Really? Yes.").split()


def final(words: list[Word], segment_id: int = 0) -> Caption:
    return Caption(" ".join(w.text for w in words), int(words[0].start_s * 16000), int(words[-1].end_s * 16000),
                   Stability.FINAL, segment_id, 16000, tuple(words))


def speech(rng: random.Random, n_words: int, words_per_s: float, pause_every: int = 0) -> list[Word]:
    out, t = [], 0.3
    for i in range(n_words):
        d = rng.uniform(0.5, 1.5) / words_per_s
        out.append(Word(rng.choice(VOCAB), t, t + d * 0.85))
        t += d
        if pause_every and i % pause_every == pause_every - 1:
            t += rng.uniform(0.3, 2.5)
    return out


def check_cues(cues: list[Cue], words: list[Word], cfg: LiveCaptionConfig, builder: LiveCueBuilder) -> None:
    assert " ".join(c.text.replace("\n", " ") for c in cues).split() == [w.text for w in words], "words lost or moved"
    for c in cues:
        lines = c.text.split("\n")
        assert len(lines) <= cfg.max_lines
        assert all(len(line) <= cfg.max_line_chars for line in lines), lines
        assert c.end_s - c.start_s >= cfg.min_cue_ms / 1000 - 1e-3
    for a, b in zip(cues, cues[1:], strict=False):
        assert a.end_s <= b.start_s + 1e-3, "cues overlap"
    # delay of each cue after the first word it shows
    pos = 0
    for c in cues:
        n = len(c.text.split())
        first = words[pos]
        pos += n
        assert c.start_s >= first.start_s - 1e-3  # times are rounded to ms
        if builder.late_cues == 0:
            assert c.start_s - first.start_s <= cfg.max_delay_ms / 1000 + 1e-3


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), rate=st.floats(1.0, 6.0), pause_every=st.integers(0, 12),
       per_final=st.integers(1, 15))
def test_cue_rules_on_random_speech(seed: int, rate: float, pause_every: int, per_final: int) -> None:
    rng = random.Random(seed)
    words = speech(rng, rng.randint(1, 120), rate, pause_every)
    cfg = LiveCaptionConfig()
    builder = LiveCueBuilder(cfg)
    cues: list[Cue] = []
    for i in range(0, len(words), per_final):
        cues += builder.push(final(words[i: i + per_final], i))
    cues += builder.flush()
    check_cues(cues, words, cfg, builder)


def test_reading_speed_is_kept_when_there_is_room() -> None:
    rng = random.Random(1)
    words = speech(rng, 40, 2.0, pause_every=6)  # slow speech with pauses
    cues = cues_from_captions([final(words)])
    for c in cues:
        chars = len(c.text.replace("\n", " "))
        assert chars / (c.end_s - c.start_s) <= 17.0 + 1e-6


def test_fast_speech_stays_within_delay_by_cutting_reading_time() -> None:
    rng = random.Random(2)
    words = speech(rng, 200, 6.0)  # ~30 chars/s: cannot be read at 17 cps and kept live
    cfg = LiveCaptionConfig()
    builder = LiveCueBuilder(cfg)
    cues = builder.push(final(words)) + builder.flush()
    check_cues(cues, words, cfg, builder)
    assert builder.reading_speed_cuts > 0 and builder.late_cues == 0


def test_partials_are_ignored_and_pause_splits() -> None:
    w1 = [Word("Hello", 0.0, 0.4), Word("there.", 0.4, 0.8)]
    w2 = [Word("Next", 5.0, 5.3), Word("one.", 5.3, 5.6)]
    partial = Caption("Hello the", 0, 100, Stability.PARTIAL, 0, 16000, tuple(w1))
    cues = cues_from_captions([partial, final(w1), final(w2, 1)])
    assert [c.text for c in cues] == ["Hello there.", "Next one."]
    assert cues[0].start_s == 0.0 and cues[0].end_s >= 0.833
    assert "00:00:05.000 --> " in to_vtt(cues) and "00:00:05,000 --> " in to_srt(cues)


def test_empty_finals_make_no_cues() -> None:
    empty = Caption("", 0, 0, Stability.FINAL, 0, 16000, ())
    assert cues_from_captions([empty]) == []


@pytest.mark.parametrize("kwargs", [{"max_line_chars": 5}, {"max_lines": 0}, {"min_cue_ms": 0},
                                    {"max_chars_per_s": 0}, {"max_delay_ms": -1}])
def test_bad_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        LiveCaptionConfig(**kwargs)  # type: ignore[arg-type]


def test_cues_split_alike_from_exact_and_published_times() -> None:
    """Caption events publish times in ms; a viewer rebuilding cues from them gets the live file's cues even
    where a word ends right on the 7 s limit (0.02 s .. 7.0200004 s exact, 7.02 s published)."""
    words = [Word(" And", 0.02, 0.5), Word(" so", 0.6, 1.0), Word(" my", 1.1, 1.6), Word(" fellow", 1.7, 3.0),
             Word(" Americans,", 3.1, 4.5), Word(" ask", 4.6, 5.2), Word(" not", 5.3, 6.0), Word(" what", 6.1, 6.5),
             Word(" your", 6.6, 7.0200004), Word(" country.", 7.1, 8.0)]
    published = [Word(w.text, round(w.start_s, 3), round(w.end_s, 3)) for w in words]
    assert cues_from_captions([final(words)]) == cues_from_captions([final(published)])
