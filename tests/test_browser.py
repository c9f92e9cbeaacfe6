"""End to end in real headless Chromium: fake microphone (a real recording) -> page -> server -> captions;
text -> server voice -> audio chunks played by the page. Driven over the DevTools protocol with `websockets`.
Saves a screenshot to docs/browser.png.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets

from rtaudio.io.files import read_audio, write_audio
from rtaudio.server.app import Server
from rtaudio.server.config import ServerConfig
from rtaudio.stt.textnorm import normalize_english

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CLIP = "ljspeech_LJ001-0020.flac"  # "the lower-case being in fact invented in the early Middle Ages."


class Cdp:
    """Minimal DevTools protocol client: one page target, request/response by id."""

    def __init__(self, ws: Any) -> None:
        self.ws, self._id = ws, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        await self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]  # type: ignore[no-any-return]

    async def js(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float) -> Any:
        async with asyncio.timeout(timeout_s):
            while not (value := await self.js(expression)):
                await asyncio.sleep(0.25)
            return value


async def _devtools_port(profile: Path, proc: asyncio.subprocess.Process) -> int:
    marker = profile / "DevToolsActivePort"
    async with asyncio.timeout(30):
        while not marker.exists() or not marker.read_text().strip():
            if proc.returncode is not None:
                raise RuntimeError("chromium exited early")
            await asyncio.sleep(0.1)
    return int(marker.read_text().split()[0])


async def _run(tmp_path: Path, wav: Path) -> dict[str, Any]:
    server = Server(ServerConfig(port=0, decode_workers=2))
    await server.start()
    profile = tmp_path / "profile"
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop", "--autoplay-policy=no-user-gesture-required",
        "--remote-debugging-port=0", "--window-size=1000,760", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        port = await _devtools_port(profile, proc)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=64 << 20) as ws:
            cdp = Cdp(ws)
            await cdp.call("Page.enable")
            await cdp.call("Page.navigate", url=server.url + "/")
            await cdp.wait_for("document.readyState === 'complete' && !!window.rtaudio", 20)
            await cdp.js("document.getElementById('mic').click()")
            # captions of the recording: a final with text, after the clip (~4.7 s) and its endpoint
            await cdp.wait_for("window.rtaudio.finals.length > 0 && window.rtaudio.latencies.length > 0", 60)
            await cdp.js("document.getElementById('stop').click()")
            await cdp.wait_for("window.rtaudio.ended === true", 30)
            await cdp.js("document.getElementById('text').value = 'Captions and speech from one small server.'")
            await cdp.js("document.getElementById('say').click()")
            await cdp.wait_for("window.rtaudio.tts.done.length > 0", 60)
            result = await cdp.js("""({finals: window.rtaudio.finals.map(f => f.text).join(' '),
                latencies: window.rtaudio.latencies, errors: window.rtaudio.errors, tts: window.rtaudio.tts.done[0],
                ttsChunks: window.rtaudio.tts.chunks, vtt: window.rtaudioVtt(),
                shown: document.getElementById('finals').innerText, status: document.getElementById('status').innerText,
                latencyText: document.getElementById('lat-p50').innerText})""")
            shot = await cdp.call("Page.captureScreenshot", format="png")
            (REPO / "docs").mkdir(exist_ok=True)
            (REPO / "docs" / "browser.png").write_bytes(base64.b64decode(shot["data"]))
            return result  # type: ignore[no-any-return]
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
        await server.shutdown()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (apt-get install -y chromium)")
def test_browser_page_captions_microphone_and_speaks(tmp_path: Path, speech_dir: Path,
                                                     speech_manifest: dict[str, str]) -> None:
    audio, rate = read_audio(speech_dir / CLIP)
    wav = tmp_path / "mic.wav"
    write_audio(wav, audio, rate)  # a real recording, as WAV, is the fake microphone
    result = asyncio.run(_run(tmp_path, wav))
    said = set(normalize_english(result["finals"]).split())
    expected = set(normalize_english(speech_manifest[CLIP]).split())
    assert len(said & expected) >= 0.7 * len(expected), (result["finals"], speech_manifest[CLIP])
    assert "middle ages" in normalize_english(result["shown"])  # the captions are on the page
    assert result["vtt"].startswith("WEBVTT") and "-->" in result["vtt"]
    assert result["latencies"] and all(0 < x < 10000 for x in result["latencies"])
    assert result["latencyText"] not in ("", "–")
    assert result["tts"]["chunks"] >= 2 and result["ttsChunks"] == result["tts"]["chunks"]
    assert result["tts"]["audio_s"] > 1.0
    assert not [e for e in result["errors"] if e.get("fatal")]
