"""The command line: `rtaudio serve` + `rtaudio client FILE` / `client say`, and `rtaudio demo`, as real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

from rtaudio.stt.textnorm import normalize_english

pytestmark = pytest.mark.slow

CLIP = "ljspeech_LJ001-0020.flac"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rtaudio(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rtaudio.cli", *args], capture_output=True, text=True,
                          timeout=180, **kwargs)  # type: ignore[call-overload]


def test_serve_client_file_and_say(tmp_path: Path, speech_dir: Path, speech_manifest: dict[str, str]) -> None:
    port = free_port()
    env = {**os.environ, "RTAUDIO_TOKEN": "cli-token-123"}
    server = subprocess.Popen([sys.executable, "-m", "rtaudio.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        health = _health(port, server)
        assert health["status"] == "ok" and health["models"] == ["whisper-tiny.en"]
        url = f"ws://127.0.0.1:{port}/v1/stream"
        done = _caption_file(url, speech_dir, speech_manifest, env)
        assert "partial caption latency" in done.stderr
        out = tmp_path / "hello.wav"
        spoken = rtaudio("client", "say", "Hello from the command line.", "-o", str(out), "--url", url, env=env)
        assert spoken.returncode == 0, spoken.stderr
        info = sf.info(str(out))
        assert info.samplerate == 22050 and info.duration > 1.0 and "chunks" in spoken.stderr
        refused = rtaudio("client", "say", "Hi.", "-o", str(out), "--url", url,
                          env={**os.environ, "RTAUDIO_TOKEN": "wrong-token-9"})
        assert refused.returncode == 1 and "token" in refused.stderr
    finally:
        code = _stop(server, signal.SIGINT)
    assert code == 0


def _caption_file(url: str, speech_dir: Path, speech_manifest: dict[str, str],
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`rtaudio client CLIP --fast`; asserts it succeeded with most of the clip's words."""
    done = rtaudio("client", str(speech_dir / CLIP), "--url", url, "--fast", env=env)
    assert done.returncode == 0, done.stderr
    said = normalize_english(done.stdout).split()
    expected = normalize_english(speech_manifest[CLIP]).split()
    assert sum(w in said for w in expected) >= 0.7 * len(expected), done.stdout
    return done


def _stop(server: subprocess.Popen[str], sig: signal.Signals) -> int:
    """Signal the server and wait for it (killed if it does not exit in 40 s); its exit code."""
    server.send_signal(sig)
    try:
        return server.wait(timeout=40)
    except subprocess.TimeoutExpired:
        server.kill()
        raise


def _health(port: int, server: subprocess.Popen[str]) -> dict[str, object]:
    """GET /healthz once the server is up (a new connection each time)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            return dict(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()))
        except OSError:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.3)


@pytest.mark.parametrize("backend", ["onnx", "batched"])
def test_serve_on_several_processes_sharing_the_port(backend: str, speech_dir: Path,
                                                      speech_manifest: dict[str, str]) -> None:
    """`--processes 2`: both processes take connections on the one port (the kernel spreads them; /healthz
    names the process that answered), captions come through that port, and stopping the first stops the
    others. Which process serves a given client is the kernel's choice, so the test does not pin that.
    With the batched backend one engine process holds the model (here PyTorch on the CPU) and decodes for
    both server processes, which never load it."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "rtaudio.cli", "serve", "--port", str(port), "--processes", "2",
                               "--stt-backend", backend, "--decode-workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: set[int] = set()
    engine: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while len(pids) < 2 and time.monotonic() < deadline:  # the second process may start listening later
            pids.add(int(_health(port, server)["process"]))  # type: ignore[call-overload]
        assert len(pids) == 2 and server.pid in pids, pids
        for _ in range(3):
            _caption_file(f"ws://127.0.0.1:{port}/v1/stream", speech_dir, speech_manifest)
        children = {int(c) for c in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()}
        engine = [c for c in children if "libtorch" in Path(f"/proc/{c}/maps").read_text()]
        assert len(engine) == (backend == "batched"), children  # one process holds the batched model ...
        for pid in pids:  # ... and the server processes decode nothing with it themselves
            assert "libtorch" not in Path(f"/proc/{pid}/maps").read_text(), pid
    finally:
        code = _stop(server, signal.SIGTERM)
    assert code == 0
    time.sleep(1.0)
    assert not [pid for pid in pids | set(engine) if Path(f"/proc/{pid}").exists()], "a process outlived the server"


def test_demo_captions_its_recording() -> None:
    done = rtaudio("demo", "--port", "0", "--once", "--fast")
    assert done.returncode == 0, done.stderr
    assert re.search(r"page http://127\.0\.0\.1:\d+/", done.stdout)
    from rtaudio.server.demo import DEMO_TEXT

    said = set(normalize_english(done.stdout).split())
    expected = normalize_english(DEMO_TEXT).split()
    assert sum(w in said for w in expected) >= 0.7 * len(expected), done.stdout
