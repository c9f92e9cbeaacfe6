"""The native wire protocol, bytes in / bytes out: no sockets, no models, a fake clock."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtaudio.clock import FakeClock
from rtaudio.errors import ConfigError, TextError
from rtaudio.frames import Caption, Stability, Word
from rtaudio.server.config import Encoding, ServerLimits, SessionConfig
from rtaudio.server.events import (
    AudioIn,
    CancelSpeech,
    CaptionTiming,
    ClientMistake,
    EndOfAudio,
    Flush,
    SessionInfo,
    Speak,
    SpeechDone,
    StartSession,
    VadEvent,
)
from rtaudio.server.protocol import SessionProtocol, State
from rtaudio.server.wire import CLOSE_POLICY, CLOSE_TOO_BIG, decode_pcm, encode_pcm

WALL = 1_700_000_000.0


def make(limits: ServerLimits | None = None) -> tuple[SessionProtocol, FakeClock]:
    clock = FakeClock()
    return SessionProtocol(limits or ServerLimits(), clock, wall_clock=lambda: WALL), clock


def sent_json(p: SessionProtocol) -> list[dict]:
    return [json.loads(m) for m in p.data_to_send() if isinstance(m, str)]


def start(p: SessionProtocol, config: dict | None = None) -> SessionConfig:
    p.receive_message(json.dumps({"type": "session.start", "config": config or {}}))
    (ev,) = p.events_received()
    assert isinstance(ev, StartSession)
    p.send_session_started(SessionInfo("s1", ev.config, {"max_message_bytes": 1}))
    (msg,) = sent_json(p)
    assert msg["type"] == "session.started" and msg["session_id"] == "s1"
    return ev.config


def test_session_start_echoes_effective_config() -> None:
    p, _ = make()
    cfg = start(p, {"audio": {"encoding": "pcm_f32le", "sample_rate_hz": 48000, "channels": 2},
                    "partial_interval_ms": 300, "vad": {"min_silence_ms": 700}, "tts": {"sample_rate_hz": 16000}})
    assert (cfg.input_encoding, cfg.input_sample_rate_hz, cfg.input_channels) == (Encoding.PCM_F32LE, 48000, 2)
    assert cfg.partial_interval_ms == 300 and cfg.vad_min_silence_ms == 700 and cfg.tts_sample_rate_hz == 16000
    assert SessionConfig.from_json(cfg.to_json()) == cfg
    assert p.state is State.STREAMING


def test_int16_audio_bytes_become_float_samples() -> None:
    p, _ = make()
    start(p)
    pcm = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    p.receive_message(pcm)
    (ev,) = p.events_received()
    assert isinstance(ev, AudioIn) and ev.sample_rate_hz == 16000
    np.testing.assert_allclose(ev.samples, [0.0, 0.5, -1.0, 32767 / 32768], atol=1e-6)


def test_stereo_float_audio_is_averaged_to_mono() -> None:
    p, _ = make()
    start(p, {"audio": {"encoding": "pcm_f32le", "sample_rate_hz": 44100, "channels": 2}})
    frames = np.array([[0.5, 0.1], [-0.2, -0.4]], dtype="<f4")
    p.receive_message(frames.tobytes())
    (ev,) = p.events_received()
    np.testing.assert_allclose(ev.samples, [0.3, -0.3], atol=1e-6)
    assert ev.sample_rate_hz == 44100


def test_audio_right_after_start_is_accepted_before_started_reply() -> None:
    p, _ = make()
    p.receive_message(json.dumps({"type": "session.start"}))
    p.receive_message(np.zeros(160, "<i2").tobytes())
    kinds = [type(e) for e in p.events_received()]
    assert kinds == [StartSession, AudioIn]


@pytest.mark.parametrize("message, code", [
    (b"\x00\x01\x02", "bad_audio"),  # 3 bytes: not whole int16 samples
    ("not json", "protocol_error"),
    (json.dumps({"type": "nope"}), "protocol_error"),
    (json.dumps([1, 2]), "protocol_error"),
    (json.dumps({"type": "session.start"}), "protocol_error"),  # twice
    (json.dumps({"type": "tts.speak", "text": "  "}), "bad_text"),
])
def test_client_mistakes_get_error_events_and_the_session_goes_on(message: str | bytes, code: str) -> None:
    p, _ = make()
    start(p)
    p.receive_message(message)
    (err,) = sent_json(p)
    assert err["type"] == "error" and err["code"] == code and err["fatal"] is False and err["message"]
    assert isinstance(p.events_received()[-1], ClientMistake)
    assert p.close_code is None
    p.receive_message(np.zeros(4, "<i2").tobytes())  # still streaming
    assert isinstance(p.events_received()[0], AudioIn)


def test_nan_float_audio_is_refused() -> None:
    p, _ = make()
    start(p, {"audio": {"encoding": "pcm_f32le"}})
    p.receive_message(np.array([0.0, np.nan], "<f4").tobytes())
    (err,) = sent_json(p)
    assert err["code"] == "bad_audio" and "NaN" in err["message"]


def test_bad_config_is_an_error_and_start_can_be_retried() -> None:
    p, _ = make()
    p.receive_message(json.dumps({"type": "session.start", "config": {"audio": {"sample_rate_hz": 1000}}}))
    (err,) = sent_json(p)
    assert err["code"] == "bad_config" and "sample_rate_hz" in err["message"]
    p.receive_message(json.dumps({"type": "session.start", "config": {"modle": "x"}}))
    assert "unknown config key 'modle'" in sent_json(p)[0]["message"]
    assert p.state is State.AWAITING_START
    assert [type(e) for e in p.events_received()] == [ClientMistake, ClientMistake]
    start(p)


def test_audio_before_start_is_refused() -> None:
    p, _ = make()
    p.receive_message(b"\x00\x00")
    assert sent_json(p)[0]["code"] == "protocol_error"
    assert [type(e) for e in p.events_received()] == [ClientMistake]


def test_flush_end_speak_cancel_events() -> None:
    p, _ = make()
    start(p)
    for m in ({"type": "audio.flush"}, {"type": "tts.speak", "id": "r1", "text": "Hi there."},
              {"type": "tts.speak", "text": "Again."}, {"type": "tts.cancel", "id": "r1"}, {"type": "audio.end"}):
        p.receive_message(json.dumps(m))
    events = p.events_received()
    assert events == [Flush("flush"), Speak("r1", "Hi there.", None), Speak("tts-1", "Again.", None),
                      CancelSpeech("r1"), EndOfAudio(close_after=False)]
    p.receive_message(b"\x00\x00")  # audio after audio.end
    assert sent_json(p)[0]["message"] == 'binary audio after "audio.end"'


def test_ping_is_answered_with_server_time() -> None:
    p, _ = make()
    p.receive_message(json.dumps({"type": "ping", "id": 7}))
    assert sent_json(p) == [{"type": "pong", "id": 7, "server_time_ms": WALL * 1000}]


def test_caption_event_shape() -> None:
    p, _ = make()
    start(p)
    words = (Word(" Hello", 1.0, 1.4, 0.91), Word(" world.", 1.5, 1.9, 0.8))
    cap = Caption("Hello world.", 16000, 30400, Stability.PARTIAL, segment_id=3, words=words)
    p.send_caption(cap, CaptionTiming(decoded_until_s=2.0, server_latency_ms=123.45))
    (msg,) = sent_json(p)
    assert msg == {
        "type": "caption", "segment_id": 3, "is_final": False, "stability": "partial", "text": "Hello world.",
        "start_s": 1.0, "end_s": 1.9,
        "words": [{"text": " Hello", "start_s": 1.0, "end_s": 1.4, "probability": 0.91},
                  {"text": " world.", "start_s": 1.5, "end_s": 1.9, "probability": 0.8}],
        "decoded_until_s": 2.0, "server_latency_ms": 123.5, "server_time_ms": WALL * 1000,
    }
    p.send_vad(VadEvent("speech_started", 0.5, 3))
    assert sent_json(p)[0]["type"] == "vad.speech_started"


def test_speech_output_is_binary_between_started_and_done() -> None:
    p, _ = make()
    start(p, {"tts": {"encoding": "pcm_f32le"}})
    p.send_speech_started("r1", 22050, Encoding.PCM_F32LE)
    chunk = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
    p.send_speech_audio("r1", chunk, Encoding.PCM_F32LE)
    p.send_speech_done(SpeechDone("r1", 0.5, 1, 42.0))
    out = p.data_to_send()
    assert json.loads(out[0])["type"] == "tts.started"
    np.testing.assert_array_equal(np.frombuffer(out[1], "<f4"), chunk)
    assert json.loads(out[2]) == {"type": "tts.done", "id": "r1", "audio_s": 0.5, "chunks": 1,
                                  "first_chunk_ms": 42.0, "server_time_ms": WALL * 1000}


def test_rate_limit_closes_with_policy_code() -> None:
    p, clock = make(ServerLimits(max_messages_per_s=10))
    start(p)  # 1 message of the burst of 20
    for _ in range(19):
        p.receive_message(json.dumps({"type": "ping"}))
    assert p.close_code is None
    p.receive_message(json.dumps({"type": "ping"}))
    assert p.close_code == CLOSE_POLICY and p.close_reason == "rate_limited"
    assert sent_json(p)[-1] == {"type": "error", "code": "rate_limited", "fatal": True,
                                "message": "more than 10 messages per second", "server_time_ms": WALL * 1000}


def test_rate_limit_refills_with_time() -> None:
    p, clock = make(ServerLimits(max_messages_per_s=10))
    for _ in range(200):
        clock.advance(0.1)
        p.receive_message(json.dumps({"type": "ping"}))
    assert p.close_code is None


def test_huge_message_closes_with_1009() -> None:
    p, _ = make(ServerLimits(max_message_bytes=1000))
    start(p)
    p.receive_message(b"\x00" * 1002)
    assert p.close_code == CLOSE_TOO_BIG and p.close_reason == "message_too_large"
    p.receive_message(b"\x00\x00")  # ignored once closing
    assert p.events_received()[-1].fatal  # type: ignore[union-attr]


def test_too_many_mistakes_close_the_session() -> None:
    p, _ = make(ServerLimits(max_client_errors=3))
    for _ in range(4):
        p.receive_message("{")
    assert p.close_code == CLOSE_POLICY
    assert [m["fatal"] for m in sent_json(p)] == [False, False, False, True]


def test_pcm_round_trip_and_alignment() -> None:
    x = np.linspace(-1, 1, 33, dtype=np.float32)
    for enc in Encoding:
        y = decode_pcm(encode_pcm(x, enc), enc, 1)
        np.testing.assert_allclose(y, x, atol=1 / 32768 + 1e-7)
    with pytest.raises(Exception, match="whole number"):
        decode_pcm(b"\x00" * 6, Encoding.PCM_F32LE, 1)


@pytest.mark.parametrize("cfg", [{"audio": {"channels": 0}}, {"partial_interval_ms": 5},
                                 {"vad": {"threshold": 1.5}}, {"audio": {"encoding": "mp3"}},
                                 {"words": "yes"}, {"tts": "loud"}])
def test_config_validation(cfg: dict) -> None:
    with pytest.raises(ConfigError):
        SessionConfig.from_json(cfg)


def test_speak_text_limit() -> None:
    p, _ = make(ServerLimits(max_tts_chars=10))
    start(p)
    p.receive_message(json.dumps({"type": "tts.speak", "id": "x", "text": "a" * 11}))
    (err,) = sent_json(p)
    assert err["code"] == TextError.code and err["id"] == "x"
