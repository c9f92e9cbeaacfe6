"""Python client for the voice assistant endpoint (`/v1/assistant`), asyncio.

    async with await AssistantClient.connect("ws://127.0.0.1:8765/v1/assistant") as client:
        result = await client.converse(samples)      # real-time pace, then audio.end; waits for audio.ended
        print([t["text"] for t in result.turns], len(result.reply_audio))

The server answers each mic frame with at most one frame of reply audio (lockstep), so a client that plays
what it receives as it receives it hears the assistant in time with its own microphone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection

from rtaudio.errors import ProtocolError
from rtaudio.server.client import ServerEvent, _error_for, open_session
from rtaudio.server.config import Encoding
from rtaudio.server.wire import decode_pcm, encode_pcm


@dataclass(frozen=True)
class ReplyAudio:
    """One frame of the assistant's reply: float32 mono at `sample_rate_hz`."""

    reply_id: int
    samples: np.ndarray
    sample_rate_hz: int
    sent_samples: int
    """Mic samples (input rate) this client had sent when the frame arrived: where in its stream it plays."""


@dataclass
class Conversation:
    """What `converse` collected."""

    events: list[ServerEvent] = field(default_factory=list)
    frames: list[ReplyAudio] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == kind]

    @property
    def turns(self) -> list[dict[str, Any]]:
        return self.of_type("assistant.turn")

    @property
    def reply_audio(self) -> np.ndarray:
        return np.concatenate([f.samples for f in self.frames]) if self.frames else np.zeros(0, np.float32)


class AssistantClient:
    def __init__(self, ws: ClientConnection, started: dict[str, Any]) -> None:
        self.ws = ws
        self.session = started
        config = started["config"]
        self.encoding = Encoding(config["audio"]["encoding"])
        self.sample_rate_hz = int(config["audio"]["sample_rate_hz"])
        self.output_encoding = Encoding(config["tts"]["encoding"])
        self.output_rate_hz = int(config["tts"]["sample_rate_hz"])
        self.sent_samples = 0
        self._reply: int | None = None  # the reply whose audio frames are coming

    @classmethod
    async def connect(cls, url: str, config: dict[str, Any] | None = None, token: str | None = None,
                      timeout_s: float = 60.0) -> AssistantClient:
        """Open a session; raises ConfigError / UnknownModelError / AuthError... as the server answers."""
        return cls(*await open_session(url, config, token, timeout_s))

    async def __aenter__(self) -> AssistantClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.ws.close()

    # -- sending --------------------------------------------------------------------------------
    async def send_audio(self, samples: np.ndarray) -> None:
        """float32 mono at the session's input rate, one binary message (20 ms is typical)."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        await self.ws.send(encode_pcm(x, self.encoding))
        self.sent_samples += len(x)

    async def stream_audio(self, samples: np.ndarray, chunk_ms: int = 20, speed: float = 1.0) -> None:
        """Send `samples` in `chunk_ms` frames at `speed` x real time (the mic clock the reply follows)."""
        step = max(1, self.sample_rate_hz * chunk_ms // 1000)
        t0 = time.monotonic()
        for i in range(0, len(samples), step):
            delay = t0 + i / self.sample_rate_hz / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.send_audio(samples[i:i + step])

    async def end_audio(self) -> None:
        await self.ws.send(json.dumps({"type": "audio.end"}))

    async def ping(self) -> None:
        await self.ws.send(json.dumps({"type": "ping"}))

    # -- receiving ------------------------------------------------------------------------------
    def _parse(self, message: str | bytes) -> ServerEvent | ReplyAudio:
        if isinstance(message, bytes):
            if self._reply is None:
                raise ProtocolError("reply audio outside a reply")
            return ReplyAudio(self._reply, decode_pcm(message, self.output_encoding, 1), self.output_rate_hz,
                              self.sent_samples)
        data = json.loads(message)
        kind = data["type"]
        if kind == "assistant.speaking":
            self._reply = int(data["reply_id"])
        elif kind == "assistant.done":
            self._reply = None
        return ServerEvent(kind, data, time.monotonic())

    async def recv(self, timeout_s: float | None = None) -> ServerEvent | ReplyAudio:
        """The next event or reply frame; raises ConnectionClosed at the end."""
        return self._parse(await asyncio.wait_for(self.ws.recv(), timeout_s))

    async def __aiter__(self) -> AsyncIterator[ServerEvent | ReplyAudio]:
        try:
            while True:
                yield self._parse(await self.ws.recv())
        except websockets.ConnectionClosed:
            return

    async def converse(self, samples: np.ndarray, speed: float = 1.0, timeout_s: float = 300.0) -> Conversation:
        """Stream `samples` as the mic at `speed` x real time, then `audio.end`; collect everything the server
        sends until `audio.ended` (the server plays the last answer out on its own clock)."""
        result = Conversation()

        async def send() -> None:
            await self.stream_audio(samples, speed=speed)
            await self.end_audio()

        sender = asyncio.create_task(send())
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    item = await self.recv()
                    if isinstance(item, ReplyAudio):
                        result.frames.append(item)
                        continue
                    result.events.append(item)
                    if item.type == "audio.ended":
                        break
                    if item.type == "error" and item.data.get("fatal"):
                        raise _error_for(item.data["code"], item.data["message"])
            await sender
        finally:
            sender.cancel()
        return result
