"""Dubbing: speak each subtitle cue at its start time, squeezed (pitch kept) when it would overrun.

Each cue is synthesized, its leading/trailing silence trimmed, and placed at the cue start (or
just after the previous cue's speech if that ran late). Speech longer than the cue is shortened
with WSOLA up to `max_speedup`; whatever still does not fit runs over and is reported. A background
track, if given, is mixed under the speech and ducked while the voice talks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rtaudio.dsp.dynamics import DuckingConfig, DuckingMixer, soft_limit
from rtaudio.dsp.resample import resample
from rtaudio.dsp.wsola import wsola
from rtaudio.errors import ConfigError, TextError
from rtaudio.stt.subtitles import Cue
from rtaudio.tts.config import SynthesisConfig
from rtaudio.tts.voice import PiperVoice

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[,.](\d{3})"
_TIMING = re.compile(_TIME + r"\s*-->\s*" + _TIME)


def _seconds(h: str | None, m: str, s: str, ms: str) -> float:
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000.0


def read_subtitles(text: str) -> list[Cue]:
    """SRT or WebVTT text -> cues in file order; markup tags like <i> are removed."""
    cues: list[Cue] = []
    lines = text.replace("\r\n", "\n").replace("\ufeff", "").split("\n")
    i = 0
    while i < len(lines):
        m = _TIMING.search(lines[i])
        if not m:
            i += 1
            continue
        start, end = _seconds(*m.groups()[:4]), _seconds(*m.groups()[4:])
        if end < start:
            raise TextError(f"subtitle line {i + 1}: cue ends before it starts ({lines[i].strip()!r})")
        body = []
        i += 1
        while i < len(lines) and lines[i].strip():
            body.append(re.sub(r"<[^>]+>|\{[^}]+\}", "", lines[i]).strip())
            i += 1
        spoken = " ".join(b for b in body if b)
        if spoken:
            cues.append(Cue(start, end, spoken))
    if not cues:
        raise TextError("no subtitle cues found (expected SRT or WebVTT timings like 00:00:01,000 --> 00:00:02,500)")
    return cues


@dataclass(frozen=True)
class DubConfig:
    max_speedup: float = 1.6
    """Strongest WSOLA compression; beyond it intelligibility drops, so the cue overruns instead."""
    min_gap_ms: float = 80.0
    """Silence kept after a late cue's speech before the next cue may start."""
    trim_dbfs: float = -45.0
    """Synthesized silence below this level at the start and end of a cue is cut."""
    ducking: DuckingConfig = field(default_factory=DuckingConfig)

    def __post_init__(self) -> None:
        if not 1.0 <= self.max_speedup <= 3.0:
            raise ConfigError(f"max_speedup must be within 1..3, got {self.max_speedup}")
        if self.min_gap_ms < 0:
            raise ConfigError("min_gap_ms must be >= 0")


@dataclass(frozen=True)
class DubbedCue:
    """Where a cue's speech landed (seconds) and how much it was squeezed."""

    text: str
    cue_start_s: float
    cue_end_s: float
    start_s: float
    end_s: float
    speedup: float

    @property
    def overrun_s(self) -> float:
        return max(0.0, self.end_s - self.cue_end_s)


def trim_silence(x: np.ndarray, rate_hz: int, threshold_dbfs: float, margin_ms: float = 20.0) -> np.ndarray:
    """Cut leading and trailing audio whose 10 ms peak envelope stays below `threshold_dbfs`."""
    win = max(1, rate_hz // 100)
    n = len(x) // win
    if n == 0:
        return x
    env = np.abs(x[:n * win]).reshape(n, win).max(axis=1)
    loud = np.flatnonzero(env > 10 ** (threshold_dbfs / 20))
    if loud.size == 0:
        return x[:0]
    margin = int(rate_hz * margin_ms / 1000)
    return x[max(0, loud[0] * win - margin):min(len(x), (loud[-1] + 1) * win + margin)]


class Dubber:
    """Builds a speech track for a list of cues with one voice."""

    def __init__(self, voice: PiperVoice, config: DubConfig | None = None,
                 synthesis: SynthesisConfig | None = None) -> None:
        self.voice = voice
        self.config = config or DubConfig()
        self.synthesis = synthesis or SynthesisConfig()

    def render(self, cues: Sequence[Cue]) -> tuple[np.ndarray, list[DubbedCue]]:
        """Speech track (float32 at the voice's rate) and where each cue landed."""
        rate = self.voice.sample_rate
        gap = self.config.min_gap_ms / 1000.0
        placed: list[tuple[int, np.ndarray]] = []
        report: list[DubbedCue] = []
        free_at = 0.0
        for cue in cues:
            speech = trim_silence(self.voice.synthesize(cue.text, self.synthesis), rate, self.config.trim_dbfs)
            start = max(cue.start_s, free_at)
            slot = cue.end_s - start
            duration = len(speech) / rate
            speedup = 1.0
            if slot > 0 and duration > slot:
                speedup = min(self.config.max_speedup, duration / slot)
                speech = wsola(speech, speedup)
            end = start + len(speech) / rate
            placed.append((int(round(start * rate)), speech))
            report.append(DubbedCue(cue.text, cue.start_s, cue.end_s, start, end, speedup))
            free_at = end + gap
        total = max((s + len(x) for s, x in placed), default=0)
        track = np.zeros(total, dtype=np.float32)
        for s, x in placed:
            track[s:s + len(x)] += x
        return track, report


def mix_under(speech: np.ndarray, speech_rate_hz: int, background: np.ndarray, background_rate_hz: int,
              ducking: DuckingConfig) -> np.ndarray:
    """Speech over a ducked background at the background's rate, as long as the longer one, limited."""
    fg = resample(speech, speech_rate_hz, background_rate_hz) if speech_rate_hz != background_rate_hz else speech
    n = max(len(fg), len(background))
    fg = np.pad(fg, (0, n - len(fg)))
    bg = np.pad(np.asarray(background, dtype=np.float32), (0, n - len(background)))
    return soft_limit(DuckingMixer(background_rate_hz, ducking).push(bg, fg))
