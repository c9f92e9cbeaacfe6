"""English text normalization for the TTS: number words and the normalizer's passes."""

from __future__ import annotations

import pytest

from rtaudio.errors import TextError
from rtaudio.tts.normalize import normalize_text
from rtaudio.tts.number_forms import spell
from rtaudio.tts.numbers import cardinal, decimal, digits, ordinal, year


@pytest.mark.parametrize(("n", "words"), [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty-two"), (100, "one hundred"),
    (101, "one hundred one"), (999, "nine hundred ninety-nine"), (1000, "one thousand"),
    (12345, "twelve thousand three hundred forty-five"), (2_500_000, "two million five hundred thousand"),
    (1_000_000_001, "one billion one"), (-5, "minus five"),
])
def test_cardinal(n: int, words: str) -> None:
    assert cardinal(n) == words


@pytest.mark.parametrize(("n", "words"), [
    (1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
    (12, "twelfth"), (20, "twentieth"), (21, "twenty-first"), (99, "ninety-ninth"), (100, "one hundredth"),
    (103, "one hundred third"),
])
def test_ordinal(n: int, words: str) -> None:
    assert ordinal(n) == words


@pytest.mark.parametrize(("n", "words"), [
    (1990, "nineteen ninety"), (2005, "two thousand five"), (2021, "twenty twenty-one"), (1905, "nineteen oh five"),
    (1900, "nineteen hundred"), (2000, "two thousand"), (1066, "ten sixty-six"), (1648, "sixteen forty-eight"),
])
def test_year(n: int, words: str) -> None:
    assert year(n) == words


def test_digits_and_decimal() -> None:
    assert digits("0042") == "zero zero four two"
    assert decimal("3.14") == "three point one four"
    assert decimal("1,234.5") == "one thousand two hundred thirty-four point five"
    assert spell("AB1") == "ay bee one"


@pytest.mark.parametrize(("text", "spoken"), [
    ("Dr. Lee paid $5.50 on 3/4/2021 at 10:30 a.m.",
     "Doctor Lee paid five dollars and fifty cents on March fourth, twenty twenty-one at ten thirty AM."),
    ("It costs $1,234.56, or €20 and £1.",
     "It costs one thousand two hundred thirty-four dollars and fifty-six cents, or twenty euros and one pound."),
    ("$0.99 only", "ninety-nine cents only"),
    ("They raised $3 million.", "They raised three million dollars."),
    ("The 21st of May; 2nd place, 103rd floor.", "The twenty-first of May; second place, one hundred third floor."),
    ("In 1990 there were 1234 people.", "In nineteen ninety there were one thousand two hundred thirty-four people."),
    ("The 1990s and the '80s.", "The nineteen nineties and the eighties."),
    ("Call 555-123-4567 now!", "Call five five five, one two three, four five six seven now!"),
    ("Write to john.doe@example.com today.", "Write to john dot doe at example dot com today."),
    ("Visit https://www.example.com/path.", "Visit W W W dot example dot com slash path."),
    ("It is 25°C and 45% humid, 10 km away at 60 mph.",
     "It is twenty-five degrees Celsius and forty-five percent humid, ten kilometers away at sixty miles per hour."),
    ("It weighs 1 kg.", "It weighs one kilogram."),
    ("Meet me at 7pm. Then at 10:00 we leave.", "Meet me at seven PM. Then at ten o'clock we leave."),
    ("At 6:05 PM.", "At six oh five PM."),
    ("On Jan. 5, 2020 and 2024-02-29.", "On January fifth, twenty twenty and February twenty-ninth, twenty twenty-four."),
    ("Pages 10-20 and 3.14 and -5 degrees.", "Pages ten to twenty and three point one four and minus five degrees."),
    ("Mr. Smith lives on Elm St. near St. Louis.", "Mister Smith lives on Elm Street near Saint Louis."),
    ("He said \"hi\" (quietly) - then left...", "He said hi, quietly, then left."),
    ("Mix 1/2 cup, 3/4 done, open 24/7.", "Mix one half cup, three quarters done, open twenty-four seven."),
    ("NASA, e.g. the U.S. agency, etc.", "NASA, for example the US agency, et cetera."),
    ("J. R. R. Tolkien wrote it.", "jay ar ar Tolkien wrote it."),
    ("Flight AB123 and an MP3.", "Flight ay bee one two three and an em pee three."),
    ("3 apples & 2 pears = 5 fruits 🍎.", "three apples and two pears equals five fruits."),
    ("Item No. 5, version 2.0.", "Item number five, version two point zero."),
    ("He is 5'11\" tall.", "He is five feet eleven inches tall."),
    ("007", "zero zero seven"),
    ("World War II and Elizabeth II, Brazil vs. Germany.", "World War two and Elizabeth the second, Brazil versus Germany."),
    ("Café au lait, naïve.", "Café au lait, naïve."),
])
def test_normalize(text: str, spoken: str) -> None:
    assert normalize_text(text) == spoken


def test_normalize_leaves_no_digits_or_symbols() -> None:
    text = "Order #12 costs $3 + tax; that's 15% off @ 9:45 on 1/2/2023 (see p. 4) ~ 10 ms."
    out = normalize_text(text)
    assert not any(c.isdigit() for c in out)
    assert set(out) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.!?;:'-")


def test_empty_and_symbol_only_text_normalizes_to_nothing() -> None:
    assert normalize_text("") == ""
    assert normalize_text("  🍎 ** ...  ") == ""


def test_unsupported_script_is_a_text_error() -> None:
    with pytest.raises(TextError, match="cannot speak"):
        normalize_text("Hello 你好")
    with pytest.raises(TextError):
        normalize_text("Привет")
