"""Faults on the real loopback server: a client vanishing mid-utterance, readers that are slow or stop,
an engine failure in one session, a damaged model cache at start-up, SIGTERM while streaming.
Each fault stays with the client or session that caused it; the others keep their captions.

Audio device missing: tests/test_io_devices.py::test_no_sound_card_gives_a_clear_device_error and
::test_missing_portaudio_gives_a_clear_device_error. Damaged cache rebuilt by `fetch`:
tests/test_modelstore.py::test_truncated_file_is_detected_and_rebuilt.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from reliability_support import (
    CLIP,
    LIMITS,
    POISON,
    RawWebSocket,
    caption_clip,
    error_codes,
    finals_text,
    metric,
    no_sessions_left,
    wer,
)

from rtaudio.io.files import read_audio
from rtaudio.modelstore.cache import cache_root
from rtaudio.server.background import BackgroundServer
from rtaudio.server.client import CaptionEvent, ServerEvent, StreamClient
from rtaudio.stt.textnorm import normalize_english

pytestmark = pytest.mark.slow


async def wait_until(predicate, timeout_s: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def test_client_vanishes_mid_utterance_then_reconnects(reliability_server: BackgroundServer, speech_dir: Path,
                                                        speech_manifest: dict[str, str]) -> None:
    srv = reliability_server
    server = srv.server
    assert server is not None
    audio, rate = read_audio(speech_dir / CLIP)

    async def run() -> list[CaptionEvent]:
        url = srv.ws_url + "/v1/stream"
        client = await StreamClient.connect(url, {"audio": {"sample_rate_hz": rate}})
        await client.stream_audio(audio[: len(audio) // 2], realtime=False)
        await asyncio.sleep(0.3)  # mid-utterance: the server is decoding it
        client.ws.transport.abort()  # no close frame, no audio.end: the network just went away
        assert await wait_until(lambda: not server.sessions, 10), "the dead session was not cleaned up"
        return await caption_clip(url, audio, rate, realtime=False)  # the same client, back again

    events = asyncio.run(run())
    assert wer(speech_manifest[CLIP], finals_text(events)) < 30, finals_text(events)
    assert no_sessions_left(server)


def test_slow_and_stalled_readers_are_closed_and_others_go_on(reliability_server: BackgroundServer,
                                                               speech_dir: Path,
                                                               speech_manifest: dict[str, str]) -> None:
    """Two clients that stop reading while asking for output (a pong echoes a ping's 60 kB id): one keeps
    sending and overflows its outbox (told over_capacity if it ever reads, and closed); the other goes
    quiet once its output backs up past the kernel's socket buffers (up to 4 MB here) into the server's
    queue, and is dropped after the idle time. Server-side queued bytes stay bounded the whole time."""
    srv = reliability_server
    server = srv.server
    assert server is not None
    audio, rate = read_audio(speech_dir / CLIP)
    ping = json.dumps({"type": "ping", "id": "x" * 60_000})
    peak = {"bytes": 0}
    slow_drops = metric(srv.url, 'rtaudio_dropped_total{kind="slow_consumer"}')

    async def greedy() -> tuple[int | None, list[str]]:
        ws = await RawWebSocket.connect(srv.ws_url + "/v1/stream", rcvbuf=4096)
        await ws.send(json.dumps({"type": "session.start"}))
        for _ in range(160):  # 9.6 MB asked for, more than the kernel buffers and the outbox hold
            try:
                await asyncio.wait_for(ws.send(ping), 10)
            except (ConnectionError, OSError, asyncio.TimeoutError):
                break
            await asyncio.sleep(0.01)
        code, messages = await ws.read_until_closed(20)
        return code, error_codes(messages)

    async def stalled() -> tuple[int | None, float]:
        await asyncio.sleep(0.5)
        before = set(server.sessions)
        ws = await RawWebSocket.connect(srv.ws_url + "/v1/stream", rcvbuf=4096)
        await ws.send(json.dumps({"type": "session.start"}))
        assert await wait_until(lambda: set(server.sessions) - before, 5)
        (mine,) = set(server.sessions) - before
        while server.sessions[mine].outbox.queued_bytes == 0:  # until output waits in the server itself
            await ws.send(ping)
            await asyncio.sleep(0.03)
        t0 = time.monotonic()
        assert await wait_until(lambda: mine not in server.sessions, LIMITS.idle_timeout_s + 5), "never dropped"
        took = time.monotonic() - t0
        code, _ = await ws.read_until_closed(20)
        return code, took

    async def watch(stop: asyncio.Event) -> None:
        while not stop.is_set():
            for s in list(server.sessions.values()):
                peak["bytes"] = max(peak["bytes"], s.outbox.queued_bytes)
            await asyncio.sleep(0.01)

    async def run() -> tuple:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        results = await asyncio.gather(greedy(), stalled(), caption_clip(srv.ws_url + "/v1/stream", audio, rate))
        stop.set()
        await watcher
        return results

    (code_a, errors_a), (code_b, took_b), events = asyncio.run(run())
    assert wer(speech_manifest[CLIP], finals_text(events)) < 30, finals_text(events)
    assert code_a in (1013, None) and (code_a is None or "over_capacity" in errors_a), (code_a, errors_a)
    assert code_b is None and LIMITS.idle_timeout_s - 1 < took_b < LIMITS.idle_timeout_s + 3, took_b
    assert peak["bytes"] <= LIMITS.outbound_max_bytes + 2 * len(ping)
    assert metric(srv.url, 'rtaudio_dropped_total{kind="slow_consumer"}') >= slow_drops + 2
    assert no_sessions_left(server)


def test_engine_failure_in_one_session_spares_the_others(reliability_server: BackgroundServer, speech_dir: Path,
                                                         speech_manifest: dict[str, str]) -> None:
    srv = reliability_server
    assert srv.server is not None
    audio, rate = read_audio(speech_dir / CLIP, target_rate_hz=16000)
    poisoned = np.concatenate([audio[:16000], np.full(3200, POISON, np.float32), audio[16000:]])

    async def victim() -> tuple[list[ServerEvent], int | None]:
        async with await StreamClient.connect(srv.ws_url + "/v1/stream", {"audio": {"sample_rate_hz": 16000}}) as c:
            sender = asyncio.create_task(c.stream_audio(poisoned, realtime=True))
            events = [e async for e in c if isinstance(e, ServerEvent) and e.type == "error"]
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            return events, c.ws.close_code

    async def run() -> tuple:
        return await asyncio.gather(victim(), caption_clip(srv.ws_url + "/v1/stream", audio, 16000))

    (errors_seen, code), events = asyncio.run(run())
    assert [(e.data["code"], e.data["fatal"]) for e in errors_seen] == [("internal_error", True)]
    assert errors_seen[0].data["message"] == "internal server error"  # no internals leak to the client
    assert code == 1011
    assert wer(speech_manifest[CLIP], finals_text(events)) < 30, finals_text(events)
    later = asyncio.run(caption_clip(srv.ws_url + "/v1/stream", audio[:32000], 16000, realtime=False))
    assert finals_text(later), "a new session after the failure must work"


def _serve(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "rtaudio.cli", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_damaged_model_cache_at_startup_is_a_clear_error(tmp_path: Path) -> None:
    """A truncated model file is detected at start-up; with no package index to rebuild it from, the
    server stops at once with one clear message saying how to fix it (no traceback, no half start)."""
    real = cache_root() / "models"
    if not (real / "silero-vad" / "manifest.json").exists():
        pytest.skip(f"no fetched models in {real}")
    models = tmp_path / "models"
    models.mkdir()
    for name in ("whisper-tiny.en", "piper-joe"):
        (models / name).symlink_to(real / name)
    shutil.copytree(real / "silero-vad", models / "silero-vad")
    with open(models / "silero-vad" / "raw" / "silero_vad.onnx", "r+b") as f:
        f.truncate(4096)
    env = {**os.environ, "RTAUDIO_HOME": str(tmp_path), "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_FIND_LINKS": "", "PIP_NO_INPUT": "1"}
    proc = _serve(_free_port(), env)
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "silero-vad" in stderr and "rtaudio models fetch --from" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert (models / "silero-vad" / "raw" / "silero_vad.onnx").stat().st_size == 4096  # never used as if fine


def test_sigterm_while_streaming_flushes_finals_and_exits_cleanly(speech_dir: Path) -> None:
    audio, rate = read_audio(speech_dir / CLIP)
    port = _free_port()
    proc = _serve(port, dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not come up"
                time.sleep(0.3)

        async def run() -> tuple[list[CaptionEvent], int | None]:
            async with await StreamClient.connect(f"ws://127.0.0.1:{port}/v1/stream",
                                                  {"audio": {"sample_rate_hz": rate}}) as c:
                await c.stream_audio(audio[: int(3.2 * rate)], realtime=False)  # stop mid-sentence
                await asyncio.sleep(0.3)
                proc.send_signal(signal.SIGTERM)
                events = [e async for e in c if isinstance(e, CaptionEvent)]
                return events, c.ws.close_code

        events, code = asyncio.run(run())
        returncode = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    finals = [e for e in events if e.caption.is_final and e.caption.text]
    assert finals and "lower" in normalize_english(finals_text(events)), [e.caption.text for e in events]
    assert code == 1001 and returncode == 0, (code, returncode, stderr[-2000:])
    assert "Traceback" not in stderr
