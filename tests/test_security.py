"""Security of the server facing a network: token check, Origin (and DNS rebinding), static-file paths,
frame size, message rate, session count and bounded queues, each tested against the real code.

Also covered elsewhere: a wrong or missing token refused with 401 (test_server_loopback.py::
test_unauthenticated_client_is_refused), foreign web pages refused with 403 (::test_foreign_web_pages_are_refused),
idle sessions closed (::test_idle_session_is_closed), 1009 for a message over max_message_bytes
(::test_misbehaving_client_does_not_disturb_others).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path

import pytest
from reliability_support import LIMITS, RawWebSocket, error_codes, raw_frame, wait_for_free_slots
from websockets.frames import Frame, Opcode

from rtaudio.server.app import Server
from rtaudio.server.background import BackgroundServer
from rtaudio.server.config import ServerConfig
from rtaudio.server.http import origin_allowed, parse_head, static_file

pytestmark = pytest.mark.slow


def test_token_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    server = Server(ServerConfig(port=0, token="s3cret-token-42"))
    try:
        def allowed(head: str) -> bool:
            return server._authorized(parse_head(f"GET /v1/stream{head} HTTP/1.1\r\n\r\n".encode()))

        assert allowed("?token=s3cret-token-42")
        for wrong in ("?token=s3cret-token-43", "?token=s3cret", "", "?token=%C3%A9t%C3%A9", "?token=s3cret-token-42x"):
            assert not allowed(wrong), wrong
    finally:
        server.pools.shutdown()
    assert len(compared) == 6 and all(b == b"s3cret-token-42" for _, b in compared)


@pytest.mark.parametrize("origin, host, allowed", [
    (None, "127.0.0.1:8765", True),  # a program, not a browser
    ("http://127.0.0.1:8765", "127.0.0.1:8765", True),  # the server's own page
    ("http://localhost:8765", "localhost:8765", True),
    ("http://[::1]:8765", "[::1]:8765", True),
    ("https://evil.example", "127.0.0.1:8765", False),  # another site
    ("http://evil.example:8765", "evil.example:8765", False),  # DNS rebinding: Origin == Host, foreign name
    ("null", "127.0.0.1:8765", False),  # sandboxed frames, file:// pages
    ("http://127.0.0.1:8765", "127.0.0.1:9999", False),
    ("http://[::1", "[::1", False),  # malformed
])
def test_origin_rules(origin: str | None, host: str, allowed: bool) -> None:
    assert origin_allowed(origin, host, (), "127.0.0.1") is allowed


def test_origin_rules_configured() -> None:
    assert origin_allowed("http://studio.lan:8765", "studio.lan:8765", ("http://studio.lan:8765",), "0.0.0.0")
    assert origin_allowed("http://studio.lan:8765", "studio.lan:8765", (), "studio.lan")  # --host studio.lan
    assert origin_allowed("https://any.example", "127.0.0.1:1", ("*",), "127.0.0.1")


async def http_get(port: int, target: bytes, headers: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 15)
    writer.close()
    return data


def test_dns_rebinding_page_cannot_open_a_websocket(reliability_server: BackgroundServer) -> None:
    assert reliability_server.server is not None
    port = reliability_server.server.port
    upgrade = b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
              b"Sec-WebSocket-Version: 13\r\n"

    async def status(origin: bytes, host: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v1/stream HTTP/1.1\r\nHost: " + host + b"\r\nOrigin: " + origin + b"\r\n" + upgrade + b"\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 15)
        writer.close()
        return line.split(b" ")[1]

    own = f"127.0.0.1:{port}".encode()
    assert asyncio.run(status(b"http://" + own, own)) == b"101"
    rebound = f"evil.example:{port}".encode()
    assert asyncio.run(status(b"http://" + rebound, rebound)) == b"403"
    assert asyncio.run(status(b"null", own)) == b"403"


@pytest.mark.parametrize("target", [
    b"/static/../app.py", b"/static/../../../../etc/passwd", b"/static/..%2f..%2fapp.py", b"/static/%2e%2e/app.py",
    b"/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd", b"/static//etc/passwd", b"/static/..\\app.py",
    b"/static/\x00", b"/static/app.js\x00.png", b"/static/" + b"a/" * 2000,
])
def test_static_paths_never_leave_the_static_folder(reliability_server: BackgroundServer, target: bytes) -> None:
    assert reliability_server.server is not None
    answer = asyncio.run(http_get(reliability_server.server.port, target))
    assert answer.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400")), answer[:200]
    assert b"root:" not in answer and b"import" not in answer


def test_static_files_are_served_and_symlinks_out_are_not(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "page.js").write_text("ok")
    (root / "sub" / "deep.css").write_text("ok")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "inside.js").symlink_to(root / "page.js")
    (root / "loop").symlink_to(root / "loop")
    assert static_file(root, "page.js") == (root / "page.js").resolve()
    assert static_file(root, "sub/deep.css") == (root / "sub" / "deep.css").resolve()
    assert static_file(root, "inside.js") == (root / "page.js").resolve()
    for name in ("leak.txt", "../secret.txt", str(tmp_path / "secret.txt"), "sub/../../secret.txt", "loop", "sub",
                 "", "page.js\x00", "..\\secret.txt"):
        assert static_file(root, name) is None, name


def test_oversized_frames_are_cut_off_before_they_are_buffered(reliability_server: BackgroundServer) -> None:
    url = reliability_server.ws_url + "/v1/stream"
    cap = 2 * LIMITS.max_message_bytes  # the websocket layer's own cut-off

    async def send(*frames: bytes) -> tuple[int | None, list[str]]:
        ws = await RawWebSocket.connect(url)
        await ws.send(json.dumps({"type": "session.start"}))
        for frame in frames:
            ws.send_raw(frame)
        code, messages = await ws.read_until_closed(15)
        return code, error_codes(messages)

    # A frame announcing 1 TiB: refused from its header alone.
    assert asyncio.run(send(raw_frame(0x2, b"\x00" * 16, length=1 << 40)))[0] == 1009
    # A message split into small fragments whose sum passes the cap.
    piece = b"\x00" * 32768
    fragments = [raw_frame(0x2, piece, fin=False)] + [raw_frame(0x0, piece, fin=False)] * (cap // len(piece) + 1)
    assert asyncio.run(send(*fragments))[0] == 1009
    # Between max_message_bytes and the cap: an error event first, then 1009.
    code, codes = asyncio.run(send(raw_frame(0x2, b"\x00" * (LIMITS.max_message_bytes + 2))))
    assert code == 1009 and codes == ["message_too_large"]


def test_message_flood_is_rate_limited(reliability_server: BackgroundServer) -> None:
    async def run() -> tuple[int | None, list[str]]:
        ws = await RawWebSocket.connect(reliability_server.ws_url + "/v1/stream")
        burst = b"".join(raw_frame(0x1, json.dumps({"type": "ping", "id": i}).encode()) for i in range(1000))
        ws.send_raw(burst)
        code, messages = await ws.read_until_closed(15)
        return code, error_codes(messages)

    code, codes = asyncio.run(run())
    assert code == 1008 and codes == ["rate_limited"]


def test_session_count_is_limited(reliability_server: BackgroundServer) -> None:
    async def run() -> list[str]:
        held, outcomes = [], []
        for _ in range(LIMITS.max_sessions + 1):
            try:
                held.append(await RawWebSocket.connect(reliability_server.ws_url + "/v1/stream"))
                outcomes.append("open")
            except Exception as e:  # the handshake refusal
                outcomes.append(str(getattr(getattr(e, "response", None), "status_code", e)))
        for ws in held:
            ws.writer.close()
        return outcomes

    assert asyncio.run(run()) == ["open"] * LIMITS.max_sessions + ["503"]


def test_speech_requests_waiting_are_bounded(reliability_server: BackgroundServer) -> None:
    """Thirty speech requests in one burst: the queue takes 16, the rest are refused, the session goes on."""
    wait_for_free_slots(reliability_server)

    async def run() -> list[str]:
        ws = await RawWebSocket.connect(reliability_server.ws_url + "/v1/stream")
        frames = [raw_frame(0x1, json.dumps({"type": "session.start"}).encode())]
        frames += [raw_frame(0x1, json.dumps({"type": "tts.speak", "id": f"r{i}", "text": "Hello there, listener. " * 20})
                             .encode()) for i in range(30)]
        frames.append(raw_frame(0x1, json.dumps({"type": "ping", "id": "after"}).encode()))
        ws.send_raw(b"".join(frames))
        seen: list[str] = []
        async with asyncio.timeout(30):
            while "pong" not in seen:
                data = await ws.reader.read(65536)
                assert data, "closed before the pong"
                ws.protocol.receive_data(data)
                for frame in ws.protocol.events_received():
                    if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT:
                        obj = json.loads(bytes(frame.data))
                        seen.append(obj.get("code") or obj["type"])
        ws.send_raw(raw_frame(0x1, json.dumps({"type": "tts.cancel"}).encode()))
        ws.writer.close()
        return seen

    seen = asyncio.run(run())
    refused = seen.count("over_capacity")
    assert 13 <= refused <= 14, seen


def test_uploads_in_progress_are_limited(reliability_server: BackgroundServer) -> None:
    """Each POST /v1/* may hold a body of up to max_upload_bytes: at most max_sessions at once."""
    assert reliability_server.server is not None
    port = reliability_server.server.port
    head = (b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n\r\n")

    async def run() -> bytes:
        held = []
        for _ in range(LIMITS.max_sessions):  # bodies that trickle: each request stays in progress
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + b"--x")
            held.append(writer)
        await asyncio.sleep(0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        answer = await asyncio.wait_for(reader.read(200), 10)
        for w in [*held, writer]:
            w.close()
        return answer

    assert asyncio.run(run()).startswith(b"HTTP/1.1 503")
