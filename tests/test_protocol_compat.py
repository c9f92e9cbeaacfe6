"""OpenAI Realtime-style and Deepgram-style wire protocols, bytes in / bytes out, with the published event shapes."""

from __future__ import annotations

import base64
import json

import numpy as np

from rtaudio.clock import FakeClock
from rtaudio.frames import Caption, Stability, Word
from rtaudio.server.config import Encoding, ServerLimits
from rtaudio.server.deepgram import DeepgramProtocol
from rtaudio.server.events import (
    AudioIn,
    CaptionTiming,
    ClearAudio,
    EndOfAudio,
    Flush,
    SessionInfo,
    StartSession,
    VadEvent,
)
from rtaudio.server.realtime import RealtimeProtocol
from rtaudio.server.wire import CLOSE_INVALID_PAYLOAD

TIMING = CaptionTiming(1.0, 50.0)


def out(p) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(m) for m in p.data_to_send()]


def cap(text: str, stability: Stability, seg: int = 0) -> Caption:
    words = tuple(Word(" " + w, 0.5 + i * 0.3, 0.7 + i * 0.3, 0.9) for i, w in enumerate(text.split()))
    return Caption(text, 8000, 8000 + 4800 * max(1, len(words)), stability, segment_id=seg, words=words)


# -- OpenAI Realtime ------------------------------------------------------------------------------------
def realtime(query: dict[str, str] | None = None) -> RealtimeProtocol:
    p = RealtimeProtocol(ServerLimits(), FakeClock(), query=query or {})
    p.start()
    return p


