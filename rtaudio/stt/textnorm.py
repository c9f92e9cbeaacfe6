"""English text normalisation for word error rates, so that spelling choices are not counted as errors.

Lower-case; bracketed asides and fillers (um, uh, hmm) dropped; common abbreviations spelled out;
symbols (%, &, $) as words; numbers to words (years read in pairs: 1455 -> fourteen fifty five;
1,000 -> one thousand; 3.5 -> three point five; 2nd -> second); hyphens to spaces; apostrophes
and other punctuation removed; whitespace collapsed. Both the reference and the hypothesis go
through the same function.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}
_FILLERS = re.compile(r"\b(?:hmm+|mm+|mhm+|uh+|um+|er|ah)\b")
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint", "jr": "junior",
                  "sr": "senior", "vs": "versus", "etc": "et cetera", "ok": "okay"}


def number_to_words(n: int) -> str:
    """Cardinal English words of a non-negative integer: 471 -> four hundred seventy one."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return number_to_words(n // value) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def _year_words(n: int) -> str:
    """1455 -> fourteen fifty five; 1900 -> nineteen hundred; 1905 -> nineteen oh five."""
    hi, lo = divmod(n, 100)
    if lo == 0:
        return number_to_words(hi) + " hundred"
    return number_to_words(hi) + " " + ("oh " + _ONES[lo] if lo < 10 else number_to_words(lo))


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (head + " " + last).strip()


def _integer_words(digits: str) -> str:
    n = int(digits)
    if len(digits) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099):
        return _year_words(n)
    if len(digits) > 1 and digits.startswith("0"):  # codes such as 007 are read digit by digit
        return " ".join(_ONES[int(d)] for d in digits)
    return number_to_words(n)


def _number(match: re.Match[str]) -> str:
    whole, frac, suffix = match.group(1).replace(",", ""), match.group(2), (match.group(3) or "").lower()
    words = _integer_words(whole)
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    if suffix in ("st", "nd", "rd", "th"):
        words = _ordinal(words)
    elif suffix == "s":  # 1990s -> nineteen nineties
        words = _ordinal(words)[:-2] + "s" if words.endswith("y") else words + "s"
    return f" {words} "


_NUMBER = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th|s)?\b", re.IGNORECASE)


def normalize_english(text: str) -> str:
    """Normalise English text for WER: see the module docstring."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[<\[][^>\]]*[>\]]", " ", text)  # [noise], <unk>
    text = re.sub(r"\(([^)]+?)\)", " ", text)  # (asides)
    text = text.replace("’", "'").replace("‘", "'")
    text = re.sub(r"\$\s*(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = text.replace("%", " percent ").replace("&", " and ").replace("+", " plus ").replace("@", " at ")
    text = _NUMBER.sub(_number, text)
    text = re.sub(r"[-‐‑–—/]", " ", text)  # hyphens and dashes separate words
    text = text.replace("'", "")
    text = re.sub(r"[^\w\s]", " ", text)
    text = _FILLERS.sub(" ", text)
    words = [_ABBREVIATIONS.get(w, w) for w in text.split()]
    return " ".join(words)
