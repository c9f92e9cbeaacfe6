"""Fuzzing the three sans-I/O wire protocols with hypothesis: thousands of random message sequences.

Each case is a sequence of websocket messages (random, truncated, oversized or deeply nested JSON,
wrong field types, control messages out of order, misaligned or NaN PCM), interleaved with what the
session would answer (started / start failed, captions, flush and end replies, speech). Checked after
every message, for every protocol:
- nothing raises out of `receive_message` or the `send_*` renderers;
- every message is accepted (a client event or a reply) or answered with an error carrying a stable
  code of rtaudio.errors, never `internal_error`; the only silent messages are the documented no-ops;
- once closed, the close code is a known one and nothing more comes out;
- the state stays consistent: events are well-formed (finite mono float32 audio, valid configs),
  the native state machine is in a state its config allows, mistakes are bounded.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rtaudio.errors as errors
from rtaudio.clock import FakeClock
from rtaudio.errors import UnknownModelError
from rtaudio.frames import Caption, Stability, Word
from rtaudio.server.config import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, Encoding, ServerLimits
from rtaudio.server.deepgram import DeepgramProtocol
from rtaudio.server.events import (
    AudioIn,
    CaptionTiming,
    ClearAudio,
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
from rtaudio.server.realtime import RealtimeProtocol
from rtaudio.server.wire import Wire

LIMITS = ServerLimits(max_message_bytes=8192, max_messages_per_s=20.0, max_client_errors=12, max_tts_chars=200)
STABLE_CODES = {cls.code for cls in vars(errors).values()
                if isinstance(cls, type) and issubclass(cls, errors.RtAudioError)} - {"error"}
CLOSE_CODES = {1000, 1001, 1003, 1007, 1008, 1009, 1011, 1013}
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- message strategies -----------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
rates = st.one_of(st.sampled_from([8000, 16000, 24000, 44100, 48000]), st.integers(-5, 400_000), json_values)
native_config = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["whisper-tiny.en", "whisper-huge", ""]) | json_values,
    "audio": st.fixed_dictionaries({}, optional={
        "encoding": st.sampled_from(["pcm_s16le", "pcm_f32le", "float32", "mp3"]) | json_values,
        "sample_rate_hz": rates, "channels": st.integers(-1, 10) | json_values}) | json_values,
    "partial_interval_ms": st.integers(0, 20000) | json_values,
    "partials": st.booleans() | json_values, "words": st.booleans() | json_values,
    "vad": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "threshold": st.floats(),
                                               "min_silence_ms": st.integers(0, 20000), "x": json_values}),
    "tts": st.fixed_dictionaries({}, optional={"voice": st.sampled_from(["piper-joe", "nobody"]),
                                               "sample_rate_hz": rates | st.none()}),
    "channel": st.sampled_from(["main", "bad name"]) | json_values,
    "modle": json_values,
})
request_ids = st.none() | st.text(max_size=140) | json_values
native_messages = st.one_of(
    st.fixed_dictionaries({"type": st.just("session.start")}, optional={"config": native_config | json_values}),
    st.fixed_dictionaries({"type": st.sampled_from(["audio.flush", "audio.end", "ping", "tts.cancel"])},
                          optional={"id": request_ids}),
    st.fixed_dictionaries({"type": st.just("tts.speak")}, optional={
        "text": st.text(max_size=250) | json_values, "id": request_ids,
        "voice": st.sampled_from(["piper-joe", "nobody"]) | json_values,
        "speed": st.floats() | st.integers(-3, 9) | json_values}),
    st.fixed_dictionaries({"type": st.just("captions.subscribe")}, optional={
        "channel": st.sampled_from(["main", "a/b", "", "x" * 80]) | json_values}),
)
realtime_session = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["transcription", "realtime"]) | json_values,
    "audio": json_values | st.fixed_dictionaries({}, optional={"input": json_values | st.fixed_dictionaries({}, optional={
        "format": json_values | st.fixed_dictionaries({}, optional={"type": st.just("audio/pcm") | json_values,
                                                                  "rate": rates}),
        "transcription": json_values | st.fixed_dictionaries({}, optional={
            "model": st.sampled_from(["gpt-4o-transcribe", "whisper-huge"]) | json_values,
            "language": json_values, "prompt": json_values}),
        "turn_detection": st.none() | json_values | st.fixed_dictionaries({}, optional={
            "threshold": st.floats() | json_values, "silence_duration_ms": st.floats() | json_values})})}),
    "input_audio_format": st.just("pcm16") | json_values,
    "input_audio_transcription": json_values,
    "turn_detection": st.none() | json_values,
})
realtime_messages = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["session.update", "transcription_session.update"])},
                          optional={"session": realtime_session | json_values}),
    st.fixed_dictionaries({"type": st.just("input_audio_buffer.append")}, optional={
        "audio": st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=30)
        | json_values}),
    st.fixed_dictionaries({"type": st.sampled_from(["input_audio_buffer.commit", "input_audio_buffer.clear"])}),
)
deepgram_messages = st.fixed_dictionaries({"type": st.sampled_from(["KeepAlive", "Finalize", "CloseStream"])},
                                          optional={"x": json_values})
deepgram_query = st.dictionaries(
    st.sampled_from(["encoding", "sample_rate", "channels", "interim_results", "endpointing", "vad_events",
                     "utterance_end_ms", "model", "language", "punctuate"]),
    st.sampled_from(["linear16", "float32", "mp3", "16000", "48000", "1", "0", "true", "false", "300", "x", "",
                     "whisper-tiny.en", "whisper-huge", "9" * 30]), max_size=6)


def junk(valid: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[str | bytes]:
    """A protocol's own messages, then every way of getting them wrong."""
    as_text = valid.map(json.dumps)
    return st.one_of(
        as_text, as_text,
        as_text.flatmap(lambda s: st.integers(0, max(0, len(s) - 1)).map(lambda k: s[:k])),  # truncated
        st.text(max_size=60),
        json_values.map(json.dumps),
        st.fixed_dictionaries({"type": json_values | st.text(max_size=30)}).map(json.dumps),
        st.integers(100, 5000).map(lambda n: "[" * n),  # nesting past the JSON parser's recursion limit
        st.integers(1, 2000).map(lambda n: '{"type":"ping","id":' + "[" * n + "]" * n + "}"),
        st.binary(max_size=700),
        st.integers(0, 200).map(lambda n: np.full(n, np.nan, "<f4").tobytes()),
        st.integers(1, 400).map(lambda n: (np.arange(n) % 300 - 150).astype("<i2").tobytes()),
        st.integers(LIMITS.max_message_bytes + 1, 2 * LIMITS.max_message_bytes).map(lambda n: b"\x00" * n),
        st.integers(LIMITS.max_message_bytes + 1, 2 * LIMITS.max_message_bytes).map(lambda n: " " * n),
    )


