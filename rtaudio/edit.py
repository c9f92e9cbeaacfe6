"""Offline audio editing that streams: concat, cut, trim silence, gain, ducked mix, loudness
normalisation, resampling and format conversion, at constant memory for any file length.

Every pass re-decodes the inputs block by block, so nothing grows with the length: pass 1 finds
where the sound starts and ends (only with `trim_silence`), pass 2 measures integrated loudness
(only with `normalize_lufs`), and the last pass renders and writes. The stages are small
generators over float32 blocks at the output rate:

    concat(inputs) -> cut -> trim -> gain -> mix background (ducked) -> normalise + limit -> write
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtaudio.dsp.dynamics import DuckingConfig, DuckingMixer, db_to_gain, soft_limit
from rtaudio.dsp.fades import FadeCurve
from rtaudio.dsp.loudness import LoudnessMeter
from rtaudio.errors import ConfigError, EmptyAudioError
from rtaudio.io.files import AudioReader, AudioWriter
from rtaudio.progress import Progress

BLOCK_SAMPLES = 32768
LIMIT_THRESHOLD = 0.95  # soft limiter knee after gain/normalisation, so boosts cannot clip


@dataclass(frozen=True)
class EditPlan:
    """What to do; all times in seconds of the concatenated input timeline."""

    inputs: tuple[Path, ...]
    output: Path
    rate_hz: int | None = None
    """Output rate; None keeps the first input's rate."""
    cuts_s: tuple[tuple[float, float], ...] = ()
    """(start, end) ranges removed, before trimming."""
    crossfade_ms: float = 0.0
    """Overlap between consecutive inputs (equal-power)."""
    trim_silence: bool = False
    silence_threshold_dbfs: float = -50.0
    """10 ms frames quieter than this (RMS) count as silence when trimming."""
    keep_silence_ms: float = 100.0
    """Silence left before the first and after the last sound."""
    gain_db: float = 0.0
    background: Path | None = None
    """A track mixed under the edited audio (cut to its length), ducked while it is active."""
    background_gain_db: float = 0.0
    ducking: DuckingConfig = field(default_factory=DuckingConfig)
    normalize_lufs: float | None = None
    """Target integrated loudness (EBU R128); peaks are soft-limited afterwards."""
    subtype: str | None = None
    """libsndfile subtype for the output (e.g. PCM_24, FLOAT); None: the format's default."""

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ConfigError("edit needs at least one input file")
        for start, end in self.cuts_s:
            if not 0 <= start < end:
                raise ConfigError(f"cut range must satisfy 0 <= start < end, got {start}-{end}")
        if self.crossfade_ms < 0 or self.keep_silence_ms < 0:
            raise ConfigError("crossfade_ms and keep_silence_ms must be >= 0")
        if self.normalize_lufs is not None and not -70.0 < self.normalize_lufs < 0.0:
            raise ConfigError(f"normalize_lufs must be in (-70, 0) LUFS, got {self.normalize_lufs}")


@dataclass(frozen=True)
class EditReport:
    output: Path
    rate_hz: int
    duration_s: float
    input_lufs: float | None
    """Loudness before normalisation (when normalising)."""
    applied_gain_db: float


def parse_time_s(text: str) -> float:
    """'75', '75.5', '1:15.5' or '0:01:15.5' -> seconds."""
    try:
        parts = [float(p) for p in text.strip().split(":")]
    except ValueError as e:
        raise ConfigError(f"bad time {text!r}: use seconds (75.5) or [h:]m:s (1:15.5)") from e
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts):
        raise ConfigError(f"bad time {text!r}: use seconds (75.5) or [h:]m:s (1:15.5)")
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def parse_range_s(text: str) -> tuple[float, float]:
    """'START-END' with times as in `parse_time_s`."""
    start, sep, end = text.partition("-")
    if not sep:
        raise ConfigError(f"bad range {text!r}: use START-END, e.g. 1:00-1:30.5")
    return parse_time_s(start), parse_time_s(end)


# --- stages --------------------------------------------------------------------------------------------
def _concat(plan: EditPlan, rate_hz: int, progress: Progress | None) -> Iterator[np.ndarray]:
    """All inputs at rate_hz, one after another, with an equal-power overlap between them."""
    overlap = int(round(plan.crossfade_ms * rate_hz / 1000))
    tail = np.zeros(0, np.float32)  # the held-back end of the previous input, for the crossfade
    for path in plan.inputs:
        first = True
        with AudioReader(path, block_samples=BLOCK_SAMPLES, target_rate_hz=rate_hz) as reader:
            for block in reader.blocks():
                x = block.samples
                if progress is not None:
                    progress.update(x.size / rate_hz)
                if first and tail.size:
                    n = min(tail.size, x.size)
                    mixed = tail[-n:] * FadeCurve.EQUAL_POWER.falling(n) + x[:n] * FadeCurve.EQUAL_POWER.ramp(n)
                    yield tail[:-n] if n < tail.size else np.zeros(0, np.float32)
                    x = np.concatenate([mixed, x[n:]])
                    tail = np.zeros(0, np.float32)
                first = False
                joined = np.concatenate([tail, x]) if tail.size else x
                cut = max(0, joined.size - overlap)
                if cut:
                    yield joined[:cut]
                tail = joined[cut:]
    if tail.size:
        yield tail


