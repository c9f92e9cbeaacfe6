"""Caption files that a streamer's tools read while the stream is still running.

- `RollingTextFile`: the current caption (last lines of finals plus the partial), for an OBS Text source
  with "read from file". Each update replaces the file atomically (temp file + `os.replace`), so OBS
  never reads a half-written caption.
- `GrowingCueFile`: the SRT / WebVTT of the whole stream, one cue appended (and flushed) as soon as
  its timing is settled, so the file is valid after every cue and ready for the VOD when the stream ends.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rtaudio.errors import ConfigError
from rtaudio.frames import Caption
from rtaudio.stt.subtitles import VTT_HEADER, Cue, srt_block, vtt_block

KEEP_WORDS = 200  # recent final words kept for wrapping: far more than any caption box shows


@dataclass(frozen=True)
class RollingCaptionConfig:
    """The caption box: how many lines of how many characters (the overlay's `lines` / `chars`)."""

    max_lines: int = 2
    max_line_chars: int = 42

    def __post_init__(self) -> None:
        if not 1 <= self.max_lines <= 6 or self.max_line_chars < 10:
            raise ConfigError("max_lines must be in [1, 6] and max_line_chars >= 10")


def wrap_greedy(words: Sequence[str], max_chars: int) -> list[str]:
    """Fill lines of at most `max_chars` word by word (a longer word gets a line of its own).

    Greedy rather than balanced: the text grows at its end, and earlier lines must not reflow as it does.
    """
    lines: list[str] = []
    line = ""
    for w in words:
        if line and len(line) + 1 + len(w) > max_chars:
            lines.append(line)
            line = ""
        line = f"{line} {w}" if line else w
    return [*lines, line] if line else lines


class RollingCaption:
    """The current caption as the overlay shows it: recent finals, then the partial, last lines only."""

    def __init__(self, config: RollingCaptionConfig | None = None) -> None:
        self.config = config or RollingCaptionConfig()
        self._finals: list[str] = []
        self._partial: list[str] = []

    def push(self, caption: Caption) -> bool:
        """Take a partial or final caption; True when the shown text changed."""
        before = self.text
        words = caption.text.split()
        if caption.is_final:
            self._finals = (self._finals + words)[-KEEP_WORDS:]
            self._partial = []
        else:
            self._partial = words
        return self.text != before

    @property
    def text(self) -> str:
        lines = wrap_greedy(self._finals + self._partial, self.config.max_line_chars)
        return "\n".join(lines[-self.config.max_lines:])


def replace_atomically(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, then rename it over `path` (readers see old or new)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
    os.replace(tmp, path)


class RollingTextFile:
    """`path` always holds the current caption (possibly empty), replaced atomically on each change."""

    def __init__(self, path: Path, config: RollingCaptionConfig | None = None) -> None:
        self.path = path
        self.caption = RollingCaption(config)
        replace_atomically(path, "")

    def push(self, caption: Caption) -> None:
        if self.caption.push(caption):
            replace_atomically(self.path, self.caption.text + "\n")


class CueFormat(enum.Enum):
    SRT = "srt"
    VTT = "vtt"


class GrowingCueFile:
    """An SRT or WebVTT file that grows by one flushed cue at a time; valid after every `append`."""

    def __init__(self, path: Path, fmt: CueFormat) -> None:
        self.path, self.format = path, fmt
        self.cues = 0
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - held open for the whole stream
        self._file.write(VTT_HEADER if fmt is CueFormat.VTT else "")
        self._file.flush()

    def append(self, cue: Cue) -> None:
        self.cues += 1
        block = srt_block(self.cues, cue) if self.format is CueFormat.SRT else vtt_block(cue)
        self._file.write(("\n" if self.cues > 1 else "") + block)
        self._file.flush()

    def close(self) -> None:
        self._file.close()
