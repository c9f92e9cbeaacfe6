"""Typed frames passed between stages, with sample-accurate stream time.

Times inside the engine are sample indices at the stream's rate, never strings or floats of
seconds; `*_s` properties convert for display and the wire.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AudioBlock:
    """A block of mono float32 samples in [-1, 1] starting at `start_sample` of its stream."""

    samples: np.ndarray
    sample_rate: int
    start_sample: int = 0

    def __post_init__(self) -> None:
        if self.samples.dtype != np.float32 or self.samples.ndim != 1:
            raise ValueError("AudioBlock.samples must be 1-D float32")
        if self.sample_rate <= 0:
            raise ValueError("sample_rate must be positive")

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.samples)

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


class Stability(enum.Enum):
    """How settled a caption is: PARTIAL may change, STABLE is a committed prefix, FINAL never changes."""

    PARTIAL = "partial"
    STABLE = "stable"
    FINAL = "final"


@dataclass(frozen=True)
class Word:
    """A recognized word with times in seconds of stream time and a confidence in [0, 1]."""

    text: str
    start_s: float
    end_s: float
    probability: float = 1.0


@dataclass(frozen=True)
class Caption:
    """A caption for one segment of a stream; times are in samples at `sample_rate`."""

    text: str
    start_sample: int
    end_sample: int
    stability: Stability
    segment_id: int = 0
    sample_rate: int = 16000
    words: tuple[Word, ...] = field(default_factory=tuple)

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.end_sample / self.sample_rate

    @property
    def is_final(self) -> bool:
        return self.stability is Stability.FINAL
