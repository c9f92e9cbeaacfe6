"""English text normalisation for word error rates, so that spelling choices are not counted as errors.

Both the reference and the hypothesis go through `normalize_english`:
  - lower-case; sound annotations ([noise], (laughs): up to three words in brackets) and fillers (um, uh, hmm) dropped;
    abbreviations spelled out (mr -> mister); symbols as words (%, &, $);
  - hyphens and dashes to spaces; apostrophes and other punctuation removed;
  - spelled letters form one word: "J P E G", "J-P-E-G" and "JPEG" all become "jpeg";
  - numbers: digits to words, digit by digit, after number words are read into digits. Grouping is
    a formatting choice: "683-6027", "6836027" and "six eight three six zero two seven" all
    become the same seven words, as do "1455" and "fourteen fifty five", "1,000" and "one
    thousand". Ordinals become words (2nd -> second), decimals read "point" (3.5 -> three point five).
    The number words are TTS's (`rtaudio.tts.numbers`) without hyphens, so both read numbers alike.
"""

from __future__ import annotations

import re
import unicodedata

from rtaudio.tts.numbers import cardinal, digits, ordinal

_FILLERS = re.compile(r"\b(?:hmm+|mm+|mhm+|uh+|um+|er|ah)\b")
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miss", "dr": "doctor", "st": "saint", "jr": "junior",
                  "sr": "senior", "vs": "versus", "etc": "et cetera", "ok": "okay"}

_ZERO_LETTERS = frozenset({"oh", "o"})
_ORDINAL_WORDS = frozenset(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth "
    "fifteenth sixteenth seventeenth eighteenth nineteenth twentieth thirtieth fortieth fiftieth sixtieth "
    "seventieth eightieth ninetieth hundredth thousandth millionth".split())
_UNIT_WORDS = {cardinal(i): i for i in range(20)}  # zero .. nineteen
_TEN_WORDS = {cardinal(i): i for i in range(20, 100, 10)}  # twenty .. ninety
_SCALE_WORDS = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}


def number_to_words(n: int) -> str:
    """Cardinal English words of a non-negative integer: 471 -> four hundred seventy one."""
    return cardinal(n).replace("-", " ")


def _ordinal_digits(match: re.Match[str]) -> str:
    return " " + ordinal(int(match.group(1))).replace("-", " ") + " "


# -- number words -> digits ---------------------------------------------------------------------------

def _read_cardinal(words: list[str], i: int) -> tuple[int, int]:
    """Read one cardinal starting at words[i] -> (value, next index). A word that cannot continue it
    (a unit after a unit, a ten after a unit) starts the next number: "four seventy one" = 4, 71."""
    total, group, last = 0, 0, ""
    while i < len(words):
        w = words[i]
        if w in _UNIT_WORDS:
            if last in ("unit", "teen") or (last == "ten" and _UNIT_WORDS[w] >= 10):
                break
            group += _UNIT_WORDS[w]
            last = "teen" if _UNIT_WORDS[w] >= 10 else "unit"
        elif w in _TEN_WORDS:
            if last in ("unit", "teen", "ten"):
                break
            group += _TEN_WORDS[w]
            last = "ten"
        elif w == "hundred":
            if last not in ("unit", "teen") or group % 100 == 0 and group >= 100:
                break
            group *= 100
            last = "hundred"
        elif w in _SCALE_WORDS:
            if last == "" or last == "scale":
                break
            total += group * _SCALE_WORDS[w]
            group, last = 0, "scale"
        elif w == "and" and last == "hundred" and i + 1 < len(words) and (
                words[i + 1] in _UNIT_WORDS or words[i + 1] in _TEN_WORDS):
            pass  # "one hundred and five"
        else:
            break
        i += 1
    return total + group, i


def _is_number_word(w: str) -> bool:
    return w in _UNIT_WORDS or w in _TEN_WORDS or w in _SCALE_WORDS


def _words_to_digits(words: list[str]) -> list[str]:
    """Runs of number words -> one digit string per run ("oh" counts as zero inside a run)."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        numeric = _is_number_word(w) and w not in _SCALE_WORDS or w.isdigit()
        if not numeric:
            out.append(w)
            i += 1
            continue
        digits, start = "", i
        while i < len(words):
            w = words[i]
            if w.isdigit():
                digits += w
                i += 1
            elif w in _ZERO_LETTERS and digits and (i + 1 == len(words) or _is_number_word(words[i + 1])
                                                     or words[i + 1].isdigit() or words[i + 1] in _ZERO_LETTERS):
                digits += "0"  # "six oh one", "96-O-17"
                i += 1
            elif _is_number_word(w) and w not in _SCALE_WORDS:
                value, i = _read_cardinal(words, i)
                digits += str(value)
            else:
                break
        if i < len(words) and words[i] in _ORDINAL_WORDS:  # "twenty first": keep the words
            out += words[start:i]
        else:
            out.append(digits)
    return out


def _spell_digits(words: list[str]) -> list[str]:
    out: list[str] = []
    for w in words:
        if w.isdigit():
            out += digits(w).split()
        else:
            out.append(w)
    return out


# -- the normaliser -----------------------------------------------------------------------------------

_ORDINAL_NUMBER = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.IGNORECASE)


def normalize_english(text: str) -> str:
    """Normalise English text for WER: see the module docstring."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[<\[][^>\]]*[>\]]", " ", text)  # [noise], <unk>
    text = re.sub(r"\((?:\s*[^()\s]+){1,3}\s*\)", " ", text)  # (laughs), (upbeat music); not longer asides
    text = _ORDINAL_NUMBER.sub(_ordinal_digits, text)
    text = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", text)  # LKKN38 -> LKKN 38
    text = text.lower().replace("’", "'").replace("‘", "'")
    text = re.sub(r"\$\s*(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = text.replace("%", " percent ").replace("&", " and ").replace("+", " plus ").replace("@", " at ")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<=\d)\.(?=\d)", " point ", text)  # 3.5 -> 3 point 5
    text = re.sub(r"[-‐‑–—/]", " ", text)  # hyphens and dashes separate words
    text = text.replace("'", "")
    text = re.sub(r"[^\w\s]", " ", text)
    text = _FILLERS.sub(" ", text)
    words = [_ABBREVIATIONS.get(w, w) for w in text.split()]
    return " ".join(_join_letters(_spell_digits(_words_to_digits(words))))


def _join_letters(words: list[str]) -> list[str]:
    """Runs of two or more single letters are one spelled word: l k k n -> lkkn."""
    out: list[str] = []
    run: list[str] = []
    for w in [*words, ""]:
        if len(w) == 1 and w.isalpha():
            run.append(w)
            continue
        out += ["".join(run)] if len(run) > 1 else run
        run = []
        if w:
            out.append(w)
    return out
