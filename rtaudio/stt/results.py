"""What offline recognition returns: segments of a window, a window's result, a whole transcript."""

from __future__ import annotations

from dataclasses import dataclass, field

from rtaudio.frames import Word


@dataclass(frozen=True)
class Segment:
    """A stretch of speech between two timestamp tokens. Times are seconds: relative to the window
    start in a WindowResult, absolute (from the start of the audio) in a Transcript."""

    text: str
    start_s: float
    end_s: float
    words: list[Word] = field(default_factory=list)
    tokens: tuple[int, ...] = ()
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0

    def shifted(self, offset_s: float) -> Segment:
        """The same segment with all times moved by `offset_s`."""
        words = [Word(w.text, w.start_s + offset_s, w.end_s + offset_s, w.probability) for w in self.words]
        return Segment(self.text, self.start_s + offset_s, self.end_s + offset_s, words, self.tokens,
                       self.avg_logprob, self.no_speech_prob, self.compression_ratio, self.temperature)


@dataclass(frozen=True)
class WindowResult:
    """One window (<= 30 s) decoded. `segments` is empty when the window holds no speech."""

    segments: list[Segment]
    text: str
    no_speech_prob: float
    avg_logprob: float
    language: str | None = None
    temperature: float = 0.0
    consumed_s: float = 0.0
    """How much of the window the segments account for: where the next window should start
    (the end of the last complete segment; the whole window when the text ended cleanly)."""
    stage_s: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage of this window ("encoder" incl. log-mel, "decoder", "align")."""


@dataclass(frozen=True)
class Transcript:
    """A long recording transcribed; segment times are absolute seconds."""

    segments: list[Segment]
    language: str | None
    duration_s: float

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]
