"""Assistant building blocks: echo canceller, responders (real loopback SSE server), turn-taking rules."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtaudio.assistant.echo import EchoCanceller, _nlms_kernel, estimate_delay, nlms_reference
from rtaudio.assistant.responders import (
    EchoResponder,
    Message,
    OpenAIChatConfig,
    OpenAIChatResponder,
    ResponderError,
)
from rtaudio.assistant.turns import BargeInPolicy, TurnConfig, TurnDetector


def test_nlms_kernel_equals_numpy_reference() -> None:
    rng = np.random.default_rng(1)
    mic = (rng.standard_normal(2000) * 0.1).astype(np.float32)
    ref = (rng.standard_normal(2000) * 0.1).astype(np.float32)
    state_a = [np.zeros(48), np.zeros(48), np.zeros(1, np.int64)]
    state_b = [np.zeros(48), np.zeros(48), np.zeros(1, np.int64)]
    want = nlms_reference(mic, ref, *state_a, 0.5, 1e-6, 0.7, 50)
    got = np.empty_like(mic)
    _nlms_kernel(mic, ref, *state_b, 0.5, 1e-6, 0.7, 50, got)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(state_b[0], state_a[0], atol=1e-6)


def test_delay_estimate_finds_the_echo_path_delay() -> None:
    rng = np.random.default_rng(2)
    ref = rng.standard_normal(8000).astype(np.float32)
    mic = np.concatenate([np.zeros(1234, np.float32), 0.3 * ref])[:8000]
    assert estimate_delay(mic, ref, 4000) == 1234


def _room(far: np.ndarray, delay: int) -> np.ndarray:
    h = np.zeros(300)
    h[[0, 40, 120, 299]] = [0.5, 0.2, -0.1, 0.05]
    echo = np.convolve(far, h)[: len(far)]
    return np.concatenate([np.zeros(delay), echo])[: len(far)].astype(np.float32)


def test_echo_of_real_speech_is_cancelled_by_15_db(speech_dir: Path) -> None:
    far, _ = sf.read(speech_dir / "ljspeech_LJ001-0019.flac", dtype="float32")
    mic = _room(far, delay=1600)  # 100 ms speaker-to-mic path
    aec = EchoCanceller()
    out = []
    for i in range(0, len(far), 320):
        aec.push_reference(far[i:i + 320])
        out.append(aec.process(mic[i:i + 320]))
    cleaned = np.concatenate(out)
    assert aec.delay_samples == 1600
    tail = slice(len(far) // 3, None)
    erle_db = 10 * np.log10(np.mean(mic[tail] ** 2) / np.mean(cleaned[tail] ** 2))
    assert erle_db > 15, erle_db


def test_turn_detector_waits_longer_after_a_conjunction() -> None:
    t = TurnDetector()
    assert t.silence_needed_ms("Turn on the lights.") < t.silence_needed_ms("turn on the lights")
    assert t.silence_needed_ms("turn on the lights and") > t.silence_needed_ms("turn on the lights")
    assert t.silence_needed_ms("I want um") == t.config.continuation_silence_ms
    assert not t.is_end_of_turn("", 5000), "no words, no turn"
    assert t.is_end_of_turn("What time is it?", 400)
    assert not t.is_end_of_turn("What time is it and", 400)


def test_a_full_stop_after_a_dangling_word_still_expects_more() -> None:
    """Whisper often writes "and." at a pause; "so." can end a sentence ("I think so.")."""
    turns = TurnDetector()
    assert not turns.expects_more("No one will doubt my being so.")
    assert turns.expects_more("I went to the shop and.")
    assert turns.expects_more("I went to the shop and")
    assert turns.expects_more("I think so")  # no full stop: "so" may lead on
    assert turns.silence_needed_ms("No one will doubt my being so.") == TurnConfig().complete_silence_ms


def test_backchannels_and_coughs_do_not_interrupt() -> None:
    p = BargeInPolicy()
    for text in ["yeah", "Mhm.", "okay right", "", "uh-huh"]:
        assert not p.is_interruption(text), text
    assert p.is_interruption("wait stop")
    assert p.is_interruption("yeah but what about tomorrow")


def test_echo_responder_streams_in_pieces_and_stops_on_cancel() -> None:
    r = EchoResponder(words_per_delta=1)
    hist = [Message("user", "the weather in Paris")]
    pieces = [d.text for d in r.respond(hist, threading.Event())]
    assert "".join(pieces) == "You said: the weather in Paris" and len(pieces) == 6
    cancel = threading.Event()
    it = r.respond(hist, cancel)
    next(it)
    cancel.set()
    assert list(it) == []


class _SSEHandler(BaseHTTPRequestHandler):
    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunks = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {"choices": [{"index": 0, "delta": {"content": "Hello"}}]},
            {"choices": [{"index": 0, "delta": {"content": " there."}}]},
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                               "function": {"name": "lights", "arguments": "{}"}}]}}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        for c in chunks:
            self.wfile.write(f"data: {json.dumps(c)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def sse_server():  # type: ignore[no-untyped-def]
    _SSEHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SSEHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_openai_compatible_client_streams_text_and_passes_tool_calls(sse_server: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TEST_KEY", "sk-test")
    r = OpenAIChatResponder(OpenAIChatConfig(base_url=sse_server, model="m1", api_key_env="TEST_KEY"))
    deltas = list(r.respond([Message("user", "hi")], threading.Event()))
    assert "".join(d.text for d in deltas) == "Hello there."
    tools = [t for d in deltas for t in d.tool_calls]
    assert tools == [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "lights", "arguments": "{}"}}]
    (req,) = _SSEHandler.requests
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["stream"] is True and req["body"]["messages"][-1] == {"role": "user", "content": "hi"}


def test_openai_client_unreachable_server_is_a_clear_error() -> None:
    r = OpenAIChatResponder(OpenAIChatConfig(base_url="http://127.0.0.1:9/v1", timeout_s=2))
    with pytest.raises(ResponderError, match="cannot reach chat server"):
        list(r.respond([Message("user", "hi")], threading.Event()))
