"""Written numbers read aloud: money, dates, times, phone numbers, units, ordinals, years, codes and
roman numerals after names - the passes of the text normalizer that deal with digits.

Each `expand_*` function takes text and returns it with its matches in words, e.g.
`expand_money("$5.50")` -> "five dollars and fifty cents".
"""

from __future__ import annotations

import re

from rtaudio.tts import lexicon as lx
from rtaudio.tts.numbers import cardinal, decimal, digits, ordinal, year

_MONTH_RE = r"(?:" + "|".join(sorted({m for m in lx.MONTHS} | {m[:3] for m in lx.MONTHS} | {"Sept"},
                                     key=len, reverse=True)) + r")"
_SENTENCE_END_AFTER = re.compile(r"\s*$|\s+[A-Z]")


def ends_sentence(text: str, end: int) -> bool:
    """Whether an abbreviation's period at `end` also ends the sentence (end of text or a capital next)."""
    return bool(_SENTENCE_END_AFTER.match(text, end))


def spell(text: str) -> str:
    """'AB1' -> 'ay bee one': letters by name, digits one by one, other characters dropped."""
    return " ".join(lx.LETTERS.get(c.lower()) or digits(c) for c in text if c.isalnum() and c.isascii())


def _month(name: str) -> str:
    return lx.MONTH_ABBREVIATIONS[name[:4].lower().rstrip(".")] if name[:4].lower() == "sept" \
        else lx.MONTH_ABBREVIATIONS[name[:3].lower()]


def _int(s: str) -> int:
    return int(s.replace(",", ""))


# -- money -----------------------------------------------------------------------------------------
_SCALE_RE = r"(?:\s?(thousand|million|billion|trillion|bn|mn|[kKmMbB])\b)?"
_MONEY = re.compile(r"(-)?([$€£¥₹])\s?(\d[\d,]*)(?:\.(\d+))?" + _SCALE_RE)


def _money(m: re.Match[str]) -> str:
    minus, symbol, whole, frac, scale = m.groups()
    one, many, sub_one, sub_many = lx.CURRENCIES[symbol]
    sign = "minus " if minus else ""
    if scale:
        amount = decimal(whole + ("." + frac if frac else ""))
        return f"{sign}{amount} {lx.SCALE_WORDS[scale.lower()]} {many}"
    units = _int(whole)
    cents = int(frac[:2].ljust(2, "0")) if frac else 0
    if frac and len(frac) > 2:
        return f"{sign}{decimal(whole + '.' + frac)} {many}"
    parts = []
    if units or not cents:
        parts.append(f"{cardinal(units)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{cardinal(cents)} {sub_one if cents == 1 else sub_many}")
    return sign + " and ".join(parts)


# -- dates and times --------------------------------------------------------------------------------
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b")
_MONTH_DAY = re.compile(rf"\b({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?")
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH_RE})\b\.?(?:,?\s+(\d{{4}})\b)?")
_MONTH_YEAR = re.compile(rf"\b({_MONTH_RE})\.?,?\s+(\d{{4}})\b")
_AMPM = r"(?:\s?([aApP])\.?[mM]\b\.?)"
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?" + _AMPM + "?")
_HOUR_AMPM = re.compile(r"\b(\d{1,2})" + _AMPM)


def _date_words(month: int, day: int, yr: str | None) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    words = f"{lx.MONTHS[month - 1]} {ordinal(day)}"
    if yr:
        y = int(yr) + (2000 if len(yr) == 2 and int(yr) < 50 else 1900 if len(yr) == 2 else 0)
        words += f", {year(y)}"
    return words


