"""Subtitle cues that follow broadcast norms, and SRT / WebVTT writers.

Norms (EBU / BBC / Netflix style guides): at most 42 characters per line and 2 lines per cue;
reading speed capped (~17 characters per second): a cue stays on screen longer when the next one
leaves room; cues last 1-7 s, break at pauses and sentence ends, and lines break at the most
balanced point, preferring after punctuation.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rtaudio.errors import ConfigError
from rtaudio.frames import Word
from rtaudio.stt.results import Segment


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str
    """One or two lines separated by "\\n"."""


@dataclass(frozen=True)
class SubtitleConfig:
    max_chars_per_line: int = 42
    max_lines: int = 2
    max_chars_per_s: float = 17.0
    """Reading speed; a faster cue is extended into the gap before the next one if possible."""
    min_duration_s: float = 1.0
    max_duration_s: float = 7.0
    pause_split_s: float = 0.5
    """A silence at least this long between words ends the cue."""
    min_gap_s: float = 0.08
    """Blank time kept between consecutive cues (two frames at 25 fps)."""

    def __post_init__(self) -> None:
        if self.max_chars_per_line < 10 or self.max_lines < 1:
            raise ConfigError("max_chars_per_line must be >= 10 and max_lines >= 1")
        if self.max_chars_per_s <= 0 or self.min_duration_s < 0 or self.max_duration_s <= self.min_duration_s:
            raise ConfigError("need max_chars_per_s > 0 and 0 <= min_duration_s < max_duration_s")
        if self.pause_split_s <= 0 or self.min_gap_s < 0:
            raise ConfigError("pause_split_s must be > 0 and min_gap_s >= 0")


MIN_CUE_S = 0.1  # a cue shorter than this cannot be read at all
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*$")
_CLAUSE_END = re.compile(r"[,;:—–][\"'”’)\]]*$")


def words_of(segments: Sequence[Segment]) -> list[Word]:
    """Segment words; segments without word times get times spread by character count."""
    out: list[Word] = []
    for seg in segments:
        if seg.words:
            out += [Word(w.text.strip(), w.start_s, w.end_s, w.probability) for w in seg.words if w.text.strip()]
            continue
        tokens = seg.text.split()
        total = sum(len(t) + 1 for t in tokens) or 1
        t = seg.start_s
        for tok in tokens:
            d = (seg.end_s - seg.start_s) * (len(tok) + 1) / total
            out.append(Word(tok, t, t + d))
            t += d
    return out


def wrap_lines(words: Sequence[str], max_chars: int, max_lines: int = 2) -> list[str] | None:
    """Best split of words into <= max_lines lines of <= max_chars; None if they do not fit."""
    one = " ".join(words)
    if len(one) <= max_chars:
        return [one]
    if max_lines < 2:
        return None
    best: tuple[float, list[str]] | None = None
    for i in range(1, len(words)):
        first, rest = " ".join(words[:i]), words[i:]
        if len(first) > max_chars:
            break
        tail = wrap_lines(rest, max_chars, max_lines - 1)
        if tail is None:
            continue
        cost = float(max(len(first), *map(len, tail)) - min(len(first), *map(len, tail)))
        if _SENTENCE_END.search(first) or _CLAUSE_END.search(first):
            cost -= max_chars / 3  # break after punctuation when it is not much less balanced
        if best is None or cost < best[0]:
            best = (cost, [first, *tail])
    return best[1] if best else None


def build_cues(segments: Sequence[Segment], config: SubtitleConfig | None = None) -> list[Cue]:
    """Cues for a transcript's segments (absolute times); words are never split across cues."""
    config = config or SubtitleConfig()
    words = words_of(segments)
    groups: list[list[Word]] = []
    current: list[Word] = []
    for w in words:
        if current:
            texts = [x.text for x in current] + [w.text]
            fits = wrap_lines(texts, config.max_chars_per_line, config.max_lines) is not None
            too_long = w.end_s - current[0].start_s > config.max_duration_s
            pause = w.start_s - current[-1].end_s >= config.pause_split_s
            sentence_break = (_SENTENCE_END.search(current[-1].text) is not None
                              and current[-1].end_s - current[0].start_s >= config.min_duration_s)
            if not fits or too_long or pause or sentence_break:
                groups.append(current)
                current = []
        current.append(w)
    if current:
        groups.append(current)
    return _time_cues(groups, config)


def _time_cues(groups: list[list[Word]], config: SubtitleConfig) -> list[Cue]:
    cues = []
    for k, group in enumerate(groups):
        lines = wrap_lines([w.text for w in group], config.max_chars_per_line, config.max_lines)
        text = "\n".join(lines) if lines else " ".join(w.text for w in group)  # a single overlong word
        start, end = group[0].start_s, group[-1].end_s
        limit = groups[k + 1][0].start_s - config.min_gap_s if k + 1 < len(groups) else float("inf")
        wanted = max(end, start + config.min_duration_s, start + len(text.replace("\n", " ")) / config.max_chars_per_s)
        end = max(end, min(wanted, limit, start + config.max_duration_s))
        end = max(min(end, limit), start + MIN_CUE_S)  # keep the gap, even if the speech runs on
        cues.append(Cue(start, end, text))
    return cues


def _timestamp(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{separator}{ms:03d}"


VTT_HEADER = "WEBVTT\n\n"


def srt_block(index: int, cue: Cue) -> str:
    """One SubRip cue (numbered from 1); blocks are separated by a blank line."""
    return f"{index}\n{_timestamp(cue.start_s, ',')} --> {_timestamp(cue.end_s, ',')}\n{cue.text}\n"


def vtt_block(cue: Cue) -> str:
    """One WebVTT cue; blocks follow VTT_HEADER, separated by a blank line."""
    return f"{_timestamp(cue.start_s, '.')} --> {_timestamp(cue.end_s, '.')}\n{cue.text}\n"


def to_srt(cues: Sequence[Cue]) -> str:
    return "\n".join(srt_block(i, c) for i, c in enumerate(cues, 1))


def to_vtt(cues: Sequence[Cue]) -> str:
    return VTT_HEADER + "\n".join(vtt_block(c) for c in cues)
