"""SentenceSplitter: pieces of incrementally arriving text, whatever the fragmentation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtaudio.errors import ConfigError
from rtaudio.tts.splitter import SentenceSplitter, SplitterConfig

TEXT = ("Hello there, my friend. Dr. Smith arrived at 3.5 p.m. today! Did he? Yes, e.g. the cat. "
        "I said no. Then J. Smith came.\nA new line without an end mark and a final one. Item No. 4 is here. Last bit")
PIECES = ["Hello there, my friend.", "Dr. Smith arrived at 3.5 p.m. today!", "Did he?", "Yes, e.g. the cat.",
          "I said no.", "Then J. Smith came.", "A new line without an end mark and a final one.",
          "Item No. 4 is here.", "Last bit"]


def run(text: str, cuts: list[int], config: SplitterConfig) -> list[str]:
    s = SentenceSplitter(config)
    out: list[str] = []
    prev = 0
    for c in sorted(set(cuts)) + [len(text)]:
        out += s.push(text[prev:c])
        prev = c
    return out + s.flush()


def test_whole_text() -> None:
    assert run(TEXT, [], SplitterConfig(eager_clause_chars=0)) == PIECES


def test_token_by_token_releases_a_sentence_when_the_next_word_starts() -> None:
    s = SentenceSplitter(SplitterConfig(eager_clause_chars=0))
    assert s.push("The end.") == []
    assert s.push(" ") == []
    assert s.push("Next") == ["The end."]
    assert s.push(" one") == []
    assert s.flush() == ["Next one"]
    assert s.flush() == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=40))
def test_any_fragmentation_gives_the_same_pieces(cuts: list[int]) -> None:
    assert run(TEXT, cuts, SplitterConfig(eager_clause_chars=0)) == PIECES


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=40))
def test_eager_first_clause_loses_no_text(cuts: list[int]) -> None:
    out = run(TEXT, cuts, SplitterConfig(eager_clause_chars=10))
    assert " ".join(out).split() == TEXT.split()


def test_eager_first_clause_only_for_the_first_piece() -> None:
    s = SentenceSplitter(SplitterConfig(eager_clause_chars=20))
    assert s.push("While the kettle was boiling, we talked") == ["While the kettle was boiling,"]
    assert s.push(" for a while, then left. Later, we ate") == ["we talked for a while, then left."]
    assert s.flush() == ["Later, we ate"]


def test_runaway_sentence_is_cut_at_a_clause_then_a_space() -> None:
    cfg = SplitterConfig(eager_clause_chars=0, max_sentence_chars=40)
    s = SentenceSplitter(cfg)
    out = s.push("one two three four five, six seven eight nine ten eleven twelve thirteen fourteen")
    assert out[0] == "one two three four five,"
    rest = out[1:] + s.flush()
    assert all(len(p) <= 40 for p in rest)
    assert " ".join(out[:1] + rest).split() == "one two three four five, six seven eight nine ten eleven twelve thirteen fourteen".split()


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        SplitterConfig(eager_clause_chars=-1)
    with pytest.raises(ConfigError):
        SplitterConfig(max_sentence_chars=5)
