"""Compatibility endpoints on the real server, checked with the published event shapes:
OpenAI Realtime-style transcription (/v1/realtime), Deepgram-style /v1/listen, and the OpenAI-style
POST /v1/audio/speech and /v1/audio/transcriptions."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import websockets

from rtaudio.io.files import read_audio
from rtaudio.server.background import BackgroundServer
from rtaudio.server.config import ServerConfig
from rtaudio.stt.textnorm import normalize_english

pytestmark = pytest.mark.slow

TOKEN = "compat-token-42"
CLIP = "ljspeech_LJ001-0020.flac"  # "the lower-case being in fact invented in the early Middle Ages."


@pytest.fixture(scope="module")
def server() -> Iterator[BackgroundServer]:
    with BackgroundServer(ServerConfig(port=0, token=TOKEN, decode_workers=2)) as srv:
        yield srv


def words_ok(reference: str, text: str, share: float = 0.7) -> bool:
    ref, got = set(normalize_english(reference).split()), set(normalize_english(text).split())
    return len(ref & got) >= share * len(ref)


# -- OpenAI Realtime -------------------------------------------------------------------------------------
async def realtime_session(srv: BackgroundServer, audio: np.ndarray, turn_detection: Any) -> list[dict]:
    events: list[dict] = []
    subprotocols = ["realtime", f"openai-insecure-api-key.{TOKEN}"]
    async with websockets.connect(srv.ws_url + "/v1/realtime", subprotocols=subprotocols) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "realtime"
        events.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "gpt-4o-transcribe"},
            "turn_detection": turn_detection}}}}))
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
        for i in range(0, len(pcm), 2400):  # 100 ms appends
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[i:i + 2400].tobytes()).decode()}))
        if turn_detection is None:
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        async with asyncio.timeout(60):
            while not events or events[-1]["type"] != "conversation.item.input_audio_transcription.completed":
                events.append(json.loads(await ws.recv()))
    return events


def test_openai_realtime_server_vad(server: BackgroundServer, speech_dir: Path, speech_manifest: dict[str, str]) -> None:
    audio, _ = read_audio(speech_dir / CLIP, target_rate_hz=24000)
    audio = np.concatenate([audio, np.zeros(24000, np.float32)])  # a second of silence ends the turn
    events = asyncio.run(realtime_session(server, audio, {"type": "server_vad", "silence_duration_ms": 500}))
    kinds = [e["type"] for e in events]
    assert kinds[0] == "session.created" and "session.updated" in kinds
    order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
             "input_audio_buffer.committed", "conversation.item.input_audio_transcription.completed"]
    assert [k for k in kinds if k in order] == order
    done = events[-1]
    item = done["item_id"]
    assert all(e.get("item_id") == item for e in events if e["type"] in order)
    assert words_ok(speech_manifest[CLIP], done["transcript"]), done["transcript"]
    deltas = "".join(e["delta"] for e in events if e["type"].endswith(".delta"))
    assert deltas and done["transcript"].startswith(deltas.strip()[:10])
    assert all(e["event_id"] for e in events)


def test_openai_realtime_manual_commit(server: BackgroundServer, speech_dir: Path,
                                       speech_manifest: dict[str, str]) -> None:
    audio, _ = read_audio(speech_dir / CLIP, target_rate_hz=24000)
    events = asyncio.run(realtime_session(server, audio, None))
    assert [e for e in events if e["type"] == "input_audio_buffer.committed"]
    assert words_ok(speech_manifest[CLIP], events[-1]["transcript"])


# -- Deepgram ----------------------------------------------------------------------------------------------
def test_deepgram_listen(server: BackgroundServer, speech_dir: Path, speech_manifest: dict[str, str]) -> None:
    audio, _ = read_audio(speech_dir / CLIP, target_rate_hz=8000)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()

    async def run() -> tuple[list[dict], int | None]:
        query = "encoding=linear16&sample_rate=8000&channels=1&interim_results=true&vad_events=true&endpointing=400"
        headers = {"Authorization": f"Token {TOKEN}"}
        messages: list[dict] = []
        async with websockets.connect(f"{server.ws_url}/v1/listen?{query}", additional_headers=headers) as ws:
            for i in range(0, len(pcm), 1600):
                await ws.send(pcm[i:i + 1600])
            await ws.send(json.dumps({"type": "KeepAlive"}))
            await ws.send(json.dumps({"type": "CloseStream"}))
            async for m in ws:
                messages.append(json.loads(m))
            return messages, ws.close_code

    messages, code = asyncio.run(run())
    assert code == 1000 and messages[-1]["type"] == "Metadata"
    assert abs(messages[-1]["duration"] - len(audio) / 8000) < 0.05
    results = [m for m in messages if m["type"] == "Results"]
    finals = [r for r in results if r["is_final"]]
    assert any(not r["is_final"] for r in results) and finals
    text = " ".join(r["channel"]["alternatives"][0]["transcript"] for r in finals)
    assert words_ok(speech_manifest[CLIP], text), text
    w = finals[0]["channel"]["alternatives"][0]["words"][0]
    assert set(w) == {"word", "start", "end", "confidence", "punctuated_word"} and 0 <= w["start"] <= w["end"]
    assert any(m["type"] == "SpeechStarted" for m in messages)


def test_deepgram_refuses_without_token(server: BackgroundServer) -> None:
    async def run() -> None:
        async with websockets.connect(server.ws_url + "/v1/listen"):
            pass

    with pytest.raises(websockets.InvalidStatus) as e:
        asyncio.run(run())
    assert e.value.response.status_code == 401


# -- OpenAI HTTP ---------------------------------------------------------------------------------------------
def post(srv: BackgroundServer, path: str, body: bytes, content_type: str) -> tuple[int, str, bytes]:
    req = urllib.request.Request(srv.url + path, data=body, method="POST", headers={
        "Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def test_openai_speech_streams_wav_pcm_and_sse(server: BackgroundServer) -> None:
    text = "Streaming speech from the server, one chunk at a time."
    status, ctype, body = post(server, "/v1/audio/speech", json.dumps(
        {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav"}).encode(), "application/json")
    assert status == 200 and ctype == "audio/wav"
    audio, rate = sf.read(io.BytesIO(body), dtype="float32")
    assert rate == 22050 and len(audio) / rate > 1.5 and np.abs(audio).max() > 0.05
    status, ctype, pcm = post(server, "/v1/audio/speech", json.dumps(
        {"input": text, "response_format": "pcm", "speed": 1.5}).encode(), "application/json")
    assert status == 200 and ctype == "audio/pcm" and len(pcm) % 2 == 0
    assert len(pcm) / 2 / 24000 < len(audio) / rate  # 24 kHz int16, and faster
    status, ctype, sse = post(server, "/v1/audio/speech", json.dumps(
        {"input": text, "response_format": "pcm", "stream_format": "sse"}).encode(), "application/json")
    events = [json.loads(line[6:]) for line in sse.decode().splitlines() if line.startswith("data: ")]
    assert status == 200 and ctype == "text/event-stream"
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1) and len(events) > 2
    assert events[-1]["type"] == "speech.audio.done"
    status, _, err = post(server, "/v1/audio/speech", json.dumps({"input": text, "response_format": "mp3"}).encode(),
                          "application/json")
    assert status == 400 and json.loads(err)["error"]["code"] == "unsupported_format"
    status, _, err = post(server, "/v1/audio/speech", b"{nope", "application/json")
    assert status == 400 and json.loads(err)["error"]["code"] == "protocol_error"


def multipart(fields: dict[str, str], file_bytes: bytes, filename: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + file_bytes + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_openai_transcriptions_formats(server: BackgroundServer, speech_dir: Path,
                                       speech_manifest: dict[str, str]) -> None:
    data = (speech_dir / CLIP).read_bytes()
    out: dict[str, tuple[int, str, bytes]] = {}
    for fmt in ("json", "text", "srt", "vtt", "verbose_json"):
        body, ctype = multipart({"model": "whisper-1", "response_format": fmt, "timestamp_granularities[]": "word"},
                                data, CLIP)
        out[fmt] = post(server, "/v1/audio/transcriptions", body, ctype)
        assert out[fmt][0] == 200, out[fmt]
    text = json.loads(out["json"][2])["text"]
    assert words_ok(speech_manifest[CLIP], text, 0.9), text
    assert out["text"][2].decode().strip() == text.strip()
    srt, vtt = out["srt"][2].decode(), out["vtt"][2].decode()
    assert srt.startswith("1\n") and " --> " in srt and "," in srt.split(" --> ")[0]
    assert vtt.startswith("WEBVTT") and " --> " in vtt
    verbose = json.loads(out["verbose_json"][2])
    assert verbose["task"] == "transcribe" and abs(verbose["duration"] - 4.674) < 0.05
    assert verbose["segments"][0]["start"] >= 0 and verbose["words"][0]["word"]
    body, ctype = multipart({"response_format": "json"}, b"definitely not audio", "x.wav")
    status, _, err = post(server, "/v1/audio/transcriptions", body, ctype)
    assert status == 400 and json.loads(err)["error"]["code"] in ("bad_audio", "unsupported_format")