def expand_dates(text: str) -> str:
    text = _ISO_DATE.sub(lambda m: _date_words(int(m[2]), int(m[3]), m[1]) or m.group(), text)

    def slash(m: re.Match[str]) -> str:
        a, b = int(m[1]), int(m[2])
        month, day = (b, a) if a > 12 else (a, b)  # US order unless the first field cannot be a month
        return _date_words(month, day, m[3]) or m.group()

    text = _SLASH_DATE.sub(slash, text)
    text = _MONTH_DAY.sub(lambda m: f"{_month(m[1])} {ordinal(int(m[2]))}" + (f", {year(int(m[3]))}" if m[3] else ""),
                          text)
    text = _DAY_MONTH.sub(lambda m: ("" if re.search(r"\bthe\s+$", m.string[:m.start()], re.IGNORECASE) else "the ")
                          + f"{ordinal(int(m[1]))} of {_month(m[2])}"
                          + (f", {year(int(m[3]))}" if m[3] else ""), text)
    return _MONTH_YEAR.sub(lambda m: f"{_month(m[1])} {year(int(m[2]))}", text)


def _ampm(letter: str | None, text: str, end: int, matched: str) -> str:
    if not letter:
        return ""
    words = " AM" if letter.lower() == "a" else " PM"
    return words + ("." if matched.endswith(".") and ends_sentence(text, end) else "")


def expand_times(text: str) -> str:
    def clock(m: re.Match[str]) -> str:
        h, mins, secs, ap = int(m[1]), int(m[2]), m[3], m[4]
        if h > 24 or mins > 59:
            return m.group()
        words = cardinal(h)
        if mins == 0 and not secs:
            words += "" if ap else " o'clock"
        else:
            words += " " + (("oh " + cardinal(mins)) if mins < 10 else cardinal(mins))
        if secs:
            words += f" and {cardinal(int(secs))} seconds"
        return words + _ampm(ap, m.string, m.end(), m.group())

    text = _TIME.sub(clock, text)
    return _HOUR_AMPM.sub(lambda m: cardinal(int(m[1])) + _ampm(m[2], m.string, m.end(), m.group())
                          if int(m[1]) <= 12 else m.group(), text)


# -- phone numbers, ordinals, units, plain numbers --------------------------------------------------
_PHONE = re.compile(r"(?:\+?1[\s.-])?\(?\b(\d{3})\)?[\s.-](\d{3})[.-](\d{4})\b|\b(\d{3})-(\d{4})\b")


def _phone(m: re.Match[str]) -> str:
    return ", ".join(digits(g) for g in m.groups() if g)


