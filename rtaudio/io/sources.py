"""Where audio comes from and goes to, behind two small interfaces.

`AudioSource.read()` is non-blocking: it returns the samples available now as an `AudioBlock`
(possibly empty) or None once the source is finished, so one runner loop can drive a microphone,
a file played at 1x by an injected clock, or a file read as fast as possible the same way.
`AudioSink.write()` takes mono float32 samples. Devices live in `rtaudio.io.devices`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rtaudio.clock import Clock
from rtaudio.errors import AudioError, ConfigError
from rtaudio.frames import AudioBlock
from rtaudio.io.files import AudioReader, AudioWriter


@runtime_checkable
class AudioSource(Protocol):
    rate_hz: int

    def read(self) -> AudioBlock | None:
        """Samples available now (maybe none), or None when the source has ended."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AudioSink(Protocol):
    rate_hz: int

    def write(self, samples: np.ndarray) -> int:
        """Queue mono float32 samples; returns how many were accepted."""
        ...

    def close(self) -> None: ...


class FileSource:
    """A file as fast as it decodes, one block per `read()` (constant memory)."""

    def __init__(self, path: str | Path, rate_hz: int | None = None, block_samples: int = 16000) -> None:
        self._reader = AudioReader(path, block_samples=block_samples, target_rate_hz=rate_hz)
        self.rate_hz = self._reader.rate_hz
        self.duration_s = self._reader.duration_s
        self._blocks = self._reader.blocks()

    def read(self) -> AudioBlock | None:
        return next(self._blocks, None)

    def close(self) -> None:
        self._reader.close()


class PacedFileSource:
    """A file played at `speed` x real time by `clock`: `read()` returns what is due by now.

    Time starts at the first `read()`. With a FakeClock, tests step through a file instantly.
    """

    def __init__(self, path: str | Path, clock: Clock, rate_hz: int | None = None, speed: float = 1.0,
                 block_samples: int = 4096) -> None:
        if speed <= 0:
            raise ConfigError(f"speed must be > 0, got {speed}")
        self._source = FileSource(path, rate_hz=rate_hz, block_samples=block_samples)
        self.rate_hz = self._source.rate_hz
        self.duration_s = self._source.duration_s
        self.clock = clock
        self.speed = speed
        self._t0_ns: int | None = None
        self._pending = np.zeros(0, np.float32)
        self._position = 0  # samples handed out so far
        self._ended = False

    def read(self) -> AudioBlock | None:
        now = self.clock.now_ns()
        if self._t0_ns is None:
            self._t0_ns = now
        due = int((now - self._t0_ns) * self.speed * self.rate_hz // 1_000_000_000)
        want = due - self._position
        while self._pending.size < want and not self._ended:
            block = self._source.read()
            if block is None:
                self._ended = True
            else:
                self._pending = np.concatenate([self._pending, block.samples])
        if self._ended and self._pending.size == 0:
            return None
        n = max(0, min(want, self._pending.size))
        out = AudioBlock(self._pending[:n].copy(), self.rate_hz, self._position)
        self._pending = self._pending[n:]
        self._position += n
        return out

    def close(self) -> None:
        self._source.close()


class NullSink:
    """Accepts and discards everything; counts samples (for benchmarks and dry runs)."""

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.samples_written = 0

    def write(self, samples: np.ndarray) -> int:
        self.samples_written += int(np.shape(samples)[0])
        return int(np.shape(samples)[0])

    def close(self) -> None:
        pass


class RecordingSink:
    """Keeps what it is given in memory, or streams it to `path` when one is given."""

    def __init__(self, rate_hz: int, path: str | Path | None = None) -> None:
        self.rate_hz = rate_hz
        self._parts: list[np.ndarray] = []
        self._writer = AudioWriter(path, rate_hz) if path is not None else None
        self.samples_written = 0

    def write(self, samples: np.ndarray) -> int:
        a = np.asarray(samples)
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
            raise AudioError(f"sinks take 1-D float samples, got {a.dtype} {a.shape}")
        if self._writer is not None:
            self._writer.write(a)
        else:
            self._parts.append(a.astype(np.float32, copy=True))
        self.samples_written += a.size
        return a.size

    def audio(self) -> np.ndarray:
        """Everything recorded so far (in-memory recordings only), float32 1-D."""
        if self._writer is not None:
            raise AudioError("this RecordingSink streams to a file; read the file instead")
        return np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
