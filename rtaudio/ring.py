"""Fixed-capacity float32 ring buffer for one producer thread and one consumer thread.

Built for the sound-card callback: `write` copies into preallocated memory (at most two slice
copies, no sample arrays allocated, no locks, no logging) and counts what did not fit.

Why it is safe without a lock under CPython
-------------------------------------------
Positions are running sample indices (Python ints that only grow). The producer is the only
writer of `_write_pos` and `_claim_pos`; the consumer is the only writer of `_read_pos` and
`_dropped`. Storing or loading one attribute is atomic under the GIL, and every GIL hand-over
is a full memory barrier, so the order each thread does things in is the order the other sees:

* producer: (1) publish `_claim_pos = w + n`, (2) copy the samples, (3) publish `_write_pos = w + n`;
* consumer: (1) load `_write_pos`, (2) copy up to it, (3) load `_claim_pos`, (4) store `_read_pos`.

A consumer never copies past a published `_write_pos`, so it never sees half-written samples.
With REJECT_NEWEST the producer writes only into slots the consumer has released (it reads a
possibly stale, hence smaller, `_read_pos`: conservative). With DROP_OLDEST the producer may
overwrite unread slots; the consumer then checks, after copying, which of its samples a write
could have touched (index < `_claim_pos` - capacity, by step (1) coming before (2)) and discards
those as dropped, so a read never returns a torn or duplicated sample. numpy may release the GIL
inside a large copy; that does not matter, as the claim is published before the copy starts and
the position after it ends. Free-threaded (no-GIL) CPython would need real fences: not supported.
"""

from __future__ import annotations

import enum

import numpy as np

from rtaudio.errors import AudioError, ConfigError


class OverrunPolicy(enum.Enum):
    """What a write does when the ring is full."""

    REJECT_NEWEST = "reject_newest"  # keep what is queued, drop the part of the write that does not fit
    DROP_OLDEST = "drop_oldest"  # always accept; the consumer skips samples that were overwritten


class RingBuffer:
    """SPSC ring of float32 samples, mono (capacity,) or multichannel (capacity, channels).

    Every read returns the stream index of its first sample, so consumers know where they are
    even after drops. Counters: `overrun_samples` (rejected or dropped), `underrun_samples` (zeros
    a padded read had to insert), and the event counts `overruns` / `underruns`.
    """

    def __init__(self, capacity_samples: int, channels: int = 1,
                 policy: OverrunPolicy = OverrunPolicy.REJECT_NEWEST) -> None:
        if capacity_samples < 1 or channels < 1:
            raise ConfigError(f"ring needs capacity_samples >= 1 and channels >= 1, got {capacity_samples}, {channels}")
        self.capacity = int(capacity_samples)
        self.channels = int(channels)
        self.policy = policy
        shape = (self.capacity,) if channels == 1 else (self.capacity, self.channels)
        self._buf = np.zeros(shape, np.float32)
        self._write_pos = 0  # producer-owned: samples written so far (next write index)
        self._claim_pos = 0  # producer-owned: end of the write in progress
        self._read_pos = 0  # consumer-owned: next sample index to read
        self._rejected = 0  # producer-owned
        self._reject_events = 0
        self._dropped = 0  # consumer-owned (DROP_OLDEST)
        self._drop_events = 0
        self.underruns = 0  # consumer-owned
        self.underrun_samples = 0

    # --- producer side -----------------------------------------------------------------------
    def write(self, x: np.ndarray) -> int:
        """Copy samples (n,) or (n, channels) in; returns how many were accepted. Never blocks."""
        n = x.shape[0]
        if x.ndim != self._buf.ndim or (self.channels > 1 and x.shape[1] != self.channels):
            raise AudioError(f"ring holds {self.channels} channel(s) of shape {self._buf.shape[1:]}, got {x.shape}")
        w = self._write_pos
        if self.policy is OverrunPolicy.REJECT_NEWEST:
            free = self.capacity - (w - self._read_pos)
            if n > free:
                self._rejected += n - free
                self._reject_events += 1
                n = free
            src = x[:n]
        elif n > self.capacity:  # DROP_OLDEST: only the newest `capacity` samples can survive anyway
            src = x[n - self.capacity:]
            w += n - self.capacity
            n = self.capacity
        else:
            src = x
        if n == 0:
            return 0
        self._claim_pos = w + n
        i = w % self.capacity
        first = min(n, self.capacity - i)
        self._buf[i:i + first] = src[:first]
        if first < n:
            self._buf[: n - first] = src[first:n]
        self._write_pos = w + n
        return n if self.policy is OverrunPolicy.REJECT_NEWEST else x.shape[0]

    # --- consumer side -----------------------------------------------------------------------
    def available(self) -> int:
        """Samples ready to read (a lower bound while the producer runs)."""
        return min(self._write_pos - self._read_pos, self.capacity)

    def free(self) -> int:
        """Room for a REJECT_NEWEST write (a lower bound while the consumer runs)."""
        return self.capacity - (self._write_pos - self._read_pos)

    def read_into(self, out: np.ndarray, pad: bool = False) -> tuple[int, int]:
        """Fill `out` with up to len(out) samples; returns (count, stream index of out[0]).

        With `pad`, a short read zero-fills the rest of `out` and counts an underrun (playback).
        """
        want = out.shape[0]
        r = self._read_pos
        w = self._write_pos
        if w - r > self.capacity:  # lapped by DROP_OLDEST writes: skip what is certainly gone
            self._note_drop(w - self.capacity - r)
            r = w - self.capacity
        n = min(want, w - r)
        self._copy_out(r, n, out)
        if self.policy is OverrunPolicy.DROP_OLDEST:
            lost = min(n, max(0, self._claim_pos - self.capacity - r))  # slots a write may have touched
            if lost:
                self._note_drop(lost)
                out[: n - lost] = out[lost:n]
                r += lost
                n -= lost
        self._read_pos = r + n
        if n < want and pad:
            out[n:] = 0.0
            self.underruns += 1
            self.underrun_samples += want - n
        return n, r

    def read(self, max_samples: int) -> tuple[np.ndarray, int]:
        """Up to max_samples as a new array, plus the stream index of its first sample."""
        out = np.empty((max_samples,) + self._buf.shape[1:], np.float32)
        n, start = self.read_into(out)
        return out[:n], start

    def _copy_out(self, r: int, n: int, out: np.ndarray) -> None:
        i = r % self.capacity
        first = min(n, self.capacity - i)
        out[:first] = self._buf[i:i + first]
        if first < n:
            out[first:n] = self._buf[: n - first]

    def _note_drop(self, n: int) -> None:
        self._dropped += n
        self._drop_events += 1

    # --- counters -----------------------------------------------------------------------------
    @property
    def write_position(self) -> int:
        """Stream index of the next sample the producer will write (total written, incl. dropped)."""
        return self._write_pos

    @property
    def read_position(self) -> int:
        """Stream index of the next sample the consumer will read."""
        return self._read_pos

    @property
    def overrun_samples(self) -> int:
        """Samples lost: rejected writes, plus overwritten ones (seen by reads or already lapped)."""
        lapped = max(0, self._write_pos - self._read_pos - self.capacity) if self.policy is OverrunPolicy.DROP_OLDEST else 0
        return self._rejected + self._dropped + lapped

    @property
    def overruns(self) -> int:
        return self._reject_events + self._drop_events
