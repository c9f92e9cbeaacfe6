"""English text normalization for speech: spell out what espeak-ng would misread.

`normalize_text("Dr. Lee paid $5.50 on 3/4/2021 at 10:30 a.m.")` ->
"Doctor Lee paid five dollars and fifty cents on March fourth, twenty twenty-one at ten thirty AM."

Passes run in a fixed order, most specific first (URLs before dots, dates and times before plain
numbers, units before symbols); the ones for digits live in `number_forms`. The output keeps
clause punctuation (, . ! ? ; :) because the Piper voice was trained with it and uses it for
pauses and intonation. Emoji and other symbols are dropped; letters of scripts an English voice
cannot read raise TextError.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from rtaudio.errors import TextError
from rtaudio.tts import lexicon as lx
from rtaudio.tts.number_forms import (
    ends_sentence,
    expand_dates,
    expand_money,
    expand_numbers,
    expand_roman_numerals,
    expand_times,
    spell,
)
from rtaudio.tts.numbers import digits

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
        return words + ("." if ends_sentence(m.string, m.end()) and m.group().lower() != "e.g." else "")

    text = _DOTTED.sub(dotted, text)

    def dr_st(m: re.Match[str]) -> str:
        before_name = re.match(r"\s+[A-Z]", m.string[m.end():]) is not None
        if m[1] == "Dr":
            return "Doctor" if before_name else "Drive" + ("." if ends_sentence(m.string, m.end()) else "")
        return "Saint" if before_name else "Street" + ("." if ends_sentence(m.string, m.end()) else "")

    text = _DR_ST.sub(dr_st, text)
    text = _TITLE.sub(lambda m: lx.TITLES[(m[1] or m[2]).lower()], text)

    def abbr(m: re.Match[str]) -> str:
        key = m[1].lower()
        if key in _NUMERIC_ABBR and not re.match(r"\s*#?\d", m.string[m.end():]):
            return m.group()
        if m[1][0].islower() and key in {"co", "ave", "blvd", "rd", "ln", "mt", "ft", "est", "inc"}:
            return m.group()
        return lx.ABBREVIATIONS[key] + ("." if ends_sentence(m.string, m.end()) and key not in _NEVER_END
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


_PASSES: tuple[Callable[[str], str], ...] = (_urls, expand_money, expand_dates, expand_times, _abbreviations,
                                             expand_roman_numerals, expand_numbers, _symbols)


def normalize_text(text: str) -> str:
    """Spoken form of English `text`: numbers, dates, money, units, URLs and abbreviations in words.

    Returns "" for text with nothing to say (the caller decides whether that is an error);
    raises TextError for letters outside the Latin script.
    """
    text = _clean_unicode(text)
    for step in _PASSES:
        text = step(text)
    return _finish(text)
