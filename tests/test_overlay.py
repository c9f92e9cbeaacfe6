"""The OBS caption overlay over a real caption session: a real recording is published on a channel of the real
server (loopback), headless Chromium shows `/overlay`, and each word must reach the page within the latency
budget; the page reconnects by itself when the server restarts. Saves a screenshot to docs/overlay.png.
Also the caption broadcast itself over loopback websockets (no browser)."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import websockets
from test_browser import CHROMIUM, Cdp, _devtools_port

from rtaudio.errors import ConfigError
from rtaudio.io.files import read_audio
from rtaudio.server.app import Server
from rtaudio.server.client import CaptionEvent, ServerEvent, StreamClient
from rtaudio.server.config import ServerConfig
from rtaudio.stt.textnorm import normalize_english

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SPEECH = "jfk_inaugural_ask_not.flac"  # 11 s, pauses between phrases: several finals
AFTER_RESTART = "ljspeech_LJ001-0020.flac"  # "the lower-case being in fact invented in the early Middle Ages."
BUDGET_S = 1.5  # a caption never more than 1.5 s behind the speech (issue 14)
SLACK_S = 1.0  # scheduling on a small shared test machine (2 cores, other test runs)
PAGE_S = 0.25  # from the server sending a caption to the overlay showing it
CHANNEL = "test"


async def publish(ws_url: str, audio: np.ndarray, rate: int, realtime: bool) -> tuple[float, list[CaptionEvent]]:
    """Stream a recording as the channel's publisher; (wall time of its first sample, its caption events)."""
    async with await StreamClient.connect(ws_url, {"channel": CHANNEL, "audio": {"sample_rate_hz": rate}}) as client:
        events: list[CaptionEvent] = []

        async def receive() -> None:
            async for ev in client:
                if isinstance(ev, CaptionEvent):
                    events.append(ev)
                elif isinstance(ev, ServerEvent) and ev.type in ("audio.ended", "error"):
                    assert ev.type == "audio.ended", ev.data
                    return

        receiver = asyncio.create_task(receive())
        t0 = time.time()
        await client.stream_audio(audio, chunk_ms=20, realtime=realtime)
        await client.end_audio()
        await asyncio.wait_for(receiver, 60)
        return t0, events


def _norm(text: str) -> str:
    return normalize_english(text).strip()


