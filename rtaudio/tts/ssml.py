"""Input text -> blocks of normalized text separated by pauses; a small SSML subset.

Plain text is one block. SSML (text starting with `<speak`) supports:
- `<break time="300ms"/>` / `time="1.5s"` / `strength="none|x-weak|weak|medium|strong|x-strong"`,
- `<say-as interpret-as="characters|spell-out|digits|telephone|cardinal|ordinal">`,
- `<sub alias="...">`, `<p>` and `<s>` (sentence ends; a paragraph adds a medium break).
Other elements (`prosody`, `emphasis`, `voice`, `mark`, ...) are read as their text.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from rtaudio.errors import TextError
from rtaudio.tts.normalize import normalize_text
from rtaudio.tts.number_forms import spell
from rtaudio.tts.numbers import cardinal, ordinal

BREAK_STRENGTH_MS = {"none": 0.0, "x-weak": 100.0, "weak": 200.0, "medium": 400.0, "strong": 700.0,
                     "x-strong": 1000.0}
MAX_BREAK_MS = 10_000.0
MAX_SSML_CHARS = 200_000


@dataclass(frozen=True)
class Block:
    """Normalized text followed by an explicit pause (None: only the usual sentence pause)."""

    text: str
    break_after_ms: float | None = None


def is_ssml(text: str) -> bool:
    return text.lstrip().startswith("<speak")


def to_blocks(text: str) -> list[Block]:
    """Plain text or SSML -> blocks; raises TextError for malformed SSML or unspeakable characters."""
    if not is_ssml(text):
        return [Block(normalize_text(text))]
    return _SsmlReader().read(text)


def _break_ms(el: ET.Element) -> float:
    time = el.get("time")
    if time:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", time)
        if not m:
            raise TextError(f"SSML break time {time!r} is not like '300ms' or '1.5s'")
        ms = float(m[1]) * (1000.0 if m[2] == "s" else 1.0)
        return min(ms, MAX_BREAK_MS)
    strength = el.get("strength", "medium")
    if strength not in BREAK_STRENGTH_MS:
        raise TextError(f"SSML break strength {strength!r} is not one of {sorted(BREAK_STRENGTH_MS)}")
    return BREAK_STRENGTH_MS[strength]


def _say_as(kind: str, text: str) -> str:
    kind = kind.lower()
    text = text.strip()
    if kind in ("characters", "spell-out", "letters", "verbatim"):
        return spell(text)
    if kind in ("digits", "telephone"):
        return ", ".join(spell(group) for group in re.split(r"[\s().-]+", text) if group)
    numbers = re.sub(r"[^\d-]", "", text)
    if kind in ("cardinal", "number") and re.fullmatch(r"-?\d+", numbers):
        return cardinal(int(numbers))
    if kind == "ordinal" and re.fullmatch(r"\d+", numbers):
        return ordinal(int(numbers))
    return text


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


class _SsmlReader:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.parts: list[str] = []

    def read(self, ssml: str) -> list[Block]:
        if len(ssml) > MAX_SSML_CHARS:
            raise TextError(f"SSML longer than {MAX_SSML_CHARS} characters")
        try:
            root = ET.fromstring(ssml)
        except ET.ParseError as e:
            raise TextError(f"invalid SSML: {e}") from e
        if _local(root.tag) != "speak":
            raise TextError("SSML must have <speak> as its root element")
        self._walk(root)
        self._close(None)
        return self.blocks

    def _close(self, break_ms: float | None) -> None:
        text = normalize_text(" ".join(self.parts))
        self.parts = []
        if text:
            self.blocks.append(Block(text, break_ms))
        elif break_ms is not None and self.blocks:
            last = self.blocks[-1]
            self.blocks[-1] = Block(last.text, (last.break_after_ms or 0.0) + break_ms)

    def _end_sentence(self) -> None:
        joined = " ".join(self.parts).rstrip()
        if joined and joined[-1] not in ".!?":
            self.parts.append(".")

    def _walk(self, el: ET.Element) -> None:
        tag = _local(el.tag)
        if tag == "break":
            self._close(_break_ms(el))
        elif tag == "say-as":
            self.parts.append(_say_as(el.get("interpret-as", ""), "".join(el.itertext())))
        elif tag == "sub":
            self.parts.append(el.get("alias", "".join(el.itertext())))
        else:
            if el.text:
                self.parts.append(el.text)
            for child in el:
                self._walk(child)
                if child.tail:
                    self.parts.append(child.tail)
            if tag == "s":
                self._end_sentence()
            elif tag == "p":
                self._end_sentence()
                self._close(BREAK_STRENGTH_MS["medium"])
