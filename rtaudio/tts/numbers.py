"""English number words: cardinals, ordinals, years, decimals and digit strings.

espeak-ng reads numbers itself, but badly for speech ("$5.50" -> "dollar five point five zero",
"1990" as a year, "3/4/2021" as "three slash four ..."), so the normalizer spells them first.
"""

from __future__ import annotations

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}
MAX_CARDINAL = 10**15 - 1


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + ("-" + _ONES[n % 10] if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return words


def cardinal(n: int) -> str:
    """12345 -> 'twelve thousand three hundred forty-five'; negative numbers get 'minus'."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n > MAX_CARDINAL:
        return digits(str(n))
    words: list[str] = []
    for scale, name in _SCALES:
        if n >= scale:
            words += _below_thousand(n // scale) + [name]
            n %= scale
    if n or not words:
        words += _below_thousand(n)
    return " ".join(words)


def ordinal(n: int) -> str:
    """21 -> 'twenty-first'."""
    words = cardinal(n)
    head, sep, last = words.rpartition(" ")
    stem, hyphen, unit = last.rpartition("-")
    if unit in _ORDINAL_IRREGULAR:
        unit = _ORDINAL_IRREGULAR[unit]
    elif unit.endswith("y"):
        unit = unit[:-1] + "ieth"
    else:
        unit += "th"
    return head + sep + stem + hyphen + unit


def year(n: int) -> str:
    """1990 -> 'nineteen ninety', 2005 -> 'two thousand five', 1905 -> 'nineteen oh five'."""
    if not 0 < n < 10000:
        return cardinal(n)
    hi, lo = divmod(n, 100)
    if hi == 0 or (hi % 10 == 0 and lo < 10) or n % 1000 == 0:
        return cardinal(n)
    if lo == 0:
        return cardinal(hi) + " hundred"
    return cardinal(hi) + " " + (("oh " + _ONES[lo]) if lo < 10 else cardinal(lo))


def digits(s: str) -> str:
    """'0042' -> 'zero zero four two' (phone numbers, codes, say-as digits)."""
    return " ".join(_ONES[int(c)] for c in s if c.isdigit())


def decimal(text: str) -> str:
    """'3.14' -> 'three point one four'; the integer part may carry thousands commas."""
    whole, _, frac = text.partition(".")
    whole_words = cardinal(int(whole.replace(",", ""))) if whole else "zero"
    return whole_words + (" point " + digits(frac) if frac else "")
