"""Play recorded audio into a live stream at real-time pace, really (sleeping) or virtually (no waiting).

The virtual clock is real time plus the idle time it skipped: when the next chunk is not due yet,
time jumps forward instead of sleeping; compute is charged at its real duration. So a chunk's
emission time is max(its arrival, the end of the previous work) + compute, exactly as if the audio
had come from a microphone, and a 5-minute file is captioned in the time the compute takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from rtaudio.clock import SystemClock
from rtaudio.errors import ConfigError
from rtaudio.frames import Caption
from rtaudio.stt.streaming import SAMPLE_RATE_HZ, StreamEvent, StreamingRecognizer


class Pacer(Protocol):
    def now_ns(self) -> int: ...

    def wait_until_ns(self, t_ns: int) -> None:
        """Return once the clock reads at least `t_ns`."""
        ...


class RealTimePacer(SystemClock):
    """The system clock; waiting sleeps."""

    def wait_until_ns(self, t_ns: int) -> None:
        delay = (t_ns - self.now_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)


class VirtualClock:
    """`source` time plus skipped idle time: waiting jumps ahead, compute costs what it costs.

    `source` is monotonic wall time by default. `time.process_time_ns` charges only the CPU time this
    process spends, which on a machine shared with other work approximates the same machine idle
    (exact for single-threaded compute).
    """

    def __init__(self, source: Callable[[], int] = time.monotonic_ns) -> None:
        self._source = source
        self._skipped_ns = 0

    def now_ns(self) -> int:
        return self._source() + self._skipped_ns

    def wait_until_ns(self, t_ns: int) -> None:
        now = self.now_ns()
        if t_ns > now:
            self._skipped_ns += t_ns - now


@dataclass(frozen=True)
class TimedOutput:
    """What one decode produced, stamped with the pacer's time in seconds since the stream began."""

    time_s: float
    audio_s: float
    """Stream time of the audio received when the decode finished."""
    captions: list[Caption]
    events: list[StreamEvent]


def chunk_sizes(n_samples: int, min_ms: int, max_ms: int, seed: int = 0) -> list[int]:
    """Chunk lengths (samples) drawn uniformly in [min_ms, max_ms], as a microphone/network would deliver."""
    if not 0 < min_ms <= max_ms:
        raise ConfigError("need 0 < min_ms <= max_ms")
    rng = np.random.default_rng(seed)
    sizes, total = [], 0
    while total < n_samples:
        n = int(rng.integers(min_ms, max_ms + 1)) * SAMPLE_RATE_HZ // 1000
        n = min(n, n_samples - total)
        sizes.append(n)
        total += n
    return sizes


def play(stream: StreamingRecognizer, audio: np.ndarray, pacer: Pacer, min_chunk_ms: int = 20,
         max_chunk_ms: int = 100, seed: int = 0) -> Iterator[TimedOutput]:
    """Feed 16 kHz `audio` in chunks that arrive at real-time pace; yield every non-empty decode."""
    t0 = pacer.now_ns()
    pos = 0

    def drain() -> Iterator[TimedOutput]:
        while stream.is_ready():
            captions = stream.decode()
            events = stream.events()
            if captions or events:
                yield TimedOutput((pacer.now_ns() - t0) / 1e9, pos / SAMPLE_RATE_HZ, captions, events)

    for n in chunk_sizes(len(audio), min_chunk_ms, max_chunk_ms, seed):
        pacer.wait_until_ns(t0 + (pos + n) * 1_000_000_000 // SAMPLE_RATE_HZ)
        stream.accept_waveform(audio[pos: pos + n])
        pos += n
        yield from drain()
    stream.input_finished()
    yield from drain()
