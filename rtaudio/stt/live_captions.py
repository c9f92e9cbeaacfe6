"""Caption cues from live final captions, under live-captioning rules.

Final captions arrive one segment at a time; their words (stream seconds) are packed into cues of at
most `max_lines` lines of `max_line_chars`, timed to the speech: a cue starts with its first word (or
when the previous cue leaves the screen), stays at least `min_cue_ms` and long enough to read at
`max_chars_per_s`, but never starts more than `max_delay_ms` after the speech it shows, and the
reading-time extension is cut short when it would push the next cue further behind.
A cue's end is only known once the next cue begins, so `push` returns cues one behind; `flush` ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rtaudio.errors import ConfigError
from rtaudio.frames import Caption, Word
from rtaudio.stt.subtitles import Cue, wrap_lines

SENTENCE_END = (".", "?", "!")


@dataclass(frozen=True)
class LiveCaptionConfig:
    """Live-captioning norms for written cues."""

    max_line_chars: int = 42
    max_lines: int = 2
    min_cue_ms: int = 833
    """Shortest time on screen (5/6 s)."""
    max_chars_per_s: float = 17.0
    """Reading speed: a cue stays at least len(text) / max_chars_per_s seconds when the timing allows."""
    max_delay_ms: int = 1500
    """A cue never starts more than this after the start of the first word it shows."""
    pause_split_ms: int = 600
    """A silence this long between words starts a new cue."""
    max_cue_ms: int = 7000
    """A cue whose speech would last longer is ended before the word that would make it so."""

    def __post_init__(self) -> None:
        if self.max_line_chars < 10 or self.max_lines < 1:
            raise ConfigError("max_line_chars must be >= 10 and max_lines >= 1")
        if (self.min_cue_ms <= 0 or self.max_chars_per_s <= 0 or self.max_delay_ms < 0 or self.pause_split_ms <= 0
                or self.max_cue_ms < self.min_cue_ms):
            raise ConfigError("cue durations, delay and reading speed must be positive")


def _lines(words: Sequence[str], config: LiveCaptionConfig) -> list[str] | None:
    """The cue's lines (balanced, broken after punctuation), or None if the words need more lines."""
    if len(words) == 1:
        return list(words)  # one over-long word still gets a cue
    return wrap_lines(words, config.max_line_chars, config.max_lines)


@dataclass
class _Pending:
    words: list[Word]
    start_s: float

    @property
    def text_words(self) -> list[str]:
        return [w.text.strip() for w in self.words if w.text.strip()]


class LiveCueBuilder:
    """Final captions in, finished `Cue`s out (sans-I/O). Partial captions are ignored."""

    def __init__(self, config: LiveCaptionConfig | None = None) -> None:
        self.config = config or LiveCaptionConfig()
        self._open: list[Word] = []  # words of the cue being filled
        self._pending: _Pending | None = None  # a full cue waiting for its end time
        self._last_end_s = 0.0
        self.reading_speed_cuts = 0
        """Cues whose reading-time extension was cut to keep the next cue within `max_delay_ms`."""
        self.late_cues = 0
        """Cues that still start more than `max_delay_ms` after their speech (the previous cue's
        minimum time on screen did not leave room)."""

    def _fits(self, words: list[Word]) -> bool:
        return _lines([w.text.strip() for w in words if w.text.strip()], self.config) is not None

    def push(self, caption: Caption) -> list[Cue]:
        """Take a FINAL caption's words; returns the cues whose timing is now settled."""
        if not caption.is_final:
            return []
        words = list(caption.words) or ([Word(caption.text, caption.start_s, caption.end_s)] if caption.text.strip()
                                        else [])
        # decide on the millisecond times that caption events publish: cues rebuilt from those events then
        # split exactly as these (a word ending 7.000 s after the cue's start is on the 7 s limit either way)
        words = [Word(w.text, round(w.start_s, 3), round(w.end_s, 3), w.probability) for w in words]
        out: list[Cue] = []
        for w in words:
            if not w.text.strip():
                continue
            if self._open and self._break_before(w):
                out += self._close_open()
            self._open.append(w)
        return out

    def _break_before(self, w: Word) -> bool:
        prev = self._open[-1]
        if w.start_s - prev.end_s >= self.config.pause_split_ms / 1000:
            return True
        if w.end_s - self._open[0].start_s > self.config.max_cue_ms / 1000:
            return True
        if not self._fits([*self._open, w]):
            return True
        # end a cue at a sentence end once it holds more than one line's worth
        chars = sum(len(x.text.strip()) + 1 for x in self._open)
        return prev.text.strip().endswith(SENTENCE_END) and chars > self.config.max_line_chars

    def _close_open(self) -> list[Cue]:
        """The open words become the pending cue; the previous pending cue gets its end and is returned."""
        words, self._open = self._open, []
        first_s = words[0].start_s
        out: list[Cue] = []
        prev_end = self._last_end_s
        if self._pending is not None:
            cue, prev_end = self._settle(self._pending, next_first_s=first_s)
            out.append(cue)
        start = max(first_s, prev_end)
        if start - first_s > self.config.max_delay_ms / 1000 + 1e-9:
            self.late_cues += 1
        self._pending = _Pending(words, start)
        return out

    def _settle(self, p: _Pending, next_first_s: float | None) -> tuple[Cue, float]:
        cfg = self.config
        text = "\n".join(_lines(p.text_words, cfg) or [" ".join(p.text_words)])
        min_len = max(cfg.min_cue_ms / 1000, len(text.replace("\n", " ")) / cfg.max_chars_per_s)
        end = max(p.words[-1].end_s, p.start_s + min_len)
        if next_first_s is not None:
            latest = next_first_s + cfg.max_delay_ms / 1000  # the next cue must start by then
            if end > latest:
                end = max(latest, p.start_s + cfg.min_cue_ms / 1000, p.words[-1].end_s)
                self.reading_speed_cuts += 1
        self._last_end_s = end
        return Cue(start_s=round(p.start_s, 3), end_s=round(end, 3), text=text), end

    def flush(self) -> list[Cue]:
        """End of stream: settle everything."""
        out = self._close_open() if self._open else []
        if self._pending is not None:
            out.append(self._settle(self._pending, next_first_s=None)[0])
            self._pending = None
        return out


def cues_from_captions(captions: Sequence[Caption], config: LiveCaptionConfig | None = None) -> list[Cue]:
    """All cues of a finished stream's final captions."""
    builder = LiveCueBuilder(config)
    cues: list[Cue] = []
    for c in captions:
        cues += builder.push(c)
    return cues + builder.flush()
