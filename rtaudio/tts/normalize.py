"""English text normalization for speech: spell out what espeak-ng would misread.

`normalize_text("Dr. Lee paid $5.50 on 3/4/2021 at 10:30 a.m.")` ->
"Doctor Lee paid five dollars and fifty cents on March fourth, twenty twenty-one at ten thirty A M."

Passes run in a fixed order, most specific first (URLs before dots, dates and times before plain
numbers, units before symbols). The output keeps clause punctuation (, . ! ? ; :) because the
Piper voice was trained with it and uses it for pauses and intonation. Emoji and other symbols
are dropped; letters of scripts an English voice cannot read raise TextError.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from rtaudio.errors import TextError
from rtaudio.tts import lexicon as lx
from rtaudio.tts.numbers import cardinal, decimal, digits, ordinal, year

_MONTH_RE = r"(?:" + "|".join(sorted({m for m in lx.MONTHS} | {m[:3] for m in lx.MONTHS} | {"Sept"},
                                     key=len, reverse=True)) + r")"
_SENTENCE_END_AFTER = re.compile(r"\s*$|\s+[A-Z]")


def _ends_sentence(text: str, end: int) -> bool:
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


# -- unicode -------------------------------------------------------------------------------------
_UNICODE_MAP = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"',
                "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"', "\u2026": "...",
                "\u2014": " - ", "\u2015": " - ", "\u2212": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
                "\u00ad": "", "\u200b": "", "\ufeff": ""}


_VULGAR = re.compile(r"(\d)?([" + "".join(lx.FRACTIONS) + "])")


def _vulgar(m: re.Match[str]) -> str:
    return (m[1] + " and " if m[1] else "") + lx.FRACTIONS[m[2]]


def _clean_unicode(text: str) -> str:
    text = _VULGAR.sub(_vulgar, text)
    text = re.sub(r"(\d)\s*\u2013\s*(\d)", r"\1 to \2", text)  # en dash in a range
    text = text.replace("\u2013", " - ")
    text = "".join(_UNICODE_MAP.get(c, c) for c in text)
    text = unicodedata.normalize("NFKC", text)
    return re.sub(r"[\t\r\n\f\v]+", " ", text)


# -- URLs and e-mail ------------------------------------------------------------------------------
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s,;\"')]+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|edu|gov|dev|ai|app"
                  r"|co\.uk|uk|de|fr|info|biz)\b(?:/[^\s,;\"')]*)?", re.IGNORECASE)
_URL_SYMBOLS = {".": " dot ", "/": " slash ", "-": " dash ", "_": " underscore ", "?": " question mark ",
                "=": " equals ", "&": " and ", ":": " colon ", "#": " hash ", "+": " plus ", "~": " tilde ",
                "%": " percent ", "@": " at "}


def _spell_address(addr: str) -> str:
    out = "".join(_URL_SYMBOLS.get(c, c) for c in addr)
    out = re.sub(r"\d+", lambda m: " " + digits(m.group()) + " ", out)
    return re.sub(r"\bwww\b", "W W W", out)


def _urls(text: str) -> str:
    text = _EMAIL.sub(lambda m: _spell_address(m.group()), text)

    def url(m: re.Match[str]) -> str:
        addr = m.group()
        trail = ""
        while addr and addr[-1] in ".!?:":  # sentence punctuation after the address
            trail, addr = addr[-1] + trail, addr[:-1]
        addr = re.sub(r"^https?://", "", addr, flags=re.IGNORECASE).rstrip("/")
        return _spell_address(addr) + trail

    return _URL.sub(url, text)


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


def _dates(text: str) -> str:
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
    return words + ("." if matched.endswith(".") and _ends_sentence(text, end) else "")


def _times(text: str) -> str:
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


def _numbers(text: str) -> str:
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


# -- abbreviations and symbols ----------------------------------------------------------------------
_DOTTED = re.compile("|".join(re.escape(k) for k in sorted(lx.DOTTED, key=len, reverse=True)), re.IGNORECASE)
_TITLE = re.compile(r"\b(?:(" + "|".join(lx.TITLES) + r")\.|(mr|mrs|ms))(?=\s+[A-Z])", re.IGNORECASE)
_DR_ST = re.compile(r"\b(Dr|St)\.(?=\s|$)")
_NUMERIC_ABBR = {"no", "nos", "p", "pp", "ch", "fig", "vol", "tel"}
_NEVER_END = _NUMERIC_ABBR | {"vs", "approx", "est"}
_ABBR = re.compile(r"\b(" + "|".join(lx.ABBREVIATIONS) + r")\.", re.IGNORECASE)
_INITIALS = re.compile(r"\b((?:[A-Z]\.){2,})")
_INITIAL = re.compile(r"(?<![\w.])([A-Z])\.(?=\s+[A-Z](?:\.|[a-z]))")


def _abbreviations(text: str) -> str:
    def dotted(m: re.Match[str]) -> str:
        words = lx.DOTTED[m.group().lower()]
        return words + ("." if _ends_sentence(m.string, m.end()) and m.group().lower() != "e.g." else "")

    text = _DOTTED.sub(dotted, text)

    def dr_st(m: re.Match[str]) -> str:
        before_name = re.match(r"\s+[A-Z]", m.string[m.end():]) is not None
        if m[1] == "Dr":
            return "Doctor" if before_name else "Drive" + ("." if _ends_sentence(m.string, m.end()) else "")
        return "Saint" if before_name else "Street" + ("." if _ends_sentence(m.string, m.end()) else "")

    text = _DR_ST.sub(dr_st, text)
    text = _TITLE.sub(lambda m: lx.TITLES[(m[1] or m[2]).lower()], text)

    def abbr(m: re.Match[str]) -> str:
        key = m[1].lower()
        if key in _NUMERIC_ABBR and not re.match(r"\s*#?\d", m.string[m.end():]):
            return m.group()
        if m[1][0].islower() and key in {"co", "ave", "blvd", "rd", "ln", "mt", "ft", "est", "inc"}:
            return m.group()
        return lx.ABBREVIATIONS[key] + ("." if _ends_sentence(m.string, m.end()) and key not in _NEVER_END
                                        else "")

    text = _ABBR.sub(abbr, text)
    text = _INITIALS.sub(lambda m: spell(m[1]) + ("." if m.end() == len(m.string.rstrip()) else ""), text)
    return _INITIAL.sub(lambda m: spell(m[1]), text)


def _symbols(text: str) -> str:
    text = re.sub(r"\s+-+\s+|--+", ", ", text)  # dash between phrases: a pause
    text = re.sub(r"^\s*[-*•]\s+", "", text)
    text = re.sub(r"\.{3,}\s*$", ".", text)
    text = re.sub(r"\.{2,}", ",", text)  # ellipsis: a pause
    text = re.sub(r"[()\[\]{}]", ", ", text)
    text = text.replace('"', " ")
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)  # quotes, not apostrophes
    return "".join(lx.SYMBOLS.get(c, c) for c in text)


# -- final check --------------------------------------------------------------------------------------
_KEEP_PUNCT = set(",.!?;:'-")


def _finish(text: str) -> str:
    out = []
    bad = []
    for c in text:
        cat = unicodedata.category(c)
        if c.isspace():
            out.append(" ")
        elif c in _KEEP_PUNCT or (cat[0] == "L" and _is_latin(c)):
            out.append(c)
        elif cat[0] == "L" or cat == "Nd":
            bad.append(c)
        elif cat[0] in "PS" and cat not in ("So", "Sk"):
            out.append(" ")  # other punctuation: a word break
        # emoji, marks, controls and other symbols are dropped
    if bad:
        shown = "".join(dict.fromkeys(bad))[:20]
        raise TextError(f"text has characters an English voice cannot speak: {shown!r}")
    text = "".join(out)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    text = re.sub(r"([,;:])[,;:\s]*([.!?])", r"\2", text)  # ", ." -> "."
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"([.!?])[.!?]+", r"\1", text)
    text = re.sub(r"^[\s,.;:!?-]+", "", text)
    text = re.sub(r"([,.!?;:])(?=\w)", r"\1 ", text)
    return text.strip()


def _is_latin(c: str) -> bool:
    return c.isascii() or "LATIN" in unicodedata.name(c, "")


_PASSES: tuple[Callable[[str], str], ...] = (_urls, lambda t: _MONEY.sub(_money, t), _dates, _times,
                                             _abbreviations, lambda t: _ROMAN.sub(_roman, t), _numbers, _symbols)


def normalize_text(text: str) -> str:
    """Spoken form of English `text`: numbers, dates, money, units, URLs and abbreviations in words.

    Returns "" for text with nothing to say (the caller decides whether that is an error);
    raises TextError for letters outside the Latin script.
    """
    text = _clean_unicode(text)
    for step in _PASSES:
        text = step(text)
    return _finish(text)