_ORDINAL = re.compile(r"\b(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER = r"(-?" + _NUM + ")"
_unit_keys = sorted(lx.UNITS, key=len, reverse=True)
_UNIT = re.compile(_NUMBER + r"(\s?)(" + "|".join(re.escape(u) for u in _unit_keys) + r")(?![\w°])",
                   re.IGNORECASE)
_NO_SPACE_UNITS = {"in", "s", "t", "x", "h", "m"}


def _unit(m: re.Match[str]) -> str:
    number, space, unit = m.groups()
    key = unit.lower()
    if key in lx.CASE_SENSITIVE_UNITS and unit != key:
        return m.group()
    if space and key in _NO_SPACE_UNITS:
        return m.group()
    one, many = lx.UNITS[key]
    spoken = _number_words(number)
    return f"{spoken} {one if number == '1' else many}"


def _number_words(number: str) -> str:
    minus = number.startswith("-")
    body = number.lstrip("-")
    if "." in body:
        words = decimal(body)
    elif len(body) > 1 and body.startswith("0"):
        words = digits(body)
    else:
        words = cardinal(_int(body))
    return ("minus " if minus else "") + words


_DECADE = re.compile(r"\b(1[0-9]|20)([0-9]0)'?s\b|(?<![\w'])'([0-9]0)s\b")
_YEAR_CONTEXT = re.compile(r"(?:\b(?:in|since|by|from|until|till|of|year|before|after|around|circa|early|late|mid"
                           r"|summer|winter|spring|fall|autumn|during|between|and|to|through)|[-–]|[,(])\s*$",
                           re.IGNORECASE)
_YEAR = re.compile(r"(?<![\d.,])\b(1[1-9]\d\d|20\d\d)\b(?![\d.,]\d)")
_FRACTION = re.compile(r"(?<![\d/])\b(\d+)/(\d+)\b(?!/)")
_RANGE = re.compile(r"(?<![\d.,-])\b(" + _NUM + r")\s?-\s?(" + _NUM + r")\b(?![\d-])")


def _decade(m: re.Match[str]) -> str:
    if m[3]:
        return cardinal(int(m[3]))[:-1] + "ies"
    words = year(int(m[1] + m[2]))
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _fraction(m: re.Match[str]) -> str:
    num, den = int(m[1]), int(m[2])
    if (num, den) == (24, 7):
        return "twenty-four seven"
    if den == 0 or den > 16 or num > 99:
        return f"{cardinal(num)} slash {cardinal(den)}"
    name = {1: "over one", 2: "half", 4: "quarter"}.get(den) or ordinal(den)
    if den == 2 and num != 1:
        name = "halves"
    elif num != 1 and den != 1:
        name += "s"
    return f"{cardinal(num)} {name}"


_FEET_INCHES = re.compile(r"\b(\d+)'\s?(\d+)(?:\"|'')")
_CODE = re.compile(r"\b(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z\d]+\b")


def _code(m: re.Match[str]) -> str:
    """Alphanumeric codes (AB123, MP3, 4K, COVID19): short capital runs spelled, digits read."""
    parts = re.findall(r"\d+|[A-Za-z]+", m.group())
    words = []
    for part in parts:
        if part.isdigit():
            words.append(cardinal(int(part)) if len(part) <= 2 else digits(part))
        elif part.isupper() and len(part) <= 3:
            words.append(spell(part))
        else:
            words.append(part)
    return " ".join(words)


def expand_numbers(text: str) -> str:
    text = _FEET_INCHES.sub(lambda m: f"{cardinal(int(m[1]))} feet {cardinal(int(m[2]))} inches", text)
    text = _PHONE.sub(_phone, text)
    text = _ORDINAL.sub(lambda m: ordinal(_int(m[1])), text)
    text = _DECADE.sub(_decade, text)
    text = _UNIT.sub(_unit, text)
    text = _CODE.sub(_code, text)
    text = _FRACTION.sub(_fraction, text)
    text = _RANGE.sub(lambda m: f"{_number_words(m[1])} to {_number_words(m[2])}", text)
    text = _YEAR.sub(lambda m: year(int(m[1])) if _YEAR_CONTEXT.search(m.string, 0, m.start()) else m.group(),
                     text)
    text = re.sub(r"(?:(?<=^)|(?<=[\s(\"]))-(?=\d)", "minus ", text)
    return re.sub(_NUM, lambda m: _number_words(m.group()), text)


# -- roman numerals after names ("Elizabeth II", "World War II") ------------------------------------
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50}
_ROMAN = re.compile(r"\b([A-Z][a-z]+) ((?:X{0,3})(?:IX|IV|V?I{0,3}))\b(?!['\w])")
_COUNTED = {"War", "Chapter", "Part", "Volume", "Book", "Act", "Phase", "Level", "Type", "Class", "Stage", "Round",
            "Apollo", "Gemini", "Vatican", "Episode", "Season", "Article", "Title", "Section", "Unit", "Grade"}


def _roman_value(numeral: str) -> int:
    total = 0
    for a, b in zip(numeral, numeral[1:] + " ", strict=True):
        v = _ROMAN_VALUES[a]
        total += -v if b != " " and _ROMAN_VALUES[b] > v else v
    return total


def _roman(m: re.Match[str]) -> str:
    word, numeral = m[1], m[2]
    if len(numeral) < 2 and numeral not in ("V",):  # a lone I or X is a word or a letter
        return m.group()
    n = _roman_value(numeral)
    return f"{word} {cardinal(n)}" if word in _COUNTED else f"{word} the {ordinal(n)}"



def expand_money(text: str) -> str:
    return _MONEY.sub(_money, text)


def expand_roman_numerals(text: str) -> str:
    return _ROMAN.sub(_roman, text)
