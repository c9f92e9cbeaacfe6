"""What the reliability tests (fuzz, faults, security, soak) share: a real loopback server with tight
limits, real speech, a seeded junk generator, a raw websocket for what no well-behaved library sends,
and an engine fault hook.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import socket
import time
from typing import Any

import jiwer
import numpy as np
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from rtaudio.server.client import CaptionEvent, StreamClient
from rtaudio.server.config import ServerConfig, ServerLimits, SessionConfig
from rtaudio.server.engine import CaptionStream, ModelHub
from rtaudio.stt.textnorm import normalize_english

CLIP = "ljspeech_LJ001-0020.flac"  # 4.7 s: "the lower-case being in fact invented in the early Middle Ages."
POISON = 12345 / 32768  # an int16-exact sample value: 0.1 s of it makes the engine step fail (FaultyHub)

# Tight limits so the tests reach them quickly; every one of them still lets real speech through.
LIMITS = ServerLimits(max_sessions=8, max_message_bytes=64 * 1024, idle_timeout_s=4.0,
                      outbound_high_water_bytes=32 * 1024, outbound_max_bytes=256 * 1024)


def reliability_config(**overrides: Any) -> ServerConfig:
    return ServerConfig(**{"port": 0, "decode_workers": 2, "limits": LIMITS, "shutdown_grace_s": 2.0,
                           "preload_voice": False, **overrides})


def wait_for_free_slots(server: Any, timeout_s: float = 15.0) -> None:
    """Wait until sessions left by earlier tests are cleaned up (on a loaded machine that lags a little)."""
    deadline = time.monotonic() + timeout_s
    while server.server is not None and server.server.sessions and time.monotonic() < deadline:
        time.sleep(0.05)


def wer(ref: str, hyp: str) -> float:
    return 100.0 * float(jiwer.wer(normalize_english(ref), normalize_english(hyp) or "<empty>"))


def finals_text(events: list[CaptionEvent]) -> str:
    return " ".join(e.caption.text for e in events if e.caption.is_final and e.caption.text)


async def caption_clip(url: str, audio: np.ndarray, rate: int, realtime: bool = True,
                       token: str | None = None) -> list[CaptionEvent]:
    """Stream `audio` (float32 mono at `rate`) as live speech; every caption up to `audio.ended`."""
    async with await StreamClient.connect(url, {"audio": {"sample_rate_hz": rate}}, token=token) as client:
        async def send() -> None:
            await client.stream_audio(audio, chunk_ms=20 if realtime else 200, realtime=realtime)
            await client.end_audio()

        sender = asyncio.create_task(send())
        events = await client.captions_until_ended(timeout_s=90)
        await sender
        return events


# -- a poisoned engine: the real caption stream, failing on a marker in the audio ----------------------------
class PoisonedStream:
    """Wraps the real stream; audio holding the POISON marker makes the next decode raise, as a broken
    onnxruntime session would. Everything else is the real engine."""

    def __init__(self, inner: CaptionStream) -> None:
        self._inner = inner
        self._poisoned = False

    def accept_waveform(self, samples: np.ndarray, *args: Any, **kwargs: Any) -> None:
        self._poisoned |= int(np.count_nonzero(samples == np.float32(POISON))) >= 400
        self._inner.accept_waveform(samples, *args, **kwargs)

    def is_ready(self) -> bool:
        return self._poisoned or self._inner.is_ready()

    def decode(self) -> list[Any]:
        if self._poisoned:
            raise RuntimeError("injected engine failure (ONNX run failed)")
        return self._inner.decode()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FaultyHub(ModelHub):
    def open_stream(self, session: SessionConfig, offset_samples: int = 0, first_segment_id: int = 0) -> CaptionStream:
        return PoisonedStream(super().open_stream(session, offset_samples, first_segment_id))  # type: ignore[return-value]


# -- junk: every way a client gets messages wrong (seeded, so a failure replays) ------------------------------
NATIVE_TYPES = ("session.start", "audio.flush", "audio.end", "tts.speak", "tts.cancel", "ping", "captions.subscribe")
REALTIME_TYPES = ("session.update", "transcription_session.update", "input_audio_buffer.append",
                  "input_audio_buffer.commit", "input_audio_buffer.clear")
DEEPGRAM_TYPES = ("KeepAlive", "Finalize", "CloseStream")


def junk_value(rng: random.Random, depth: int = 0) -> Any:
    makers = [lambda: None, lambda: rng.random() < 0.5, lambda: rng.randint(-(2**40), 2**40),
              lambda: rng.uniform(-1e9, 1e9), lambda: "x" * rng.randrange(9), lambda: float("nan"),
              lambda: {"sample_rate_hz": rng.choice((0, 1000, 16000, "16000", None)), "encoding": rng.choice(("mp3", 7))},
              lambda: [junk_value(rng, depth + 1) for _ in range(rng.randrange(3))],
              lambda: {rng.choice(("audio", "config", "id", "text", "type", "session")): junk_value(rng, depth + 1)}]
    return makers[rng.randrange(len(makers) if depth < 2 else len(makers) - 2)]()


def junk_message(rng: random.Random, types: tuple[str, ...], max_bytes: int) -> str | bytes:
    """One malformed, mistimed or oversized message for a protocol whose message types are `types`."""
    kind = rng.randrange(11)
    fields = {k: junk_value(rng) for k in rng.sample(("config", "id", "text", "speed", "session", "audio",
                                                      "channel", "voice"), rng.randrange(4))}
    valid_ish = json.dumps({"type": rng.choice(types), **fields})
    if kind == 0:
        return valid_ish
    if kind == 1:
        return valid_ish[: rng.randrange(len(valid_ish))]  # truncated
    if kind == 2:
        return json.dumps(junk_value(rng))  # not an object, or no type
    if kind == 3:
        return json.dumps({"type": junk_value(rng)})
    if kind == 4:
        return "[" * rng.randrange(1000, 20000)  # nesting deeper than the JSON parser goes
    if kind == 5:
        return rng.randbytes(rng.randrange(1, 999))  # random, often misaligned, PCM
    if kind == 6:
        return np.full(rng.randrange(1, 99), np.nan, "<f4").tobytes()
    if kind == 7 and rng.random() < 0.3:
        return b"\x00" * rng.randrange(max_bytes + 1, 2 * max_bytes)  # over the limit: fatal
    if kind == 8:
        return rng.randbytes(rng.randrange(40)).decode("latin-1")  # text, not JSON
    if kind == 9:
        audio = base64.b64encode(rng.randbytes(rng.randrange(1, 99))).decode()
        return json.dumps({"type": "input_audio_buffer.append", "audio": audio[: rng.randrange(len(audio) + 1)]})
    return json.dumps({"type": rng.choice(types), "config": {"audio": {"sample_rate_hz": rng.choice((8000, 48000))}}})


# -- a raw websocket: sans-I/O client protocol over plain asyncio streams -------------------------------------
class RawWebSocket:
    """A websocket client that sends whatever frames it is told, reads only when asked, and can
    shrink its receive buffer: what a broken or hostile client does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol,
                 early: list[Frame]) -> None:
        self.reader, self.writer, self.protocol = reader, writer, protocol
        self._frames = early  # frames that came with the handshake response

    @classmethod
    async def connect(cls, url: str, headers: dict[str, str] | None = None, rcvbuf: int | None = None) -> RawWebSocket:
        uri = parse_uri(url)
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        protocol = ClientProtocol(uri, max_size=None)
        request = protocol.connect()
        for k, v in (headers or {}).items():
            request.headers[k] = v
        protocol.send_request(request)
        for data in protocol.data_to_send():
            writer.write(data)
        early: list[Frame] = []
        response = None
        while response is None:
            data = await asyncio.wait_for(reader.read(65536), 10)
            if not data:
                raise ConnectionError("closed during the handshake")
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, Response):
                    response = event
                elif isinstance(event, Frame):
                    early.append(event)
        if protocol.handshake_exc is not None:
            writer.close()
            raise protocol.handshake_exc
        return cls(reader, writer, protocol, early)

    async def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.writer.write(data)
        await self.writer.drain()

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.protocol.send_text(message.encode())
        else:
            self.protocol.send_binary(message)
        await self._flush()

    async def send_frame(self, frame: Frame) -> None:
        """A frame as given (fragments, odd opcodes), masked as a client must."""
        self.writer.write(frame.serialize(mask=True, extensions=[]))
        await self.writer.drain()

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_until_closed(self, timeout_s: float = 20.0) -> tuple[int | None, list[str | bytes]]:
        """Everything the server sends until it closes: (close code or None if the TCP just ended, messages)."""
        messages: list[str | bytes] = []
        code: int | None = None
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    frames, self._frames = self._frames, []
                    for frame in frames:
                        if frame.opcode is Opcode.TEXT:
                            messages.append(bytes(frame.data).decode())
                        elif frame.opcode is Opcode.BINARY:
                            messages.append(bytes(frame.data))
                        elif frame.opcode is Opcode.CLOSE:
                            code = Close.parse(frame.data).code if frame.data else 1005
                    data = await self.reader.read(65536)
                    if not data:
                        break
                    self.protocol.receive_data(data)
                    self._frames = [e for e in self.protocol.events_received() if isinstance(e, Frame)]
                    for reply in self.protocol.data_to_send():  # pongs, and the answer to a close
                        if reply:
                            self.writer.write(reply)
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()
        return code, messages


def error_codes(messages: list[str | bytes]) -> list[str]:
    """Stable codes of the errors among native, Realtime-style or Deepgram-style messages."""
    codes = []
    for m in messages:
        if isinstance(m, str):
            obj = json.loads(m)
            if obj.get("type") == "error":
                codes.append(obj["error"]["code"] if isinstance(obj.get("error"), dict) else obj["code"])
            elif obj.get("type") == "Error":
                codes.append(obj["err_code"])
    return codes


def raw_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True,
              length: int | None = None) -> bytes:
    """A websocket frame built by hand, so it can break RFC 6455 (reserved bits and opcodes, no mask,
    a length that lies)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 1 << 16:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = b"\x11\x22\x33\x44"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def metric(base_url: str, series: str) -> float:
    """The value of one series of the server's /metrics (0 when absent), e.g. 'rtaudio_errors_total{code="x"}'."""
    import urllib.request

    text = urllib.request.urlopen(base_url + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def no_sessions_left(server: Any, timeout_s: float = 10.0) -> bool:
    """Wait (from a thread other than the server's) until the server holds no session."""
    import time

    deadline = time.monotonic() + timeout_s
    while server.sessions:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
