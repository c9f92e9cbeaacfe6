"""Text normalisation and WER scoring (tools/wer.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rtaudio.stt.textnorm import normalize_english, number_to_words

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools.wer import Utterance, group_of, read_manifest, score  # noqa: E402


@pytest.mark.parametrize(("text", "want"), [
    ("Hello, World!", "hello world"),
    ("the lower-case being", "the lower case being"),
    ("It's 5 o'clock", "its five oclock"),
    ("Enter 60.", "enter six zero"),
    ("ENTER SIXTY", "enter six zero"),
    ("about 1455", "about one four five five"),
    ("about fourteen fifty-five", "about one four five five"),
    ("RUBOUT I T D K M FOUR SEVENTY ONE", "rubout itdkm four seven one"),
    ("Rub out ITDKM-471.", "rub out itdkm four seven one"),
    ("L K K N THIRTY EIGHT", "lkkn three eight"),
    ("LKKN38.", "lkkn three eight"),
    ("S-Y-F-C-D 9-6-O-1-7.", "syfcd nine six zero one seven"),
    ("683-6027", "six eight three six zero two seven"),
    ("SIX EIGHT THREE SIX ZERO TWO SEVEN", "six eight three six zero two seven"),
    ("FIFTY EIGHT OH NINE AND A HALF", "five eight zero nine and a half"),
    ("one thousand three hundred and thirty two", "one three three two"),
    ("1,332", "one three three two"),
    ("the 42-line Bible", "the four two line bible"),
    ("3.5 percent or 3.5%", "three point five percent or three point five percent"),
    ("the 2nd and 21st", "the second and twenty first"),
    ("$20 bill", "two zero dollars bill"),
    ("Mr. Smith [laughs] uh yes (upbeat music)", "mister smith yes"),
    ("dated (which also was printed at Maintz) imitates", "dated which also was printed at maintz imitates"),
    ("rock & roll", "rock and roll"),
    ("“quoted” — dash", "quoted dash"),
    ("Oh, the one I like", "oh the one i like"),
    ("The FBI and the F.B.I.", "the fbi and the fbi"),
    ("was I a fool", "was ia fool"),
])
def test_normalize_english(text: str, want: str) -> None:
    assert normalize_english(text) == want


def test_number_words() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(471) == "four hundred seventy one"
    assert number_to_words(2_000_017) == "two million seventeen"


def test_groups_and_pooled_scores() -> None:
    assert group_of("an4_x.flac") == "an4" and group_of("jfk_a.flac") == group_of("beckett_b.flac") == "quotes"
    utts = [Utterance("an4_a.flac", 1.0, "ENTER SIXTY"), Utterance("ljspeech_b.flac", 2.0, "the lower-case letters"),
            Utterance("long_c.flac", 3.0, "one two three four")]
    scores = score(utts, {"an4_a.flac": "Enter 60.", "ljspeech_b.flac": "the lowercase letters"})
    assert scores["an4"].errors == 0 and scores["an4"].words == 3  # enter six zero
    assert scores["ljspeech"].errors == 2 and scores["ljspeech"].words == 4  # "lower case" vs "lowercase"
    assert scores["long"].errors == 4  # no hypothesis: all deleted
    pooled = scores["pooled"]
    assert (pooled.errors, pooled.words, pooled.files) == (6, 11, 3)
    assert pooled.wer == pytest.approx(6 / 11)


def test_reads_the_real_manifest(speech_dir: Path) -> None:
    utts = read_manifest(speech_dir / "manifest.tsv")
    assert len(utts) > 100 and all(u.duration_s > 0 and u.transcript for u in utts)
    assert {group_of(u.file) for u in utts} >= {"an4", "ljspeech", "long", "librispeech", "quotes"}


def test_a_caption_shows_words_with_other_breaks_of_the_same_characters() -> None:
    from bench.word_match import shown_words

    ref = "rubout xh bac 534".split()
    assert shown_words("rub out x h b a c 5 3".split(), ref) == [0, 1, 2]  # "534" not complete yet
    assert shown_words("rub out x h b a c 534".split(), ref) == [0, 1, 2, 3]
    # other words are not shown, even when their letters are there
    assert shown_words("printing the only".split(), "printing in the only".split()) == [0, 2, 3]
    assert shown_words("the a force said".split(), "the aforementioned forced".split()) == [0]
    assert shown_words("gftu13".split(), ["gftu1332"]) == []
    assert shown_words("three 14".split(), "3 14 67".split()) == [0, 1]  # a digit and its word are one word
