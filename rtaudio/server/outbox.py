"""Per-connection outbound queue with byte accounting, so a slow reader only ever slows itself.

The session puts messages in; the connection's writer task takes them out and awaits the socket.
Above `high_water_bytes` the session coalesces partial captions and speech synthesis waits
(`wait_below_high_water`); above `max_bytes` the client is declared too slow (`overflowing`).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from rtaudio.errors import CapacityError

if TYPE_CHECKING:
    from rtaudio.server.metrics import ServerMetrics
    from rtaudio.server.wire import Wire


def pump(wire: Wire, outbox: Outbox, metrics: ServerMetrics, close_requested: asyncio.Event) -> None:
    """Move what the wire wants to send into the outbox; close a client that reads far too slowly."""
    if outbox.closed:
        wire.data_to_send()
        return
    outbox.put(wire.data_to_send())
    if outbox.overflowing and wire.close_code is None:
        metrics.drops.inc(1, "slow_consumer")
        wire.fail(CapacityError(f"client reads too slowly: {outbox.queued_bytes} bytes queued"))
        outbox.put(wire.data_to_send())
    if wire.close_code is not None:
        close_requested.set()


class Outbox:
    def __init__(self, high_water_bytes: int, max_bytes: int) -> None:
        self.high_water_bytes = high_water_bytes
        self.max_bytes = max_bytes
        self._queue: collections.deque[str | bytes] = collections.deque()
        self._bytes = 0
        self._nonempty = asyncio.Event()
        self._below_high = asyncio.Event()
        self._below_high.set()
        self._on_drain: list[Callable[[], None]] = []
        self.closed = False

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    @property
    def congested(self) -> bool:
        return self._bytes > self.high_water_bytes

    @property
    def overflowing(self) -> bool:
        return self._bytes > self.max_bytes

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time the queue falls back below the high-water mark."""
        self._on_drain.append(callback)

    def put(self, messages: Iterable[str | bytes]) -> None:
        for m in messages:
            self._queue.append(m)
            self._bytes += len(m)
        if self._queue:
            self._nonempty.set()
        if self.congested:
            self._below_high.clear()

    async def get(self) -> str | bytes | None:
        """Next message, or None once closed and empty."""
        while not self._queue:
            if self.closed:
                return None
            self._nonempty.clear()
            await self._nonempty.wait()
        m = self._queue.popleft()
        was_congested = self.congested
        self._bytes -= len(m)
        if was_congested and not self.congested:
            self._below_high.set()
            for cb in self._on_drain:
                cb()
        return m

    async def wait_below_high_water(self) -> None:
        await self._below_high.wait()

    def close(self) -> None:
        """No more messages will be put; `get` returns None after the queue drains."""
        self.closed = True
        self._nonempty.set()
        self._below_high.set()

    def discard(self) -> int:
        """Drop everything queued (the connection is gone); returns the number of messages dropped."""
        n = len(self._queue)
        self._queue.clear()
        self._bytes = 0
        self.close()
        return n
