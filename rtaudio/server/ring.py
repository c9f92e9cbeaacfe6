"""Per-session inbound audio: the shared SPSC `RingBuffer` plus when each block arrived.

The event loop writes (producer) and one decode worker step at a time reads (consumer), which is the
single-producer / single-consumer contract of `rtaudio.ring.RingBuffer`. Arrival times are written
and read on the loop only, so a caption can say how long after its newest audio it was sent.
"""

from __future__ import annotations

import collections

import numpy as np

from rtaudio.ring import OverrunPolicy, RingBuffer


class AudioRing:
    """Bounded FIFO of float32 mono samples at one rate, with arrival times (monotonic ns) per block."""

    def __init__(self, capacity_samples: int) -> None:
        self._ring = RingBuffer(capacity_samples, policy=OverrunPolicy.REJECT_NEWEST)
        self._arrivals: collections.deque[tuple[int, int]] = collections.deque()  # (end sample, arrival ns)

    @property
    def capacity(self) -> int:
        return self._ring.capacity

    @property
    def available(self) -> int:
        """Samples written and not yet read."""
        return self._ring.write_position - self._ring.read_position

    @property
    def free(self) -> int:
        return self._ring.free()

    @property
    def written(self) -> int:
        """Total samples ever written (stream position of the input, at the input rate)."""
        return self._ring.write_position

    def write(self, samples: np.ndarray, arrival_ns: int) -> None:
        """Append all of `samples`; the caller checks `free` first (back-pressure), so overflow is a bug."""
        if len(samples) > self.free:
            raise OverflowError(f"ring overflow: {len(samples)} samples, {self.free} free")
        self._ring.write(samples)
        self._arrivals.append((self.written, arrival_ns))

    def read(self, max_samples: int) -> np.ndarray:
        """Take up to `max_samples` of the oldest samples (a new array)."""
        out, _ = self._ring.read(max_samples)
        return out

    def arrivals_since(self, sample_index: int) -> list[tuple[int, int]]:
        """(end sample, arrival ns) of the blocks past `sample_index`, copied (on the loop) for a worker."""
        return [a for a in self._arrivals if a[0] > sample_index]

    def arrival_ns(self, sample_index: int) -> int | None:
        """When the block holding input sample `sample_index - 1` arrived (None if unknown).

        Entries for blocks wholly before `sample_index` are forgotten: queries must not go back in time.
        """
        while len(self._arrivals) > 1 and self._arrivals[0][0] < sample_index:
            self._arrivals.popleft()
        return self._arrivals[0][1] if self._arrivals else None
