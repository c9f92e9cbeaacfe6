"""The pure parts of live captioning: word completion, text joining, configs (the latency budget: test_latency_budget)."""

from __future__ import annotations

import pytest

from rtaudio.errors import ConfigError
from rtaudio.frames import Word
from rtaudio.stt.stabilizer import repetition_start
from rtaudio.stt.streaming import StreamingConfig
from rtaudio.stt.window_pass import (
    complete_words,
    echo_index,
    fuzzy_repeat_start,
    heard_words,
    piled_start,
    said_again,
    words_text,
)


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


def test_text_the_alignment_piles_at_one_instant_was_not_heard() -> None:
    """A 14-word phrase read twice more (too long for `repetition_start`) came back with every extra word at
    one instant (the LJSpeech reading at 200 ms endpointing): the words from the pile on are dropped."""
    said = [Word(f" {w}", 0.3 * i, 0.3 * i + 0.25) for i, w in enumerate("or cost incurred in casting".split())]
    again = "in casting especially as no more time is occupied or cost incurred in casting".split()
    piled = [Word(f" {w}", 1.6, 1.6) for w in again] + [Word(" casting", 1.6, 1.9)]
    assert piled_start(said + piled) == len(said)
    heard = heard_words(said + piled, False, 2.0, 0, 0, final=True)
    assert words_text(heard) == "or cost incurred in casting"
    assert piled_start(said) is None
    assert piled_start(said + piled[-2:]) is None, "two words at one instant may be fast speech"


def test_a_loop_that_changes_as_it_piles_up_is_cut_where_it_began() -> None:
    """A final of an AN4 reading ("ENTER FOUR FIVE EIGHT TWO ONE", decoded in a batch) went on as "Enter 45821"
    three times, then "Enter 4821" over and over, 13 words crammed into the 0.4 s before the audio ended; no
    copy ran to the end, so neither loop rule saw it. The words are the alignment's, times in s."""
    said = [(" 649", 0.0, 1.34), (" X", 1.34, 2.92), (" and", 2.92, 3.3), (" KU8", 3.3, 5.06), (" Enter", 5.06, 6.22),
            (" 45821", 6.22, 7.84)]
    crammed = [(" Enter", 7.84, 7.84), (" 45821", 7.84, 7.9), (" Enter", 7.9, 7.9), (" 45821", 7.9, 8.22),
               (" Enter", 8.22, 8.22), (" 4821", 8.22, 8.22), (" Enter", 8.22, 8.24)]
    crammed += [(" 4821", 8.24, 8.24), (" Enter", 8.24, 8.24)] * 2 + [(" 4821", 8.24, 8.24), (" Enter", 8.24, 8.4)]
    raw = [Word(t, a, b) for t, a, b in said + crammed]
    assert piled_start(raw) == len(said)
    heard = heard_words(raw, False, 8.42, 0, int(5.5 * 16000), final=True)
    assert words_text(heard) == "Enter 45821"
    # the same words said at a speaking pace are speech
    paced = [Word(w.text, 8.0 + 0.3 * i, 8.0 + 0.3 * i + 0.25) for i, w in enumerate(raw[len(said):len(said) + 4])]
    assert piled_start(raw[:len(said)] + paced) is None


def test_a_word_said_again_and_again_is_not_a_loop_in_a_whole_segment() -> None:
    """"here's some more word word word word word" (an MFA clip) ends with the speech; a loop runs on into
    the silence padding or past a few copies, and a number read twice stays a loop."""
    said = _w("heres some more word word word word word")  # the last copy: 2.1-2.4 s
    loop = repetition_start(said)
    assert loop == 5
    assert said_again(said, loop, content_s=3.0)
    assert not said_again(said, loop, content_s=2.15), "the last copy starts in the padding"
    many = _w("and the " + "the " * 8)
    assert not said_again(many, repetition_start(many) or 0, content_s=10.0), "more copies than a speaker says"
    number = _w("in 1928 1928")
    assert repetition_start(number) == 2 and not said_again(number, 2, content_s=10.0)


def test_the_last_final_word_heard_again_marks_where_new_words_start() -> None:
    context = _w("I really dont know how people talk")  # "know" at 0.9-1.2 s
    assert echo_index(context, 0.0, [Word(" know", 0.95, 1.22)]) == 3
    assert echo_index(context, 10.0, [Word(" know", 10.95, 11.22)]) == 3  # stream times: offset by the context start
    assert echo_index(context, 0.0, [Word(" know", 2.0, 2.3)]) is None  # the same word, but not where the final had it
    assert echo_index(context, 0.0, [Word(" grow", 0.95, 1.22)]) is None
    assert echo_index(context, 0.0, []) is None
    # the final's last two words heard as one, a letter off: "Rub out." -> "Robout"
    merged = _w("Robout T G J")
    assert echo_index(merged, 0.0, [Word(" Rub", 0.1, 0.2), Word(" out.", 0.2, 0.4)]) == 0
