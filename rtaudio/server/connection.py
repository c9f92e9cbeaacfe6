"""Asyncio glue between a TCP stream and the `websockets` library's sans-I/O `ServerProtocol`.

This is the only place that reads or writes websocket bytes: `recv()` pulls whole messages (so a
reader that stops calling it applies TCP back-pressure to that client alone), `send()` writes one
message and awaits the socket's drain, `close()` runs the closing handshake.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence

from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

READ_BYTES = 64 * 1024
CLOSE_TIMEOUT_S = 2.0


class ConnectionGone(Exception):
    """The peer closed the connection or it broke; `code` is the close code when there was one."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"connection closed ({code} {reason})")
        self.code, self.reason = code, reason


class IdleTimeout(Exception):
    """Nothing at all was received for the idle timeout."""


def make_protocol(max_message_bytes: int,
                  select: Callable[[Sequence[str]], str | None]) -> ServerProtocol:
    """A websockets server protocol with our size limit and subprotocol choice (no compression)."""

    def select_subprotocol(_: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        chosen = select(list(offered))
        return Subprotocol(chosen) if chosen is not None else None

    return ServerProtocol(select_subprotocol=select_subprotocol, max_size=max_message_bytes)


class WebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ServerProtocol) -> None:
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None

    @property
    def open(self) -> bool:
        return self.protocol.state is State.OPEN

    def flush(self) -> None:
        """Write whatever the protocol wants sent (handshake, frames, pongs, close, EOF)."""
        for data in self.protocol.data_to_send():
            try:
                if data:
                    self.writer.write(data)
                elif self.writer.can_write_eof():
                    self.writer.write_eof()
            except OSError:  # the peer is gone; the reader finds out at its next read
                return

    async def recv(self, idle_timeout_s: float) -> str | bytes:
        """The next whole message; raises ConnectionGone or IdleTimeout."""
        while not self._messages:
            if self.protocol.state in (State.CLOSING, State.CLOSED):
                raise ConnectionGone(self.protocol.close_rcvd.code if self.protocol.close_rcvd else None)
            try:
                data = await asyncio.wait_for(self.reader.read(READ_BYTES), idle_timeout_s)
            except asyncio.TimeoutError as e:
                raise IdleTimeout from e
            except (ConnectionError, OSError) as e:
                raise ConnectionGone(None, str(e)) from e
            if not data:
                self.protocol.receive_eof()
                self.flush()
                raise ConnectionGone(None, "EOF")
            self.protocol.receive_data(data)
            self.flush()
            for event in self.protocol.events_received():
                if isinstance(event, Frame):
                    self._on_frame(event)
            if self.protocol.parser_exc is not None and not self._messages:
                exc = self.protocol.parser_exc
                raise ConnectionGone(self.protocol.close_sent.code if self.protocol.close_sent else None, str(exc))
        return self._messages.popleft()

    def _on_frame(self, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragment_opcode, self._fragments = frame.opcode, [bytes(frame.data)]
        elif frame.opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
        else:
            return  # ping / pong / close are handled by the protocol itself
        if not frame.fin:
            return
        data = b"".join(self._fragments)
        self._fragments = []
        if self._fragment_opcode is Opcode.TEXT:
            try:
                self._messages.append(data.decode("utf-8"))
            except UnicodeDecodeError:
                self.protocol.fail(1007, "invalid UTF-8 in text message")
                self.flush()
        else:
            self._messages.append(data)

    async def send(self, message: str | bytes) -> None:
        if self.protocol.state is not State.OPEN:
            raise ConnectionGone(None, "not open")
        if isinstance(message, str):
            self.protocol.send_text(message.encode("utf-8"))
        else:
            self.protocol.send_binary(message)
        self.flush()
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as e:
            raise ConnectionGone(None, str(e)) from e

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Closing handshake (when still open), then close the TCP connection."""
        try:
            if self.protocol.state is State.OPEN:
                self.protocol.send_close(code, reason)
                self.flush()
                await asyncio.wait_for(self._await_close(), CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.abort()  # a peer that reads nothing would keep a plain close (and its buffer) forever
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()

    def abort(self) -> None:
        """Drop the connection now, with whatever is still buffered for it."""
        self.writer.transport.abort()

    async def _await_close(self) -> None:
        await self.writer.drain()
        while self.protocol.state is not State.CLOSED:
            data = await self.reader.read(READ_BYTES)
            if not data:
                self.protocol.receive_eof()
                self.flush()
                return
            self.protocol.receive_data(data)
            self.flush()
            self.protocol.events_received()
