"""The real server on loopback with the real models and real speech: captions, speech, isolation, auth, limits."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jiwer
import numpy as np
import pytest
import websockets

from rtaudio.errors import AuthError, ProtocolError
from rtaudio.io.files import read_audio
from rtaudio.server.background import BackgroundServer
from rtaudio.server.client import CaptionEvent, ServerEvent, SpeechAudio, StreamClient
from rtaudio.server.config import ServerConfig, ServerLimits
from rtaudio.stt.textnorm import normalize_english

pytestmark = pytest.mark.slow

TOKEN = "test-token-1234"
# Six utterances of four corpora with pauses between them, as live speech comes: 28 s, 64 words.
WER_CLIPS = ("ljspeech_LJ001-0020.flac", "librispeech_3752-4944-0002.flac", "vctk_p238_165.flac",
             "ljspeech_LJ049-0185.flac", "librispeech_2412-153948-0002.flac", "vctk_p301_410.flac")
CLIP_A = "ljspeech_LJ001-0020.flac"  # "the lower-case being in fact invented in the early Middle Ages."
CLIP_B = "librispeech_1988-24833-0000.flac"


def wer(ref: str, hyp: str) -> float:
    return 100.0 * jiwer.wer(normalize_english(ref), normalize_english(hyp) or "<empty>")


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    limits = ServerLimits(max_message_bytes=256 * 1024, idle_timeout_s=5.0)
    with BackgroundServer(ServerConfig(port=0, token=TOKEN, decode_workers=2, limits=limits,
                                       shutdown_grace_s=5.0)) as srv:
        yield srv


def url(srv: BackgroundServer) -> str:
    return srv.ws_url + "/v1/stream"


def load(speech_dir: Path, name: str, rate: int | None = None) -> tuple[np.ndarray, int]:
    return read_audio(speech_dir / name, target_rate_hz=rate)


async def caption(srv: BackgroundServer, audio: np.ndarray, rate: int, realtime: bool = False,
                  config: dict | None = None) -> list[CaptionEvent]:
    cfg = {"audio": {"sample_rate_hz": rate}, **(config or {})}
    async with await StreamClient.connect(url(srv), cfg, token=TOKEN) as client:
        async def send() -> None:
            await client.stream_audio(audio, chunk_ms=100 if not realtime else 20, realtime=realtime)
            await client.end_audio()

        sender = asyncio.create_task(send())
        events = await client.captions_until_ended(timeout_s=120)
        await sender
        return events


def finals_text(events: list[CaptionEvent]) -> str:
    return " ".join(e.caption.text for e in events if e.caption.is_final and e.caption.text)


def test_captions_match_offline_transcript(server: BackgroundServer, speech_dir: Path,
                                           speech_manifest: dict[str, str]) -> None:
    pause = np.zeros(12800, np.float32)
    audio = np.concatenate([x for name in WER_CLIPS for x in (load(speech_dir, name, 16000)[0], pause)])
    reference = " ".join(speech_manifest[n] for n in WER_CLIPS)
    events = asyncio.run(caption(server, audio, 16000))
    served = finals_text(events)
    assert server.server is not None
    offline = server.server.hub.recognizer("whisper-tiny.en").transcribe(audio).text
    print(f"\nWER served captions {wer(reference, served):.1f}, offline transcript {wer(reference, offline):.1f}")
    assert wer(reference, served) <= wer(reference, offline) + 1.0, (served, offline)
    partials = [e for e in events if not e.caption.is_final]
    assert partials and all(e.data["server_latency_ms"] >= 0 for e in events)
    ends = [e.caption.end_s for e in events if e.caption.is_final and e.caption.text]
    assert ends == sorted(ends) and ends[-1] <= len(audio) / 16000 + 0.1  # stream times, in order
    words = [w for e in events if e.caption.is_final for w in e.caption.words]
    assert words and all(0 <= w.start_s <= w.end_s for w in words)


def test_two_clients_at_once_get_their_own_captions(server: BackgroundServer, speech_dir: Path,
                                                    speech_manifest: dict[str, str]) -> None:
    a, rate_a = load(speech_dir, CLIP_A)
    b, rate_b = load(speech_dir, CLIP_B, 48000)

    async def both() -> tuple[list[CaptionEvent], list[CaptionEvent]]:
        return await asyncio.gather(caption(server, a, rate_a, realtime=True),  # type: ignore[return-value]
                                    caption(server, b, rate_b, realtime=True, config={"audio": {
                                        "sample_rate_hz": 48000, "encoding": "pcm_f32le"}}))

    events_a, events_b = asyncio.run(both())
    text_a, text_b = finals_text(events_a), finals_text(events_b)
    assert wer(speech_manifest[CLIP_A], text_a) < 30, text_a
    assert wer(speech_manifest[CLIP_B], text_b) < 30, text_b
    assert "middle" not in normalize_english(text_b) and "middle" in normalize_english(text_a)
    lat = [e.latency_ms for e in events_a + events_b if not e.caption.is_final and e.latency_ms is not None]
    assert lat and float(np.median(lat)) < 5000


def test_speech_arrives_in_chunks(server: BackgroundServer) -> None:
    async def run() -> tuple[np.ndarray, int, list[float]]:
        async with await StreamClient.connect(url(server), {}, token=TOKEN) as client:
            return await client.say("The quick brown fox jumps over the lazy dog. Then it runs far away, "
                                    "into the quiet green forest.")

    samples, rate, arrivals = asyncio.run(run())
    assert rate == 22050 and len(samples) / rate > 2.0
    assert len(arrivals) >= 2 and arrivals[0] < arrivals[-1]
    assert np.abs(samples).max() > 0.05  # really speech, not silence


def test_speech_cancel_and_bad_text(server: BackgroundServer) -> None:
    async def run() -> list:
        async with await StreamClient.connect(url(server), {"tts": {"sample_rate_hz": 16000}}, token=TOKEN) as c:
            await c.speak("   ", request_id="empty")
            rid = await c.speak("This is a long sentence that will be cancelled. " * 6, request_id="long")
            await c.cancel_speech(rid)
            events = []
            async with asyncio.timeout(60):
                while not any(isinstance(e, ServerEvent) and e.type in ("tts.cancelled", "tts.done")
                              for e in events):
                    events.append(await c.recv())
            return events

    events = asyncio.run(run())
    errors = [e for e in events if isinstance(e, ServerEvent) and e.type == "error"]
    assert errors and errors[0].data["code"] == "bad_text" and errors[0].data["id"] == "empty"
    assert any(isinstance(e, ServerEvent) and e.type == "tts.cancelled" for e in events)
    audio = [e for e in events if isinstance(e, SpeechAudio)]
    assert all(e.sample_rate_hz == 16000 for e in audio)


def test_a_client_that_stops_reading_harms_no_one(server: BackgroundServer, speech_dir: Path,
                                                  speech_manifest: dict[str, str]) -> None:
    audio, rate = load(speech_dir, CLIP_A)
    story = "A long story is told slowly, sentence after sentence, to a listener who does not listen. " * 2

    async def slow_reader() -> tuple[float, int]:
        async with await StreamClient.connect(url(server), {"tts": {"encoding": "pcm_f32le"}}, token=TOKEN) as c:
            await c.speak(story, request_id="story")
            await asyncio.sleep(3.0)  # reads nothing while the other client is captioned
            samples, chunks = 0, 0
            async with asyncio.timeout(120):
                while True:
                    event = await c.recv()
                    if isinstance(event, SpeechAudio):
                        samples, chunks = samples + len(event.samples), chunks + 1
                    elif isinstance(event, ServerEvent) and event.type == "tts.done":
                        assert event.data["chunks"] == chunks  # nothing lost while it did not read
                        return samples / 22050, chunks

    async def run() -> tuple:
        return await asyncio.gather(slow_reader(), caption(server, audio, rate, realtime=True))

    (speech_s, chunks), events = asyncio.run(run())
    assert speech_s > 8 and chunks > 5
    assert wer(speech_manifest[CLIP_A], finals_text(events)) < 30
    lat = [e.latency_ms for e in events if not e.caption.is_final and e.latency_ms is not None]
    assert lat and float(np.median(lat)) < 5000


def test_unauthenticated_client_is_refused(server: BackgroundServer) -> None:
    for token in (None, "wrong-token-000"):
        with pytest.raises(AuthError):
            asyncio.run(StreamClient.connect(url(server), {}, token=token))
    req = urllib.request.Request(server.url + "/v1/audio/speech", data=b'{"input": "hi"}', method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401
    health = json.loads(urllib.request.urlopen(server.url + "/healthz", timeout=10).read())
    assert health["status"] == "ok"  # health and metrics stay open


def test_misbehaving_client_does_not_disturb_others(server: BackgroundServer, speech_dir: Path,
                                                    speech_manifest: dict[str, str]) -> None:
    audio, rate = load(speech_dir, CLIP_A)

    async def vandal() -> tuple[int | None, list[str]]:
        codes = []
        async with websockets.connect(url(server) + f"?token={TOKEN}", max_size=None) as ws:
            await ws.send(json.dumps({"type": "session.start", "config": {"audio": {"sample_rate_hz": 8000}}}))
            for junk in (b"\x01\x02\x03", "{not json", json.dumps({"type": "fly"})):
                await ws.send(junk)
            await ws.send(b"\x00" * (300 * 1024))  # over max_message_bytes
            try:
                async for m in ws:
                    if isinstance(m, str):
                        codes.append(json.loads(m).get("code", json.loads(m)["type"]))
            except websockets.ConnectionClosed:
                pass
            return ws.close_code, codes

    async def quitter() -> None:  # leaves mid-utterance without a word
        async with await StreamClient.connect(url(server), {"audio": {"sample_rate_hz": rate}}, token=TOKEN) as c:
            await c.stream_audio(audio[: len(audio) // 2], realtime=False)
            await c.ws.transport.abort()  # type: ignore[func-returns-value]

    async def run() -> tuple:
        return await asyncio.gather(caption(server, audio, rate, realtime=True), vandal(),
                                    quitter(), return_exceptions=True)

    good, (close_code, codes), _ = asyncio.run(run())
    assert not isinstance(good, BaseException), good
    assert wer(speech_manifest[CLIP_A], finals_text(good)) < 30
    errors = [c for c in codes if c != "session.started"]
    assert close_code == 1009 and errors == ["bad_audio", "protocol_error", "protocol_error", "message_too_large"]
    metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
    assert 'rtaudio_errors_total{code="message_too_large"}' in metrics


def test_idle_session_is_closed(server: BackgroundServer) -> None:
    async def run() -> tuple[int | None, str]:
        async with await StreamClient.connect(url(server), {}, token=TOKEN) as c:
            async with asyncio.timeout(20):
                async for event in c:
                    if isinstance(event, ServerEvent) and event.type == "error":
                        last = event.data["message"]
            return c.ws.close_code, last

    code, message = asyncio.run(run())
    assert code == 1001 and "idle" in message


def test_graceful_shutdown_flushes_finals(speech_dir: Path) -> None:
    audio, rate = load(speech_dir, CLIP_A)
    with BackgroundServer(ServerConfig(port=0, decode_workers=1, preload_voice=False)) as srv:
        async def run() -> tuple[list[CaptionEvent], int | None]:
            async with await StreamClient.connect(srv.ws_url + "/v1/stream", {"audio": {"sample_rate_hz": rate}}) as c:
                await c.stream_audio(audio[: int(3.2 * rate)], realtime=False)  # stop mid-sentence
                await asyncio.sleep(0.5)
                loop = asyncio.get_running_loop()
                assert srv.server is not None
                stopping = loop.run_in_executor(None, srv.call, srv.server.shutdown(), 30)
                events = [e async for e in c if isinstance(e, CaptionEvent)]
                await stopping
                return events, c.ws.close_code

        events, code = asyncio.run(run())
    finals = [e for e in events if e.caption.is_final and e.caption.text]
    assert code == 1001 and finals
    assert "lower" in normalize_english(finals_text(events))


def test_unknown_model_is_refused_with_stable_code(server: BackgroundServer) -> None:
    with pytest.raises(Exception) as e:
        asyncio.run(StreamClient.connect(url(server), {"model": "whisper-huge"}, token=TOKEN))
    assert getattr(e.value, "code", "") == "unknown_model"
    with pytest.raises(ProtocolError):
        asyncio.run(StreamClient.connect(server.ws_url + "/nowhere", {}, token=TOKEN))


def test_a_session_that_names_no_model_gets_the_servers_first() -> None:
    """A server of whisper-base only: a client that names no model is served base (it was refused with
    "whisper-tiny.en is not served here"), one that names tiny.en is refused, on every protocol."""
    async def started(srv: BackgroundServer, config: dict) -> str:
        async with await StreamClient.connect(url(srv), config) as client:
            return str(client.session["config"]["model"])

    async def deepgram(srv: BackgroundServer) -> dict:
        async with websockets.connect(srv.ws_url + "/v1/listen?encoding=linear16&sample_rate=16000") as ws:
            await ws.send(json.dumps({"type": "CloseStream"}))
            return dict(json.loads(await asyncio.wait_for(ws.recv(), 30)))

    with BackgroundServer(ServerConfig(port=0, models=("whisper-base",), preload_voice=False)) as srv:
        assert asyncio.run(started(srv, {})) == "whisper-base"
        with pytest.raises(Exception) as e:
            asyncio.run(started(srv, {"model": "whisper-tiny.en"}))
        assert getattr(e.value, "code", "") == "unknown_model"
        metadata = asyncio.run(deepgram(srv))
        assert metadata.get("type") == "Metadata" and "error" not in json.dumps(metadata).lower(), metadata


def test_tls_and_session_limit(tmp_path: Path) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: cannot make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    config = ServerConfig(port=0, tls_certfile=str(cert), tls_keyfile=str(key), preload_voice=False,
                          limits=ServerLimits(max_sessions=1))
    with BackgroundServer(config) as srv:
        assert srv.url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))

        async def run() -> tuple[str, str]:
            async with websockets.connect(srv.url.replace("https", "wss", 1) + "/v1/stream", ssl=ctx) as ws:
                await ws.send(json.dumps({"type": "session.start"}))
                started = json.loads(await ws.recv())["type"]
                try:  # a second session is over the limit of one
                    async with websockets.connect(srv.url.replace("https", "wss", 1) + "/v1/stream", ssl=ctx):
                        pass
                    refused = "not refused"
                except websockets.InvalidStatus as e:
                    refused = f"{e.response.status_code} {e.response.body.decode().strip()}"
                return started, refused

        started, refused = asyncio.run(run())
        health = json.loads(urllib.request.urlopen(srv.url + "/healthz", context=ctx, timeout=10).read())
    assert started == "session.started" and refused.startswith("503 over_capacity")
    assert health["status"] == "ok"


def test_foreign_web_pages_are_refused(server: BackgroundServer) -> None:
    async def connect(origin: str) -> str:
        try:
            async with websockets.connect(url(server) + f"?token={TOKEN}", origin=origin):  # type: ignore[arg-type]
                return "open"
        except websockets.InvalidStatus as e:
            return str(e.response.status_code)

    own = server.url  # the page the server itself serves
    assert asyncio.run(connect(own)) == "open"
    assert asyncio.run(connect("https://evil.example")) == "403"