def test_realtime_greets_with_session_created_then_update_starts_session() -> None:
    p = realtime()
    (created,) = out(p)
    assert created["type"] == "session.created" and created["event_id"].startswith("event_")
    assert created["session"]["type"] == "transcription"
    p.receive_message(json.dumps({"type": "session.update", "session": {
        "type": "transcription",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                            "turn_detection": {"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 400}}}}}))
    (ev,) = p.events_received()
    assert isinstance(ev, StartSession)
    assert ev.config.input_sample_rate_hz == 24000 and ev.config.input_encoding is Encoding.PCM_S16LE
    assert ev.config.model == "whisper-tiny.en" and ev.config.language == "en"
    assert (ev.config.vad_enabled, ev.config.vad_threshold, ev.config.vad_min_silence_ms) == (True, 0.6, 400)
    p.send_session_started(SessionInfo("s", ev.config, {}))
    (updated,) = out(p)
    assert updated["type"] == "session.updated"
    assert updated["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 400


def test_realtime_beta_names_and_turn_detection_off() -> None:
    p = realtime({"intent": "transcription"})
    assert out(p)[0]["type"] == "transcription_session.created"
    p.receive_message(json.dumps({"type": "transcription_session.update", "session": {
        "input_audio_format": "pcm16", "turn_detection": None}}))
    (ev,) = p.events_received()
    assert ev.config.vad_enabled is False  # type: ignore[union-attr]
    p.send_session_started(SessionInfo("s", ev.config, {}))  # type: ignore[union-attr]
    (updated,) = out(p)
    assert updated["type"] == "transcription_session.updated" and updated["session"]["turn_detection"] is None


def test_realtime_append_commit_clear() -> None:
    p = realtime()
    out(p)
    pcm = (np.array([0, 8192, -8192], "<i2")).tobytes()
    p.receive_message(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}))
    p.receive_message(json.dumps({"type": "input_audio_buffer.commit"}))
    p.receive_message(json.dumps({"type": "input_audio_buffer.clear"}))
    start, audio, flush, clear = p.events_received()
    assert isinstance(start, StartSession) and isinstance(audio, AudioIn)
    assert audio.sample_rate_hz == 24000
    np.testing.assert_allclose(audio.samples, [0, 0.25, -0.25])
    assert flush == Flush("commit") and clear == ClearAudio()
    p.send_cleared()
    assert out(p)[0]["type"] == "input_audio_buffer.cleared"


def test_realtime_errors_use_openai_shape_with_stable_codes() -> None:
    p = realtime()
    out(p)
    p.receive_message(json.dumps({"type": "input_audio_buffer.commit"}))  # nothing to commit
    p.receive_message(json.dumps({"type": "input_audio_buffer.append", "audio": "***"}))
    p.receive_message(b"\x00\x00")
    p.receive_message(json.dumps({"type": "response.create"}))
    errors = out(p)
    assert [e["type"] for e in errors] == ["error"] * 4
    assert [e["error"]["code"] for e in errors] == ["empty_audio", "protocol_error", "protocol_error", "protocol_error"]
    assert all(set(e["error"]) == {"type", "code", "message", "param", "event_id"} for e in errors)
    assert p.close_code is None


def test_realtime_item_lifecycle_from_vad_and_captions() -> None:
    p = realtime()
    out(p)
    p.send_vad(VadEvent("speech_started", 0.5))
    p.send_caption(cap("Hello", Stability.STABLE), TIMING)
    p.send_caption(cap("Hello there", Stability.PARTIAL), TIMING)  # no delta: may still change
    p.send_caption(cap("Hello world", Stability.STABLE), TIMING)
    p.send_vad(VadEvent("speech_stopped", 2.0))
    p.send_caption(cap("Hello world.", Stability.FINAL), TIMING)
    events = out(p)
    kinds = [e["type"] for e in events]
    assert kinds == ["input_audio_buffer.speech_started",
                     "conversation.item.input_audio_transcription.delta",
                     "conversation.item.input_audio_transcription.delta",
                     "input_audio_buffer.speech_stopped",
                     "conversation.item.input_audio_transcription.delta",
                     "input_audio_buffer.committed",
                     "conversation.item.input_audio_transcription.completed"]
    item = events[0]["item_id"]
    assert all(e["item_id"] == item for e in events)
    assert events[0]["audio_start_ms"] == 500 and events[3]["audio_end_ms"] == 2000
    assert "".join(e["delta"] for e in events if e["type"].endswith(".delta")) == "Hello world."
    assert events[5]["previous_item_id"] is None
    done = events[6]
    assert done["transcript"] == "Hello world." and done["content_index"] == 0
    assert done["usage"]["type"] == "duration"
    # the next utterance is a new item, linked to the previous one
    p.send_caption(cap("Next.", Stability.FINAL, seg=1), TIMING)
    committed = [e for e in out(p) if e["type"] == "input_audio_buffer.committed"][0]
    assert committed["previous_item_id"] == item and committed["item_id"] != item


def test_realtime_commit_of_silence_still_completes_an_item() -> None:
    p = realtime()
    out(p)
    silence = base64.b64encode(np.zeros(2400, "<i2").tobytes()).decode()
    p.receive_message(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
    p.receive_message(json.dumps({"type": "input_audio_buffer.commit"}))
    p.send_flushed("commit")  # the flush produced no caption
    committed, completed = out(p)
    assert committed["type"] == "input_audio_buffer.committed"
    assert completed["type"] == "conversation.item.input_audio_transcription.completed"
    assert completed["transcript"] == "" and completed["item_id"] == committed["item_id"]
    # a commit whose flush did produce a final is answered once, by that final
    p.receive_message(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
    p.receive_message(json.dumps({"type": "input_audio_buffer.commit"}))
    p.send_caption(cap("Yes.", Stability.FINAL, seg=4), TIMING)
    p.send_flushed("commit")
    assert [e["type"] for e in out(p)] == ["conversation.item.input_audio_transcription.delta",
                                           "input_audio_buffer.committed",
                                           "conversation.item.input_audio_transcription.completed"]


# -- Deepgram -------------------------------------------------------------------------------------------
def deepgram(query: dict[str, str]) -> DeepgramProtocol:
    p = DeepgramProtocol(ServerLimits(), FakeClock(), query=query, wall_clock=lambda: 1_700_000_000.0)
    p.start()
    return p


def test_deepgram_query_configures_session() -> None:
    p = deepgram({"encoding": "linear16", "sample_rate": "8000", "channels": "2", "endpointing": "500",
                  "interim_results": "true", "smart_format": "true"})
    (ev,) = p.events_received()
    assert isinstance(ev, StartSession)
    c = ev.config
    assert (c.input_encoding, c.input_sample_rate_hz, c.input_channels, c.vad_min_silence_ms) == (
        Encoding.PCM_S16LE, 8000, 2, 500)
    p.receive_message(np.zeros(8, "<i2").tobytes())
    (audio,) = p.events_received()
    assert isinstance(audio, AudioIn) and len(audio.samples) == 4 and audio.sample_rate_hz == 8000


def test_deepgram_control_messages() -> None:
    p = deepgram({})
    p.events_received()
    for kind in ("KeepAlive", "Finalize", "CloseStream"):
        p.receive_message(json.dumps({"type": kind}))
    assert p.events_received() == [Flush("finalize"), EndOfAudio(close_after=True)]
    p.receive_message(b"\x00\x00")
    assert out(p)[0]["type"] == "Error"


def test_deepgram_bad_query_closes_with_1007() -> None:
    p = deepgram({"encoding": "opus"})
    assert p.close_code == CLOSE_INVALID_PAYLOAD and p.close_reason == "bad_config"
    assert out(p)[0]["err_code"] == "bad_config"


def test_deepgram_results_shapes() -> None:
    p = deepgram({"interim_results": "true", "vad_events": "true", "utterance_end_ms": "1000"})
    (ev,) = p.events_received()
    p.send_session_started(SessionInfo("s", ev.config, {}))  # type: ignore[union-attr]
    p.send_vad(VadEvent("speech_started", 0.42))
    p.send_caption(cap("Hello", Stability.STABLE), TIMING)  # not a Deepgram concept: skipped
    p.send_caption(cap("Hello there", Stability.PARTIAL), TIMING)
    p.send_vad(VadEvent("speech_stopped", 2.0))
    p.send_caption(cap("Hello, world.", Stability.FINAL), TIMING)
    started, interim, final, utterance_end = out(p)
    assert started == {"type": "SpeechStarted", "channel": [0], "timestamp": 0.42}
    assert interim["type"] == "Results" and interim["is_final"] is False and interim["speech_final"] is False
    assert final["is_final"] is True and final["speech_final"] is True and final["from_finalize"] is False
    alt = final["channel"]["alternatives"][0]
    assert alt["transcript"] == "Hello, world."
    assert [w["word"] for w in alt["words"]] == ["hello", "world"]
    assert [w["punctuated_word"] for w in alt["words"]] == ["Hello,", "world."]
    assert set(alt["words"][0]) == {"word", "start", "end", "confidence", "punctuated_word"}
    assert final["start"] == 0.5 and final["duration"] == round(final["duration"], 3) > 0
    assert final["channel_index"] == [0, 1] and final["metadata"]["model_info"]["name"] == "whisper-tiny.en"
    assert utterance_end["type"] == "UtteranceEnd" and utterance_end["last_word_end"] == 1.0


def test_deepgram_finalize_marks_from_finalize_and_metadata_at_close() -> None:
    p = deepgram({})
    p.events_received()
    p.receive_message(json.dumps({"type": "Finalize"}))
    p.send_caption(cap("Done.", Stability.PARTIAL), TIMING)  # interim_results off: not sent
    p.send_caption(cap("Done.", Stability.FINAL), TIMING)
    p.send_flushed("finalize")
    (final,) = out(p)
    assert final["from_finalize"] is True and final["speech_final"] is False
    p.send_audio_ended(3.5)
    (meta,) = out(p)
    assert meta["type"] == "Metadata" and meta["duration"] == 3.5 and meta["channels"] == 1
    assert meta["created"] == "2023-11-14T22:13:20Z" and meta["models"][0] in meta["model_info"]
