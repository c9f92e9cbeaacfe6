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
    ("RUBOUT I T D K M FOUR SEVENTY ONE", "rubout i t d k m four seventy one"),
    ("Enter 60.", "enter sixty"),
    ("about 1455", "about fourteen fifty five"),
    ("the 42-line Bible", "the forty two line bible"),
    ("1,000,000 people", "one million people"),
    ("3.5 percent or 3.5%", "three point five percent or three point five percent"),
    ("the 2nd and 21st", "the second and twenty first"),
    ("in the 1990s", "in the nineteen nineties"),
    ("$20 bill", "twenty dollars bill"),
    ("Mr. Smith [laughs] uh yes", "mister smith yes"),
    ("rock & roll", "rock and roll"),
    ("“quoted” — dash", "quoted dash"),
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
    assert scores["an4"].errors == 0 and scores["an4"].words == 2
    assert scores["ljspeech"].errors == 2 and scores["ljspeech"].words == 4  # "lower case" vs "lowercase"
    assert scores["long"].errors == 4  # no hypothesis: all deleted
    pooled = scores["pooled"]
    assert (pooled.errors, pooled.words, pooled.files) == (6, 10, 3)
    assert pooled.wer == pytest.approx(0.6)


def test_reads_the_real_manifest(speech_dir: Path) -> None:
    utts = read_manifest(speech_dir / "manifest.tsv")
    assert len(utts) > 100 and all(u.duration_s > 0 and u.transcript for u in utts)
    assert {group_of(u.file) for u in utts} >= {"an4", "ljspeech", "long", "librispeech", "quotes"}