NATIVE_JUNK, REALTIME_JUNK, DEEPGRAM_JUNK = junk(native_messages), junk(realtime_messages), junk(deepgram_messages)


# -- the checks -------------------------------------------------------------------------------------------
def error_codes(wire: Wire, out: list[str | bytes]) -> list[str]:
    """Stable codes of the error events among `out`, in each protocol's own error shape."""
    codes = []
    for m in out:
        if isinstance(m, bytes):
            continue
        obj = json.loads(m)
        assert isinstance(obj, dict) and isinstance(obj.get("type"), str), m
        if isinstance(wire, RealtimeProtocol) and obj["type"] == "error":
            codes.append(obj["error"]["code"])
        elif isinstance(wire, DeepgramProtocol) and obj["type"] == "Error":
            codes.append(obj["err_code"])
        elif isinstance(wire, SessionProtocol) and obj["type"] == "error":
            codes.append(obj["code"])
            assert isinstance(obj["fatal"], bool) and obj["message"]
    return codes


def silent_ok(wire: Wire, message: str | bytes) -> bool:
    """The documented no-ops: empty audio (native binary, Realtime append), Deepgram's KeepAlive."""
    if isinstance(wire, SessionProtocol):
        return message == b""
    try:
        obj = json.loads(message) if isinstance(message, str) else {}
    except (ValueError, RecursionError):
        return False
    if not isinstance(obj, dict):
        return False
    if isinstance(wire, DeepgramProtocol):
        return obj.get("type") == "KeepAlive"
    return obj.get("type") == "input_audio_buffer.append" and obj.get("audio") == ""


def check_event(wire: Wire, ev: object) -> None:
    if isinstance(ev, AudioIn):
        x = ev.samples
        assert x.dtype == np.float32 and x.ndim == 1 and len(x) > 0
        assert np.all(np.isfinite(x)) and np.abs(x).max() <= 1.0
        assert MIN_SAMPLE_RATE_HZ <= ev.sample_rate_hz <= MAX_SAMPLE_RATE_HZ
    elif isinstance(ev, Speak):
        assert ev.text.strip() and len(ev.text) <= LIMITS.max_tts_chars and 0.25 <= ev.speed <= 4.0
        assert isinstance(ev.request_id, str) and 0 < len(ev.request_id) <= 128
    elif isinstance(ev, ClientMistake):
        assert ev.error.code in STABLE_CODES


def check_state(wire: Wire) -> None:
    assert wire._mistakes <= LIMITS.max_client_errors + 1
    if isinstance(wire, SessionProtocol):
        assert isinstance(wire.state, State)
        if wire.state in (State.STREAMING, State.AUDIO_ENDED):
            assert wire.config is not None
        if wire.state is State.STARTING:
            assert wire._pending is not None


CAPTION = Caption("Hello there.", 0, 16000, Stability.PARTIAL, 0, words=(Word(" Hello", 0.0, 0.4, 0.9),))