def word_latencies(t0: float, finals: list[CaptionEvent], shown: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """For each word of the final captions: when it first showed on the page (as a partial or in its final),
    minus when it was spoken (wall time of the end of the word in the stream)."""
    out = []
    for final in finals:
        for w in final.data["words"]:
            key = _norm(w["text"])
            if not key:
                continue
            seen = [s["t_ms"] / 1000 for s in shown if s["segment_id"] == final.data["segment_id"]
                    and any(_norm(x["text"]) == key and abs(x["end_s"] - w["end_s"]) <= 1.0 for x in s["words"])]
            assert seen, (w, final.data["text"])  # at the latest it came with its own final
            out.append((key, round(min(seen) - (t0 + w["end_s"]), 3)))
    return out


async def _launch_chromium(profile: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--remote-debugging-port=0", "--window-size=1280,720", "--hide-scrollbars", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def _screenshot_when_partial_follows_final(cdp: Cdp, path: Path, stop: asyncio.Event) -> None:
    """The picture worth committing: two lines, finals and the italic partial after them."""
    both = ("document.querySelectorAll('.line').length === 2 && !!document.querySelector('.line span.partial')"
            " && !!document.querySelector('.line span:not(.partial)')")
    while not stop.is_set():
        if await cdp.js(both):
            break
        await asyncio.sleep(0.1)
    shot = await cdp.call("Page.captureScreenshot", format="png")
    path.write_bytes(base64.b64decode(shot["data"]))


async def _overlay_session(tmp_path: Path, speech_dir: Path) -> dict[str, Any]:
    audio, rate = read_audio(speech_dir / SPEECH)
    later, later_rate = read_audio(speech_dir / AFTER_RESTART)
    server = Server(ServerConfig(port=0, decode_workers=2, preload_voice=False))
    await server.start()
    port, servers = server.port, [server]
    proc = await _launch_chromium(tmp_path / "profile")
    try:
        devtools = await _devtools_port(tmp_path / "profile", proc)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{devtools}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=64 << 20) as ws:
            cdp = Cdp(ws)
            await cdp.call("Page.enable")
            await cdp.call("Emulation.setDeviceMetricsOverride", width=1280, height=720, deviceScaleFactor=1,
                           mobile=False)
            await cdp.call("Page.navigate", url=f"{server.url}/overlay?channel={CHANNEL}&bg=%23182030&clear=0")
            await cdp.wait_for("!!window.overlay && window.overlay.subscribed", 20)
            transparent = await cdp.js("getComputedStyle(document.body).backgroundColor")

            shot_path = REPO / "docs" / "overlay.png"
            shot_path.parent.mkdir(exist_ok=True)
            stop = asyncio.Event()
            shooter = asyncio.create_task(_screenshot_when_partial_follows_final(cdp, shot_path, stop))
            t0, events = await publish(server.url.replace("http", "ws", 1) + "/v1/stream", audio, rate, True)
            finals = [e for e in events if e.caption.is_final and e.caption.text.strip()]
            stop.set()
            await shooter  # before any other DevTools call: one caller at a time on that socket
            await cdp.wait_for(f"window.overlay.shown.filter(s => s.final && s.text.trim()).length >= {len(finals)}", 10)
            first = await cdp.js("""({shown: window.overlay.shown, errors: window.overlay.errors,
                lines: [...document.querySelectorAll('#captions .line')].map(l => l.innerText),
                italic: [...document.querySelectorAll('#captions .partial')].map(s => getComputedStyle(s).fontStyle)})""")

            # the server goes away and comes back on the same port: the page finds it again by itself
            await server.shutdown()
            await cdp.wait_for("!window.overlay.subscribed", 10)
            restarted = time.monotonic()
            server = Server(ServerConfig(port=port, decode_workers=2, preload_voice=False), hub=server.hub)
            await server.start()
            servers.append(server)
            await cdp.wait_for("window.overlay.subscribed && window.overlay.connects >= 2", 15)
            reconnect_s = time.monotonic() - restarted
            await publish(server.url.replace("http", "ws", 1) + "/v1/stream", later, later_rate, False)
            after = await cdp.wait_for("""window.overlay.shown.some(s => s.final && /middle ages/i.test(s.text))
                && document.getElementById('captions').innerText""", 20)
            return {"t0": t0, "finals": finals, "first": first, "after": after, "reconnect_s": reconnect_s,
                    "transparent": transparent}
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
        await servers[-1].shutdown()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (apt-get install -y chromium)")
def test_overlay_shows_live_words_within_budget_and_reconnects(tmp_path: Path, speech_dir: Path,
                                                               speech_manifest: dict[str, str]) -> None:
    r = asyncio.run(_overlay_session(tmp_path, speech_dir))
    first = r["first"]
    assert not first["errors"]
    said = set(_norm(" ".join(e.caption.text for e in r["finals"])).split())
    expected = set(_norm(speech_manifest[SPEECH]).split())
    assert len(said & expected) >= 0.7 * len(expected), (said, expected)
    # what the page shows: the last 2 lines of the stream, its end on the last line
    assert 1 <= len(first["lines"]) <= 2 and all(len(line) <= 42 for line in first["lines"])
    assert _norm(r["finals"][-1].caption.text).split()[-1] in _norm(first["lines"][-1])
    assert first["italic"] == []  # no partial left once the speech has ended
    words = word_latencies(r["t0"], r["finals"], first["shown"])
    lat = [x for _, x in words]
    assert len(lat) >= 10
    assert statistics.median(lat) <= BUDGET_S, words
    assert float(np.percentile(lat, 90)) <= BUDGET_S + SLACK_S, words
    assert max(lat) <= BUDGET_S + 2 * SLACK_S, words
    # the overlay's own share: server send (server_time_ms) to on screen
    page_s = [(s["t_ms"] - s["sent_ms"]) / 1000 for s in first["shown"]]
    assert max(page_s) <= PAGE_S, sorted(page_s)[-5:]
    # finals: the segment's caption is on the page within the budget after its last word
    for final in r["finals"]:
        shown_at = min(s["t_ms"] / 1000 for s in first["shown"]
                       if s["final"] and s["segment_id"] == final.data["segment_id"])
        assert shown_at - (r["t0"] + final.data["end_s"]) <= BUDGET_S + SLACK_S, final.data["text"]
    partial_lines = [s for s in first["shown"] if not s["final"]]
    assert partial_lines, "no partial captions reached the page"
    assert r["transparent"] == "rgba(0, 0, 0, 0)"
    assert r["reconnect_s"] < 8.0
    assert "middle ages" in _norm(r["after"])
    assert (REPO / "docs" / "overlay.png").stat().st_size > 5000


async def _broadcast_session(speech_dir: Path) -> dict[str, Any]:
    audio, rate = read_audio(speech_dir / AFTER_RESTART)
    server = Server(ServerConfig(port=0, decode_workers=1, preload_voice=False))
    await server.start()
    ws_url = server.url.replace("http", "ws", 1) + "/v1/stream"
    try:
        async with websockets.connect(ws_url) as viewer:
            await viewer.send(json.dumps({"type": "captions.subscribe", "channel": CHANNEL}))
            subscribed = json.loads(await viewer.recv())
            _, published = await publish(ws_url, audio, rate, realtime=False)
            seen: list[dict[str, Any]] = []
            while len(seen) < len(published):
                seen.append(json.loads(await asyncio.wait_for(viewer.recv(), 10)))
            await viewer.send(b"\x00\x00")  # a viewer sending audio: an error, the server goes on
            refused = json.loads(await asyncio.wait_for(viewer.recv(), 10))
            async with websockets.connect(ws_url) as late:
                await late.send(json.dumps({"type": "captions.subscribe", "channel": CHANNEL}))
                n_finals = sum(1 for e in published if e.caption.is_final and e.caption.text.strip())
                late_msgs = [json.loads(await asyncio.wait_for(late.recv(), 10)) for _ in range(1 + n_finals)]
            # a second publisher may not take over a channel that has one
            async with await StreamClient.connect(ws_url, {"channel": CHANNEL}):
                with pytest.raises(ConfigError, match="already has a publisher"):
                    await StreamClient.connect(ws_url, {"channel": CHANNEL})
        return {"subscribed": subscribed, "published": [e.data for e in published], "seen": seen,
                "refused": refused, "late": late_msgs}
    finally:
        await server.shutdown()


def test_broadcast_viewers_get_the_publishers_captions(speech_dir: Path) -> None:
    r = asyncio.run(_broadcast_session(speech_dir))
    assert r["subscribed"]["type"] == "captions.subscribed" and r["subscribed"]["channel"] == CHANNEL
    strip = ("server_time_ms",)
    assert [{k: v for k, v in m.items() if k not in strip} for m in r["seen"]] == \
        [{k: v for k, v in m.items() if k not in strip} for m in r["published"]]
    assert any(m["is_final"] and "middle ages" in _norm(m["text"]) for m in r["seen"])
    assert (r["refused"]["type"], r["refused"]["code"], r["refused"]["fatal"]) == ("error", "protocol_error", False)
    # a viewer joining later first gets the channel's recent finals (here: all of them)
    assert r["late"][0]["type"] == "captions.subscribed"
    finals = [m["text"] for m in r["published"] if m["is_final"] and m["text"].strip()]
    assert [m["text"] for m in r["late"][1:]] == finals and all(m["is_final"] for m in r["late"][1:])
