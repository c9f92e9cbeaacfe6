"""Injectable clocks: components take a `Clock` so tests can drive time by hand."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Monotonic time in nanoseconds."""
        ...


class SystemClock:
    """The real monotonic clock."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def now_s(self) -> float:
        return time.monotonic_ns() / 1e9


class ThreadCpuClock:
    """CPU time of the calling thread: what a step cost, whatever else the machine was doing."""

    def now_ns(self) -> int:
        return time.thread_time_ns()


class FakeClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start_ns: int = 0) -> None:
        self._t = start_ns

    def now_ns(self) -> int:
        return self._t

    def now_s(self) -> float:
        return self._t / 1e9

    def advance(self, seconds: float) -> None:
        self._t += int(round(seconds * 1e9))


def wall_time_s() -> float:
    """Wall-clock UNIX time, only for stamping messages sent to clients."""
    return time.time()
