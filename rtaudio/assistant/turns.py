"""Turn-taking: when has the user finished, and should their speech interrupt the assistant?

Both decisions read the partial transcript, not VAD alone: a trailing "and" or "um" means the user is
still thinking, and "yeah" or a cough while the assistant talks is a backchannel, not a barge-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rtaudio.errors import ConfigError

CONTINUATION_WORDS = frozenset(
    "and but or so because if then that which who when while although though since unless until "
    "the a an to of for with in on at my your their our um uh er erm like".split()
)
DANGLING_WORDS = frozenset(
    "and but or because if although though unless the a an of my your their our um uh er erm".split()
)
"""Words no sentence ends on: the user goes on even when the recognizer put a full stop after them
(Whisper often does at a pause); "so", "that", "with"... can end one ("I think so.")."""
BACKCHANNELS = frozenset(
    "yeah yes yep yup mhm mm mmm hmm uh-huh uhhuh right ok okay sure alright cool wow oh ah aha i see".split()
)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9'-]+", text.lower())


@dataclass(frozen=True)
class TurnConfig:
    complete_silence_ms: float = 300.0
    """Wait after a finished sentence (ends in . ? ! or a complete-sounding clause)."""
    default_silence_ms: float = 550.0
    """Wait when the text gives no cue."""
    continuation_silence_ms: float = 1200.0
    """Wait after a trailing conjunction, article or filler: the user is still thinking."""
    min_interrupt_words: int = 1
    """Non-backchannel words needed before the assistant yields the floor."""

    def __post_init__(self) -> None:
        if not 0 < self.complete_silence_ms <= self.default_silence_ms <= self.continuation_silence_ms:
            raise ConfigError("need 0 < complete_silence_ms <= default_silence_ms <= continuation_silence_ms")


class TurnDetector:
    """Pure: `silence_needed_ms(partial)` and `is_end_of_turn(partial, silence_ms)`."""

    def __init__(self, config: TurnConfig | None = None) -> None:
        self.config = config or TurnConfig()

    def silence_needed_ms(self, partial: str) -> float:
        text = partial.strip()
        if self.expects_more(text):
            return self.config.continuation_silence_ms
        if text.endswith((".", "?", "!")):
            return self.config.complete_silence_ms
        return self.config.default_silence_ms

    def expects_more(self, partial: str) -> bool:
        """The text ends on a conjunction, article or filler (or a comma, dash, ellipsis): the user goes on."""
        text = partial.strip()
        words = _words(text)
        if not words or text.endswith((",", "-", "...")):
            return True
        if text.endswith((".", "?", "!")):
            return words[-1] in DANGLING_WORDS
        return words[-1] in CONTINUATION_WORDS

    def is_end_of_turn(self, partial: str, silence_ms: float) -> bool:
        return bool(_words(partial)) and silence_ms >= self.silence_needed_ms(partial)


class BargeInPolicy:
    """Decides whether the user's speech while the assistant talks is an interruption."""

    def __init__(self, config: TurnConfig | None = None) -> None:
        self.config = config or TurnConfig()

    def is_interruption(self, partial: str) -> bool:
        words = [w for w in _words(partial) if w not in BACKCHANNELS]
        return len(words) >= self.config.min_interrupt_words
