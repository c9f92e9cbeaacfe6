"""Python client for the native protocol (`/v1/stream`): asyncio, events as an async iterator.

    async with await StreamClient.connect("ws://127.0.0.1:8765/v1/stream") as client:
        await client.send_audio(samples, 16000)     # float32 mono; paced by the caller
        await client.end_audio()
        async for event in client:
            if isinstance(event, CaptionEvent): print(event.caption.text, event.latency_ms)

Client-side latency: the client remembers when it sent each stretch of audio, so for every caption
it reports `latency_ms` = receipt time - send time of the newest audio the server had decoded.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets
from websockets.asyncio.client import ClientConnection

from rtaudio.errors import AuthError, CapacityError, ProtocolError, RtAudioError
from rtaudio.frames import Caption, Stability, Word
from rtaudio.server.config import Encoding
from rtaudio.server.wire import decode_pcm, encode_pcm

_ERRORS_BY_CODE: dict[str, type[RtAudioError]] = {}


def _error_for(code: str, message: str) -> RtAudioError:
    """Rebuild a server error as the same rtaudio exception class (matched by its stable code)."""
    if not _ERRORS_BY_CODE:
        import rtaudio.errors as errors

        for obj in vars(errors).values():
            if isinstance(obj, type) and issubclass(obj, RtAudioError):
                _ERRORS_BY_CODE.setdefault(obj.code, obj)
    return _ERRORS_BY_CODE.get(code, RtAudioError)(message)


@dataclass(frozen=True)
class ServerEvent:
    """Any JSON event from the server, as sent (`data`), with the local receive time."""

    type: str
    data: dict[str, Any]
    received_s: float


@dataclass(frozen=True)
class CaptionEvent(ServerEvent):
    caption: Caption = field(default=None)  # type: ignore[assignment]
    latency_ms: float | None = None
    """Client-measured: from sending the newest audio the decode had seen to receiving the caption."""


@dataclass(frozen=True)
class SpeechAudio:
    """One chunk of synthesized speech: float32 mono at `sample_rate_hz`."""

    request_id: str
    samples: np.ndarray
    sample_rate_hz: int


def caption_from_json(data: dict[str, Any]) -> Caption:
    rate = 16000
    words = tuple(Word(w["text"], w["start_s"], w["end_s"], w.get("probability", 1.0)) for w in data.get("words", []))
    return Caption(text=data["text"], start_sample=round(data["start_s"] * rate), end_sample=round(data["end_s"] * rate),
                   stability=Stability(data["stability"]), segment_id=data["segment_id"], sample_rate=rate,
                   words=words)


async def open_session(url: str, config: dict[str, Any] | None, token: str | None,
                       timeout_s: float) -> tuple[ClientConnection, dict[str, Any]]:
    """Connect and start a session: (connection, the `session.started` message); the server's refusal or
    error becomes AuthError / CapacityError / ConfigError / ... (shared by every endpoint's client)."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        # No keepalive pings: when the server applies back-pressure (a file sent faster than real
        # time), pings wait behind audio in TCP and would time out a healthy connection.
        ws = await websockets.connect(url, additional_headers=headers, max_size=16 << 20, open_timeout=timeout_s,
                                      ping_interval=None)
    except websockets.InvalidStatus as e:
        status = e.response.status_code
        body = e.response.body.decode(errors="replace").strip() if e.response.body else ""
        if status == 401:
            raise AuthError(f"server refused the token: {body}") from e
        if status == 503:
            raise CapacityError(body) from e
        raise ProtocolError(f"server refused the websocket ({status}): {body}") from e
    await ws.send(json.dumps({"type": "session.start", "config": config or {}}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if msg["type"] == "session.started":
            return ws, msg
        if msg["type"] == "error":
            await ws.close()
            raise _error_for(msg["code"], msg["message"])


class StreamClient:
    def __init__(self, ws: ClientConnection, started: dict[str, Any]) -> None:
        self.ws = ws
        self.session = started
        config = started["config"]
        self.encoding = Encoding(config["audio"]["encoding"])
        self.channels = int(config["audio"]["channels"])
        self.sample_rate_hz = int(config["audio"]["sample_rate_hz"])
        self._sent_samples = 0
        self._sent_at: list[tuple[float, float]] = []  # (stream seconds sent so far, monotonic send time)
        self._speech: tuple[str, int, Encoding] | None = None  # request in progress
        self._next_id = 0

    @classmethod
    async def connect(cls, url: str, config: dict[str, Any] | None = None, token: str | None = None,
                      timeout_s: float = 30.0) -> StreamClient:
        """Open a session; raises AuthError / CapacityError / ConfigError... as the server answers."""
        return cls(*await open_session(url, config, token, timeout_s))

    async def __aenter__(self) -> StreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending --------------------------------------------------------------------------------
    async def send_audio(self, samples: np.ndarray) -> None:
        """float32 mono (or (n, channels)) at the session's rate; sent as one binary message."""
        x = np.asarray(samples, dtype=np.float32)
        await self.ws.send(encode_pcm(x.reshape(-1), self.encoding))
        self._sent_samples += x.shape[0]
        self._sent_at.append((self._sent_samples / self.sample_rate_hz, time.monotonic()))

    async def stream_audio(self, samples: np.ndarray, chunk_ms: int = 20, realtime: bool = True) -> None:
        """Send `samples` in `chunk_ms` messages, at real-time pace unless `realtime` is False."""
        step = max(1, self.sample_rate_hz * chunk_ms // 1000)
        t0 = time.monotonic()
        for i in range(0, len(samples), step):
            if realtime:
                delay = t0 + i / self.sample_rate_hz - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.send_audio(samples[i:i + step])

    async def flush(self) -> None:
        await self.ws.send(json.dumps({"type": "audio.flush"}))

    async def end_audio(self) -> None:
        await self.ws.send(json.dumps({"type": "audio.end"}))

    async def speak(self, text: str, request_id: str | None = None, voice: str | None = None) -> str:
        self._next_id += 1
        request_id = request_id or f"py-{self._next_id}"
        msg: dict[str, Any] = {"type": "tts.speak", "id": request_id, "text": text}
        if voice:
            msg["voice"] = voice
        await self.ws.send(json.dumps(msg))
        return request_id

    async def cancel_speech(self, request_id: str | None = None) -> None:
        await self.ws.send(json.dumps({"type": "tts.cancel", "id": request_id}))

    async def ping(self) -> None:
        await self.ws.send(json.dumps({"type": "ping", "id": time.monotonic()}))

    async def close(self) -> None:
        await self.ws.close()

    # -- receiving ------------------------------------------------------------------------------
    def _latency_ms(self, decoded_until_s: float, now: float) -> float | None:
        i = bisect.bisect_left(self._sent_at, (decoded_until_s - 1e-3, 0.0))  # the wire rounds to ms
        if i >= len(self._sent_at):
            return None
        return (now - self._sent_at[i][1]) * 1000.0

    def _parse(self, message: str | bytes) -> ServerEvent | SpeechAudio:
        now = time.monotonic()
        if isinstance(message, bytes):
            if self._speech is None:
                raise ProtocolError("binary message outside a speech request")
            request_id, rate, encoding = self._speech
            return SpeechAudio(request_id, decode_pcm(message, encoding, 1), rate)
        data = json.loads(message)
        kind = data["type"]
        if kind == "caption":
            return CaptionEvent(kind, data, now, caption_from_json(data),
                                self._latency_ms(data["decoded_until_s"], now))
        if kind == "tts.started":
            self._speech = (data["id"], int(data["sample_rate_hz"]), Encoding(data["encoding"]))
        elif kind in ("tts.done", "tts.cancelled"):
            self._speech = None
        return ServerEvent(kind, data, now)

    async def recv(self, timeout_s: float | None = None) -> ServerEvent | SpeechAudio:
        """The next event; raises ConnectionClosed at the end."""
        return self._parse(await asyncio.wait_for(self.ws.recv(), timeout_s))

    async def __aiter__(self) -> AsyncIterator[ServerEvent | SpeechAudio]:
        """Events until the server closes the connection."""
        try:
            while True:
                yield self._parse(await self.ws.recv())
        except websockets.ConnectionClosed:
            return

    async def captions_until_ended(self, timeout_s: float = 120.0) -> list[CaptionEvent]:
        """After `end_audio()`: collect caption events until `audio.ended`."""
        out: list[CaptionEvent] = []
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.recv()
                if isinstance(event, CaptionEvent):
                    out.append(event)
                elif isinstance(event, ServerEvent) and event.type == "audio.ended":
                    return out
                elif isinstance(event, ServerEvent) and event.type == "error" and event.data.get("fatal"):
                    raise _error_for(event.data["code"], event.data["message"])

    async def stream_and_collect(self, samples: np.ndarray, timeout_s: float = 300.0
                                 ) -> tuple[list[CaptionEvent], list[dict[str, Any]], float, float]:
        """Stream `samples` at real-time pace while collecting captions and `budget` events until
        `audio.ended`: (captions, budget event payloads, monotonic time the audio was all sent, seconds
        from then to `audio.ended`)."""
        captions: list[CaptionEvent] = []
        budget: list[dict[str, Any]] = []

        async def collect() -> None:
            async for ev in self:
                if isinstance(ev, CaptionEvent):
                    captions.append(ev)
                elif isinstance(ev, ServerEvent) and ev.type == "budget":
                    budget.append(ev.data)
                elif isinstance(ev, ServerEvent) and ev.type == "audio.ended":
                    return

        collector = asyncio.create_task(collect())
        await self.stream_audio(samples, chunk_ms=20, realtime=True)
        sent = time.monotonic()
        await self.end_audio()
        await asyncio.wait_for(collector, timeout_s)
        return captions, budget, sent, time.monotonic() - sent

    async def say(self, text: str, voice: str | None = None, timeout_s: float = 120.0) -> tuple[np.ndarray, int, list[float]]:
        """Synthesize `text`; returns (samples float32, rate, arrival times of the chunks in s since request)."""
        t0 = time.monotonic()
        request_id = await self.speak(text, voice=voice)
        chunks: list[np.ndarray] = []
        arrivals: list[float] = []
        rate = 0
        async with asyncio.timeout(timeout_s):
            while True:
                event = await self.recv()
                if isinstance(event, SpeechAudio) and event.request_id == request_id:
                    chunks.append(event.samples)
                    arrivals.append(time.monotonic() - t0)
                    rate = event.sample_rate_hz
                elif isinstance(event, ServerEvent) and event.data.get("id") == request_id:
                    if event.type == "tts.started":
                        rate = int(event.data["sample_rate_hz"])
                    elif event.type in ("tts.done", "tts.cancelled"):
                        break
                    elif event.type == "error":
                        raise _error_for(event.data["code"], event.data["message"])
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        return samples, rate, arrivals
