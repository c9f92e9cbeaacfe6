"""The real loopback server under hundreds of malformed messages, broken frames and broken HTTP from
hostile clients, while another client streams real speech: its captions still come, every mistake is
answered with a stable error code or a close (never `internal_error`), and the server stays up."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from pathlib import Path

import pytest
from reliability_support import (
    CLIP,
    DEEPGRAM_TYPES,
    LIMITS,
    NATIVE_TYPES,
    REALTIME_TYPES,
    RawWebSocket,
    caption_clip,
    error_codes,
    finals_text,
    junk_message,
    metric,
    no_sessions_left,
    raw_frame,
    wer,
)
from websockets.exceptions import InvalidState

import rtaudio.errors as errors
from rtaudio.io.files import read_audio
from rtaudio.server.background import BackgroundServer

pytestmark = pytest.mark.slow

SEED = 20261126
MESSAGES = 400
ENDPOINTS = (("/v1/stream", NATIVE_TYPES), ("/v1/realtime", REALTIME_TYPES),
             ("/v1/listen?sample_rate=16000&interim_results=true", DEEPGRAM_TYPES))
STABLE_CODES = {c.code for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.RtAudioError)}
CLIENT_MISTAKE_CLOSES = {1000, 1007, 1008, 1009}
INTERNAL = 'rtaudio_errors_total{code="internal_error"}'


async def vandal(ws_url: str, rng: random.Random) -> list[tuple[str, int | None, list[str]]]:
    """MESSAGES malformed messages over as many connections as it takes (the server closes on too many
    mistakes); returns (endpoint, close code, error codes) per connection."""
    results, sent = [], 0
    while sent < MESSAGES:
        path, types = rng.choice(ENDPOINTS)
        ws = await RawWebSocket.connect(ws_url + path)
        reading = asyncio.create_task(ws.read_until_closed(30))
        for _ in range(rng.randrange(5, 40)):
            await asyncio.sleep(0.01)  # spread over the other client's speech
            if reading.done():
                break
            try:
                await ws.send(junk_message(rng, types, LIMITS.max_message_bytes))
            except (InvalidState, ConnectionError, OSError):
                break
            sent += 1
        if not reading.done():
            try:
                ws.protocol.send_close(1000)
                for data in ws.protocol.data_to_send():
                    ws.send_raw(data)
            except InvalidState:
                pass
        code, messages = await reading
        results.append((path, code, error_codes(messages)))
    return results


BROKEN_FRAMES = {  # what RFC 6455 forbids -> the close code the server must answer with
    "invalid UTF-8 text": (raw_frame(0x1, b"\xff\xfe{}"), 1007),
    "reserved opcode": (raw_frame(0x3, b"x"), 1002),
    "reserved bits": (raw_frame(0x2, b"\x00\x00", rsv=0b100), 1002),
    "unmasked client frame": (raw_frame(0x2, b"\x00\x00", masked=False), 1002),
    "continuation without a start": (raw_frame(0x0, b"\x00\x00"), 1002),
    "fragmented ping": (raw_frame(0x9, b"x", fin=False), 1002),
    "control frame over 125 bytes": (raw_frame(0x9, b"x" * 200), 1002),
}


async def broken_frames(ws_url: str) -> dict[str, int | None]:
    codes = {}
    for name, (frame, _) in BROKEN_FRAMES.items():
        ws = await RawWebSocket.connect(ws_url + "/v1/stream")
        ws.send_raw(frame)
        codes[name], _ = await ws.read_until_closed(10)
    return codes


async def broken_http(port: int, rng: random.Random) -> list[bytes]:
    """Random bytes, truncated and absurd request heads: each answered (400/404) or closed."""
    heads = [rng.randbytes(200) + b"\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n",
             b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
             b"GET /v1/stream HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
             b"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n",
             b"POST /v1/audio/speech HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
             b"POST /v1/audio/speech HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
             b"GET /static/\x00 HTTP/1.1\r\n\r\n", b"\r\n\r\n"]
    answers = []
    for head in heads:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        answers.append(await asyncio.wait_for(reader.read(200), 15))
        writer.close()
    return answers


def test_hostile_clients_while_another_streams_speech(reliability_server: BackgroundServer,
                                                      speech_dir: Path, speech_manifest: dict[str, str]) -> None:
    srv = reliability_server
    assert srv.server is not None
    audio, rate = read_audio(speech_dir / CLIP)
    rng = random.Random(SEED)
    internal_errors = metric(srv.url, INTERNAL)

    async def run() -> tuple:
        return await asyncio.gather(caption_clip(srv.ws_url + "/v1/stream", audio, rate), vandal(srv.ws_url, rng),
                                    broken_frames(srv.ws_url), broken_http(srv.server.port, rng))  # type: ignore[union-attr]

    captions, connections, frame_codes, http_answers = asyncio.run(run())
    # The speaking client was not disturbed.
    assert wer(speech_manifest[CLIP], finals_text(captions)) < 30, finals_text(captions)
    # Every hostile connection got stable error codes and a client-mistake close, never a server error.
    codes = [c for _, _, cs in connections for c in cs]
    print(f"\n{len(connections)} hostile connections, {len(codes)} error events: "
          f"{sorted({c: codes.count(c) for c in set(codes)}.items())}")
    assert len(codes) >= MESSAGES // 3 and set(codes) <= STABLE_CODES and "internal_error" not in codes
    assert all(code in CLIENT_MISTAKE_CLOSES for _, code, _ in connections), connections
    assert frame_codes == {name: code for name, (_, code) in BROKEN_FRAMES.items()}
    assert all(a == b"" or a.startswith((b"HTTP/1.1 400", b"HTTP/1.1 404", b"HTTP/1.1 413")) for a in http_answers), \
        http_answers
    # The server is up, holds no leftover session, and counted the mistakes.
    health = json.loads(urllib.request.urlopen(srv.url + "/healthz", timeout=10).read())
    assert health["status"] == "ok"
    assert metric(srv.url, 'rtaudio_errors_total{code="protocol_error"}') > 0
    assert metric(srv.url, INTERNAL) == internal_errors
    assert no_sessions_left(srv.server)
