"""The server's small parts without a network: ring, outbox, metrics text, HTTP parsing, auth token lookup."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from rtaudio.errors import ConfigError, MessageTooLargeError, ProtocolError
from rtaudio.server.app import offered_token, select_subprotocol
from rtaudio.server.config import ServerConfig, ServerLimits
from rtaudio.server.http import ChunkedDecoder, encode_chunk, parse_head, parse_multipart
from rtaudio.server.metrics import ServerMetrics
from rtaudio.server.openai_http import streaming_wav_header
from rtaudio.server.outbox import Outbox
from rtaudio.server.ring import AudioRing


def test_ring_wraps_and_keeps_order_and_arrivals() -> None:
    ring = AudioRing(10)
    data = np.arange(25, dtype=np.float32)
    got = []
    for i, start in enumerate(range(0, 25, 4)):
        ring.write(data[start:start + 4], arrival_ns=1000 * i)
        got.append(ring.read(3))
    got.append(ring.read(100))
    np.testing.assert_array_equal(np.concatenate(got), data)
    assert ring.available == 0 and ring.written == 25
    ring2 = AudioRing(8)
    ring2.write(np.zeros(3, np.float32), 10)
    ring2.write(np.zeros(3, np.float32), 20)
    assert ring2.arrival_ns(2) == 10 and ring2.arrival_ns(4) == 20 and ring2.arrival_ns(6) == 20
    with pytest.raises(OverflowError):
        ring2.write(np.zeros(3, np.float32), 30)
    assert len(ring2.read(100)) == 6 and ring2.free == 8


def test_outbox_congestion_and_drain_callback() -> None:
    async def run() -> None:
        box = Outbox(high_water_bytes=10, max_bytes=25)
        drained = []
        box.on_drain(lambda: drained.append(box.queued_bytes))
        box.put(["aaaa", b"bbbbbbbb"])
        assert box.congested and not box.overflowing
        waiter = asyncio.create_task(box.wait_below_high_water())
        await asyncio.sleep(0)
        assert not waiter.done()
        assert await box.get() == "aaaa"
        await asyncio.sleep(0)
        assert waiter.done() and drained == [8]
        box.put(["x" * 20])
        assert box.overflowing
        box.close()
        assert await box.get() == b"bbbbbbbb" and await box.get() == "x" * 20 and await box.get() is None

    asyncio.run(run())


def test_metrics_render_prometheus_text() -> None:
    m = ServerMetrics()
    m.sessions_active.inc(2, "/v1/stream")
    m.latency.observe(0.12, "partial")
    m.latency.observe(0.4, "partial")
    m.errors.inc(1, 'we"ird')
    text = m.render()
    assert 'rtaudio_sessions_active{endpoint="/v1/stream"} 2' in text
    assert 'rtaudio_stage_latency_seconds_bucket{stage="partial",le="0.2"} 1' in text
    assert 'rtaudio_stage_latency_seconds_bucket{stage="partial",le="+Inf"} 2' in text
    assert 'rtaudio_stage_latency_seconds_count{stage="partial"} 2' in text
    assert 'rtaudio_errors_total{code="we\\"ird"} 1' in text
    assert "# TYPE rtaudio_stage_latency_seconds histogram" in text
    assert m.latency.quantile(0.5, "partial") == 0.2


def test_parse_head_and_query() -> None:
    req = parse_head(b"GET /v1/listen?encoding=linear16&sample_rate=8000 HTTP/1.1\r\nHost: x\r\n"
                     b"Upgrade: websocket\r\nX-A: 1\r\nX-A: 2\r\n\r\n")
    assert req.is_websocket and req.path == "/v1/listen"
    assert req.query == {"encoding": "linear16", "sample_rate": "8000"} and req.headers["x-a"] == "1, 2"
    for bad in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n", b"GET / SPDY/3\r\n\r\n"):
        with pytest.raises(ProtocolError):
            parse_head(bad)


def test_chunked_decoder_any_split() -> None:
    body = b"".join(encode_chunk(p) for p in (b"hello ", b"chunked", b" world")) + encode_chunk(b"")
    for split in range(1, len(body)):
        d = ChunkedDecoder(1000)
        d.feed(body[:split])
        d.feed(body[split:])
        assert d.done and d.body == b"hello chunked world"
    with pytest.raises(MessageTooLargeError):
        ChunkedDecoder(5).feed(body)
    with pytest.raises(ProtocolError):
        ChunkedDecoder(5).feed(b"zz\r\n")


def test_multipart_form() -> None:
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-tiny.en\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + bytes(range(256)) + f"\r\n--{boundary}--\r\n".encode()
    form = parse_multipart(body, f"multipart/form-data; boundary={boundary}")
    assert form["model"][0].text == "whisper-tiny.en"
    assert form["file"][0].filename == "a.wav" and form["file"][0].data == bytes(range(256))
    with pytest.raises(ProtocolError):
        parse_multipart(body, "application/json")


def test_token_sources_and_subprotocols() -> None:
    def req(head: str):  # type: ignore[no-untyped-def]
        return parse_head(f"GET /v1/stream{head} HTTP/1.1\r\n\r\n".encode() if head.startswith("?") else
                          f"GET /v1/stream HTTP/1.1\r\n{head}\r\n\r\n".encode())

    assert offered_token(req("Authorization: Bearer abc12345")) == "abc12345"
    assert offered_token(req("Authorization: Token dg-key-1")) == "dg-key-1"
    assert offered_token(req("?token=q1234567")) == "q1234567"
    assert offered_token(req("Sec-WebSocket-Protocol: token, key12345")) == "key12345"
    assert offered_token(req("Sec-WebSocket-Protocol: realtime, openai-insecure-api-key.k9")) == "k9"
    assert offered_token(req("X-Nothing: 1")) is None
    assert select_subprotocol(["token", "key"]) == "token"
    assert select_subprotocol(["realtime", "openai-insecure-api-key.k"]) == "realtime"
    assert select_subprotocol(["other"]) is None


def test_server_config_validation() -> None:
    with pytest.raises(ConfigError):
        ServerConfig(port=70000)
    with pytest.raises(ConfigError):
        ServerConfig(token="short")
    with pytest.raises(ConfigError):
        ServerConfig(tls_certfile="a.pem")
    with pytest.raises(ConfigError):
        ServerLimits(max_sessions=0)
    with pytest.raises(ConfigError, match="fixed port"):
        ServerConfig(port=0, processes=2)  # each process would listen on a port of its own
    with pytest.raises(ConfigError, match="processes"):
        ServerConfig(processes=0)


def test_streaming_wav_header_is_a_valid_header() -> None:
    import io

    import soundfile as sf

    pcm = (np.sin(np.arange(2205) / 10) * 10000).astype("<i2")
    data = streaming_wav_header(22050) + pcm.tobytes()
    info = sf.info(io.BytesIO(data))
    assert info.samplerate == 22050 and info.channels == 1
