"""The pure parts of live captioning: word completion, text joining, configs (the latency budget: test_latency_budget)."""

from __future__ import annotations

import pytest

from rtaudio.errors import ConfigError
from rtaudio.frames import Word
from rtaudio.stt.streaming import StreamingConfig
from rtaudio.stt.window_pass import complete_words, fuzzy_repeat_start, words_text


def test_complete_words_restores_dropped_tail() -> None:
    words = [Word(" Ever", 0.0, 0.5)]
    done = complete_words(" Ever tried", words, content_s=1.2)
    assert [w.text for w in done] == [" Ever", " tried"]
    assert 0.5 <= done[1].start_s < done[1].end_s <= 1.2
    # nothing to add, or a text that does not extend the words: unchanged
    assert complete_words(" Ever", words, 1.2) == words
    assert complete_words(" Never tried", words, 1.2) == words


def test_words_text_keeps_whispers_spacing() -> None:
    assert words_text([Word(" 527", 0, 1), Word("-66", 1, 2)]) == "527-66"
    assert words_text([Word("Hello", 0, 1), Word(" world.", 1, 2)]) == "Hello world."
    assert words_text([]) == ""


@pytest.mark.parametrize("kwargs", [
    {"partial_interval_ms": 10}, {"min_window_ms": 0}, {"trim_window_ms": 100, "min_window_ms": 300},
    {"max_window_ms": 28000, "context_ms": 4000}, {"agreement_n": 0}, {"final_beam_size": 0},
    {"max_tokens_per_s": 0}, {"max_lag_ms": 0}, {"context_ms": -1}, {"min_encode_ms": 40000},
])
def test_bad_streaming_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        StreamingConfig(**kwargs)  # type: ignore[arg-type]


def _w(text: str) -> list[Word]:
    return [Word(" " + t, i * 0.3, (i + 1) * 0.3) for i, t in enumerate(text.split())]


def test_fuzzy_repeat_start_finds_reworded_loops_only() -> None:
    loop = _w("the morn approach will also be reflecting the terms of address "
              "the more in approach we will also be reflecting the terms of address")
    assert fuzzy_repeat_start(loop) == 11
    assert fuzzy_repeat_start(_w("we choose to go to the moon in this decade and do the other things")) is None
    assert fuzzy_repeat_start(_w("words words words words and that should be all")) is None