def _keep_ranges(blocks: Iterator[np.ndarray], ranges: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    """Only samples whose stream position lies in one of the sorted, disjoint [start, end) ranges."""
    pos = 0
    for x in blocks:
        end = pos + x.size
        for a, b in ranges:
            lo, hi = max(a, pos), min(b, end)
            if lo < hi:
                yield x[lo - pos: hi - pos]
        pos = end


def _complement(cuts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    keep, pos = [], 0
    for a, b in sorted(cuts):
        if a > pos:
            keep.append((pos, a))
        pos = max(pos, b)
    keep.append((pos, 2**62))
    return keep


class _Feed:
    """Exactly n samples at a time from a block iterator, zero-padded once it runs out."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self._blocks = blocks
        self._buf = np.zeros(0, np.float32)

    def take(self, n: int) -> np.ndarray:
        parts, have = [self._buf], self._buf.size
        while have < n:
            nxt = next(self._blocks, None)
            if nxt is None:
                parts.append(np.zeros(n - have, np.float32))
                break
            parts.append(nxt)
            have += nxt.size
        joined = np.concatenate(parts)
        self._buf = joined[n:]
        return joined[:n]


def _background(plan: EditPlan, rate_hz: int) -> Iterator[np.ndarray]:
    assert plan.background is not None
    with AudioReader(plan.background, block_samples=BLOCK_SAMPLES, target_rate_hz=rate_hz) as reader:
        for block in reader.blocks():
            yield block.samples


def _edited(plan: EditPlan, rate_hz: int, trim: tuple[int, int] | None,
            progress: Progress | None) -> Iterator[np.ndarray]:
    """The stream up to (not including) normalisation."""
    cuts = [(int(round(a * rate_hz)), int(round(b * rate_hz))) for a, b in plan.cuts_s]
    stream = _keep_ranges(_concat(plan, rate_hz, progress), _complement(cuts))
    if trim is not None:
        stream = _keep_ranges(stream, [trim])
    gain = db_to_gain(plan.gain_db)
    mixer = DuckingMixer(rate_hz, plan.ducking) if plan.background is not None else None
    feed = _Feed(_background(plan, rate_hz)) if plan.background is not None else None
    bg_gain = db_to_gain(plan.background_gain_db)
    for x in stream:
        if x.size == 0:
            continue
        y = x * np.float32(gain) if gain != 1.0 else x
        if mixer is not None and feed is not None:
            y = mixer.push(feed.take(y.size) * np.float32(bg_gain), y)
        yield y


def find_sound_bounds(blocks: Iterator[np.ndarray], rate_hz: int, threshold_dbfs: float,
                      keep_ms: float) -> tuple[int, int] | None:
    """[start, end) sample range from the first to the last 10 ms frame louder than the threshold,
    widened by keep_ms; None if everything is silent. Streams: memory does not grow."""
    frame = max(1, rate_hz // 100)
    thr_ms = 10 ** (threshold_dbfs / 10)
    first = last = None
    pos = 0
    carry = np.zeros(0, np.float32)
    for x in blocks:
        buf = np.concatenate([carry, x]) if carry.size else x
        n_frames = buf.size // frame
        if n_frames:
            ms = np.mean(np.square(buf[: n_frames * frame].reshape(n_frames, frame), dtype=np.float64), axis=1)
            loud = np.flatnonzero(ms > thr_ms)
            if loud.size:
                if first is None:
                    first = pos + int(loud[0]) * frame
                last = pos + (int(loud[-1]) + 1) * frame
        pos += n_frames * frame
        carry = buf[n_frames * frame:]
    if carry.size and np.mean(np.square(carry, dtype=np.float64)) > thr_ms:
        first = pos if first is None else first
        last = pos + carry.size
    total = pos + carry.size
    if first is None or last is None:
        return None
    keep = int(round(keep_ms * rate_hz / 1000))
    return max(0, first - keep), min(total, last + keep)


def run_edit(plan: EditPlan, show_progress: bool = False) -> EditReport:
    """Render `plan` to plan.output; returns what was written."""
    with AudioReader(plan.inputs[0]) as first:
        rate = plan.rate_hz or first.rate_hz
    passes = 1 + int(plan.trim_silence) + int(plan.normalize_lufs is not None)
    total_s = 0.0
    for path in plan.inputs:
        with AudioReader(path) as r:
            total_s += r.duration_s or 0.0
    with Progress("rtaudio edit", total=max(total_s, 1e-3) * passes, unit="s", enabled=show_progress) as progress:
        trim = None
        if plan.trim_silence:
            cuts = [(int(round(a * rate)), int(round(b * rate))) for a, b in plan.cuts_s]
            bounds = find_sound_bounds(_keep_ranges(_concat(plan, rate, progress), _complement(cuts)), rate,
                                       plan.silence_threshold_dbfs, plan.keep_silence_ms)
            if bounds is None:
                raise EmptyAudioError(f"everything is quieter than {plan.silence_threshold_dbfs} dBFS: nothing left")
            trim = bounds
        input_lufs, gain_db = None, 0.0
        if plan.normalize_lufs is not None:
            meter = LoudnessMeter(rate)
            for x in _edited(plan, rate, trim, progress):
                meter.push(x)
            input_lufs = meter.integrated_lufs()
            if not math.isfinite(input_lufs):
                raise EmptyAudioError("cannot normalise: the audio is too quiet to measure (below -70 LUFS)")
            gain_db = plan.normalize_lufs - input_lufs
        limit = plan.normalize_lufs is not None or plan.gain_db > 0 or plan.background is not None
        g = np.float32(db_to_gain(gain_db))
        with AudioWriter(plan.output, rate, subtype=plan.subtype) as writer:
            for x in _edited(plan, rate, trim, progress):
                y = x * g if gain_db else x
                writer.write(soft_limit(y, LIMIT_THRESHOLD) if limit else y)
            written = writer.samples_written
    if written == 0:
        plan.output.unlink(missing_ok=True)
        raise EmptyAudioError("the edit left no audio (everything was cut)")
    return EditReport(plan.output, rate, written / rate, input_lufs, gain_db)
