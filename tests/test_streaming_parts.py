"""The pure parts of live captioning: the latency budget, word completion, text joining, configs."""

from __future__ import annotations

import pytest

from rtaudio.errors import ConfigError
from rtaudio.frames import Word
from rtaudio.stt.latency_budget import BudgetEvent, LatencyBudget
from rtaudio.stt.streaming import StreamingConfig
from rtaudio.stt.window_pass import complete_words, fuzzy_repeat_start, words_text


def test_budget_stretches_cadence_to_pass_time() -> None:
    b = LatencyBudget(max_lag_s=1.0, interval_s=0.25)
    assert b.interval_s == 0.25
    b.observe_pass(0.1)
    assert b.interval_s == 0.25
    for _ in range(10):
        b.observe_pass(0.6)
    assert 0.55 < b.interval_s <= 0.6


def test_budget_degrades_and_recovers_with_hysteresis() -> None:
    b = LatencyBudget(max_lag_s=1.0, interval_s=0.25)
    b.observe_lag(0.4)
    assert not b.degraded and b.events() == []
    for _ in range(5):
        b.observe_lag(2.0)
    assert b.degraded
    (ev,) = b.events()
    assert isinstance(ev, BudgetEvent) and ev.degraded and ev.lag_s > 1.0
    b.observe_lag(0.8)  # between half and full budget: stays degraded
    assert b.degraded and b.events() == []
    for _ in range(10):
        b.observe_lag(0.1)
    assert not b.degraded
    assert [e.degraded for e in b.events()] == [False]


def test_budget_skips_partials_while_audio_waits() -> None:
    b = LatencyBudget(max_lag_s=1.0, interval_s=0.25)
    assert b.allow_partial(0.5)
    assert not b.allow_partial(1.5) and not b.allow_partial(2.5)
    assert b.skipped == 2 and b.degraded
    b.reset()
    assert b.skipped == 0 and not b.degraded


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
