"""Sentence splitting for text that arrives in pieces (LLM tokens), so speech can start early.

`SentenceSplitter.push(fragment)` returns the sentences completed so far; `flush()` returns the
rest at the end of the stream. A period ends a sentence only when whitespace follows and then
something that can start a sentence (capital, digit, quote) - so "Dr. Smith", "e.g. this" and
"3.5" never split - which means a sentence is released when the next word begins (or at flush).
Newlines always end a piece. To start speaking sooner, the first piece of a stream may be its first
clause (cut after , ; : once `eager_clause_chars` have arrived); later pieces wait for whole
sentences, which sound better. Runaway sentences are cut at a clause mark, else at a space.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rtaudio.errors import ConfigError
from rtaudio.tts import lexicon as lx

# Abbreviations that (almost) never end a sentence; "no." and "p." only before a number.
_NOT_SENTENCE_END = {*lx.TITLES, "dr", "st", "vs", "mt", "ft", "approx", "dept", "univ", "assn", "fig", "vol", "ch",
                     "pp", "nos"}
_BEFORE_NUMBER = {"no", "p"}
_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)")
_CLAUSE = re.compile(r"[,;:](?=\s)")
_NEWLINE = re.compile(r"\n")


@dataclass(frozen=True)
class SplitterConfig:
    eager_clause_chars: int = 24
    """Release the first clause of a stream once this many characters arrived (0 = never)."""
    max_sentence_chars: int = 300
    """Cut a sentence without an end mark beyond this many characters."""

    def __post_init__(self) -> None:
        if self.eager_clause_chars < 0:
            raise ConfigError("eager_clause_chars must be >= 0")
        if self.max_sentence_chars < 20:
            raise ConfigError("max_sentence_chars must be >= 20")


class SentenceSplitter:
    """Sans-I/O: text fragments in, speakable pieces out, in order and without losing characters."""

    def __init__(self, config: SplitterConfig | None = None) -> None:
        self.config = config or SplitterConfig()
        self._buf = ""
        self._released = 0  # pieces returned so far

    def push(self, fragment: str) -> list[str]:
        self._buf += fragment
        out: list[str] = []
        while (cut := self._next_cut()) is not None:
            piece, self._buf = self._buf[:cut].strip(), self._buf[cut:]
            if piece:
                out.append(piece)
                self._released += 1
        return out

    def flush(self) -> list[str]:
        piece, self._buf = self._buf.strip(), ""
        self._released = 0
        return [piece] if piece else []

    def reset(self) -> None:
        self._buf = ""
        self._released = 0

    def _next_cut(self) -> int | None:
        """Where the next piece ends, judged only on the first `max_sentence_chars` (so fragmenting the
        same text differently gives the same pieces, eager first clause aside)."""
        limit = self.config.max_sentence_chars
        buf = self._buf
        head = buf[:limit + 1]
        nl = _NEWLINE.search(head)
        for m in _END.finditer(head):
            if nl and nl.start() < m.start():
                break
            if m.end() <= limit and self._is_sentence_end(buf, m):
                return m.end()
        if nl:
            return nl.end()
        if self._released == 0 and self.config.eager_clause_chars:
            for m in _CLAUSE.finditer(head):
                if m.end() >= self.config.eager_clause_chars:
                    return m.end()
        if len(buf) > limit:
            clause = max((m.end() for m in _CLAUSE.finditer(buf[:limit])), default=0)
            space = buf[:limit].rfind(" ")
            return clause or (space if space > 0 else limit)
        return None

    @staticmethod
    def _is_sentence_end(buf: str, m: re.Match[str]) -> bool:
        rest = buf[m.end():].lstrip()
        if not rest:
            return False  # wait for the next word: it decides "Dr. Smith" vs "... the end. Then"
        if not (rest[0].isupper() or rest[0].isdigit() or rest[0] in "\"'([-"):
            return False
        if buf[m.start()] != ".":
            return True
        word = re.search(r"([A-Za-z][A-Za-z.]*)$", buf[:m.start()])
        if word is None:
            return True
        token = word.group(1).lower()
        if token in _NOT_SENTENCE_END or token + "." in lx.DOTTED:
            return False
        if token in _BEFORE_NUMBER and rest[0].isdigit():
            return False
        return not (len(token) == 1 and word.group(1).isupper())  # an initial: "J. Smith"
