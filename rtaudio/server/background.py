"""Run a `Server` on its own event-loop thread: for tests, benchmarks and embedding in sync programs.

    with BackgroundServer(ServerConfig(port=0)) as srv:
        print(srv.url)          # http://127.0.0.1:<port>
        ...                     # clients in any thread / event loop
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from rtaudio.server.app import Server
from rtaudio.server.config import ServerConfig
from rtaudio.server.engine import ModelHub

T = TypeVar("T")


class BackgroundServer:
    def __init__(self, config: ServerConfig, start_timeout_s: float = 120.0, hub: ModelHub | None = None) -> None:
        self.config = config
        self.hub = hub
        self.start_timeout_s = start_timeout_s
        self.server: Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rtaudio-server", daemon=True)

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        self.server = Server(self.config, hub=self.hub)
        self.call(self.server.start(), self.start_timeout_s)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def stop(self) -> None:
        if self.server is not None and self._loop.is_running():
            try:
                self.call(self.server.shutdown(), self.config.shutdown_grace_s + 10)
            finally:
                self.server = None
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)