def answer(wire: Wire, events: Sequence[object], data: st.DataObject) -> None:
    """What the session does with the events (as session.py would), with random captions in between."""
    for ev in events:
        if isinstance(ev, StartSession):
            if data.draw(st.integers(0, 4), label="start fails") == 0:
                wire.send_start_failed(UnknownModelError("model not served here"))
            else:
                wire.send_session_started(SessionInfo("s1", ev.config, {"max_message_bytes": 1.0}))
        elif isinstance(ev, Flush):
            wire.send_flushed(ev.reason)
        elif isinstance(ev, ClearAudio):
            wire.send_cleared()
        elif isinstance(ev, EndOfAudio):
            wire.send_audio_ended(1.5)
            if ev.close_after:
                wire.close(1000, "done")
        elif isinstance(ev, Speak):
            wire.send_speech_started(ev.request_id, 22050, Encoding.PCM_S16LE)
            wire.send_speech_audio(ev.request_id, np.zeros(10, np.float32), Encoding.PCM_S16LE)
            wire.send_speech_done(SpeechDone(ev.request_id, 0.1, 1, 5.0))
    kind = data.draw(st.sampled_from(["none", "none", "partial", "stable", "final", "vad"]), label="server")
    if kind == "vad":
        wire.send_vad(VadEvent(data.draw(st.sampled_from(["speech_started", "speech_stopped"])), 0.5,
                               data.draw(st.integers(0, 3))))
    elif kind != "none":
        segment = data.draw(st.integers(0, 3), label="segment")
        cap = Caption(CAPTION.text, 0, 16000, Stability(kind), segment, words=CAPTION.words)
        wire.send_caption(cap, CaptionTiming(1.0, 12.0))


def run_case(make: Callable[[FakeClock], Wire], messages: st.SearchStrategy[str | bytes],
             data: st.DataObject) -> None:
    clock = FakeClock()
    wire = make(clock)
    wire.start()
    answer(wire, wire.events_received(), data)
    wire.events_received()
    wire.data_to_send()
    for _ in range(data.draw(st.integers(1, 30), label="length")):
        message = data.draw(messages, label="message")
        clock.advance(data.draw(st.sampled_from([0.0, 0.0, 0.01, 0.2]), label="dt"))
        was_closed = wire.close_code is not None
        wire.receive_message(message)
        events = wire.events_received()
        out = wire.data_to_send()
        if was_closed:
            assert events == [] and out == [], "a closed session must ignore further messages"
            continue
        for ev in events:
            check_event(wire, ev)
        codes = error_codes(wire, out)
        assert "internal_error" not in codes, (message, out)
        assert set(codes) <= STABLE_CODES, codes
        mistakes = [ev for ev in events if isinstance(ev, ClientMistake)]
        if mistakes:
            assert codes, f"a mistake must be answered on the wire: {message!r}"
        accepted = [ev for ev in events if not isinstance(ev, ClientMistake)]
        assert accepted or out or wire.close_code is not None or silent_ok(wire, message), \
            f"message neither accepted nor answered: {message!r}"
        if wire.close_code is not None:
            assert wire.close_code in CLOSE_CODES and len(wire.close_reason) <= 120
            assert codes or wire.close_code == 1000, "a close for a mistake comes with its error event"
        else:
            answer(wire, accepted, data)
            codes = error_codes(wire, wire.data_to_send())
            assert "internal_error" not in codes
            late = wire.events_received()  # a failed start is a mistake reported by the renderer
            assert all(isinstance(ev, ClientMistake) for ev in late) and (codes or not late)
        check_state(wire)


@FUZZ
@given(st.data())
def test_fuzz_native_protocol(data: st.DataObject) -> None:
    run_case(lambda clock: SessionProtocol(LIMITS, clock, wall_clock=lambda: 1.7e9), NATIVE_JUNK, data)


@FUZZ
@given(st.data())
def test_fuzz_realtime_protocol(data: st.DataObject) -> None:
    query = data.draw(st.sampled_from([{}, {"intent": "transcription"}]), label="query")
    run_case(lambda clock: RealtimeProtocol(LIMITS, clock, wall_clock=lambda: 1.7e9, query=query),
             REALTIME_JUNK, data)


@FUZZ
@given(st.data())
def test_fuzz_deepgram_protocol(data: st.DataObject) -> None:
    query = data.draw(deepgram_query, label="query")
    run_case(lambda clock: DeepgramProtocol(LIMITS, clock, wall_clock=lambda: 1.7e9, query=query),
             DEEPGRAM_JUNK, data)


@settings(max_examples=600, deadline=None, database=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_fuzz_any_first_message_is_answered(message: str | bytes) -> None:
    """The most common attack: one arbitrary message on a fresh connection, for each protocol."""
    for wire in (SessionProtocol(LIMITS, FakeClock()), RealtimeProtocol(LIMITS, FakeClock()),
                 DeepgramProtocol(LIMITS, FakeClock())):
        wire.start()
        wire.events_received()
        wire.data_to_send()
        wire.receive_message(message)
        events, out = wire.events_received(), wire.data_to_send()
        assert "internal_error" not in error_codes(wire, out)
        assert events or out or silent_ok(wire, message)
