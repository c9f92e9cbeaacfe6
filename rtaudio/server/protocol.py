"""The native rtaudio websocket protocol (`/v1/stream`), sans-I/O. PROTOCOL.md is its specification.

    client                                   server
    {"type":"session.start","config":{..}} -> {"type":"session.started",..}
    <binary PCM>, <binary PCM>, ...        -> {"type":"caption","is_final":false,..} ...
    {"type":"tts.speak","id":"r1",..}      -> {"type":"tts.started"}, <binary PCM>..., {"type":"tts.done"}
    {"type":"audio.end"}                   -> {"type":"caption","is_final":true,..}, {"type":"audio.ended"}
    {"type":"captions.subscribe","channel":"main"} -> {"type":"captions.subscribed"}, captions of that channel

States: AWAITING_START -> STREAMING -> AUDIO_ENDED, or AWAITING_START -> SUBSCRIBED (a read-only caption
viewer). Server binary messages are always speech audio of the one speech request in progress (requests
are answered one at a time, in order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtaudio.errors import ConfigError, ProtocolError, RtAudioError, TextError
from rtaudio.frames import Caption
from rtaudio.server.config import Encoding, SessionConfig, check_channel
from rtaudio.server.events import (
    CancelSpeech,
    CaptionTiming,
    EndOfAudio,
    Flush,
    SessionInfo,
    Speak,
    SpeechDone,
    StartSession,
    Subscribe,
    VadEvent,
)
from rtaudio.server.native import InputConfig, NativeWire, State
from rtaudio.server.wire import encode_pcm, error_code
from rtaudio.stt.latency_budget import BudgetEvent

PROTOCOL_NAME = "rtaudio.v1"


def caption_json(caption: Caption, timing: CaptionTiming, words: bool, now_ms: float) -> dict[str, Any]:
    """The native `caption` event (also used by the Python client's tests and the browser page)."""
    obj: dict[str, Any] = {
        "type": "caption",
        "segment_id": caption.segment_id,
        "is_final": caption.is_final,
        "stability": caption.stability.value,
        "text": caption.text,
        "start_s": round(caption.start_s, 3),
        "end_s": round(caption.end_s, 3),
    }
    if words:
        obj["words"] = [
            {"text": w.text, "start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3),
             "probability": round(float(w.probability), 3)}
            for w in caption.words
        ]
    obj["decoded_until_s"] = round(timing.decoded_until_s, 3)
    obj["server_latency_ms"] = round(timing.server_latency_ms, 1)
    obj["server_time_ms"] = now_ms
    return obj


class SessionProtocol(NativeWire):
    """Native protocol state machine for one connection."""

    name = "rtaudio"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_request = 0

    # -- input -------------------------------------------------------------------------------
    def _start(self, config_json: Any) -> tuple[InputConfig, StartSession]:
        config = SessionConfig.from_json(config_json, base=self.defaults)
        return config, StartSession(config)

    def _started_config(self) -> SessionConfig | None:
        return self.config

    def _on_binary(self, data: bytes) -> None:
        if self.state is State.SUBSCRIBED:
            raise ProtocolError("a caption subscriber sends no audio")
        super()._on_binary(data)

    def _on_message(self, kind: str, msg: dict[str, Any]) -> None:
        if kind == "captions.subscribe":
            self._on_subscribe(msg)
        elif kind in ("audio.flush", "audio.end"):
            self._require(State.STREAMING, kind)
            if kind == "audio.flush":
                self._emit(Flush("flush"))
            else:
                self.state = State.AUDIO_ENDED
                self._emit(EndOfAudio(close_after=False))
        elif kind == "tts.speak":
            self._on_speak(msg)
        elif kind == "tts.cancel":
            request_id = msg.get("id")
            if request_id is not None and not isinstance(request_id, str):
                raise ProtocolError('"id" must be a string')
            self._emit(CancelSpeech(request_id))
        else:
            raise ProtocolError(
                f"unknown message type {kind!r}; expected session.start, captions.subscribe, audio.flush, "
                "audio.end, tts.speak, tts.cancel or ping"
            )

    def _on_subscribe(self, msg: dict[str, Any]) -> None:
        if self.state is not State.AWAITING_START:
            raise ProtocolError('"captions.subscribe" must be the first message (instead of "session.start")')
        channel = check_channel(msg.get("channel"))
        self.state = State.SUBSCRIBED
        self._emit(Subscribe(channel))
        self._send_json({"type": "captions.subscribed", "channel": channel, "server_time_ms": self.now_ms()})

    def _on_speak(self, msg: dict[str, Any]) -> None:
        if self.state is State.AWAITING_START:
            raise ProtocolError('"tts.speak" before "session.start"')
        if self.state is State.SUBSCRIBED:
            raise ProtocolError('a caption subscriber cannot use "tts.speak"')
        request_id = msg.get("id")
        if request_id is None:
            self._next_request += 1
            request_id = f"tts-{self._next_request}"
        text, voice = msg.get("text"), msg.get("voice")
        if not isinstance(request_id, str) or not request_id or len(request_id) > 128:
            raise ProtocolError('"id" must be a non-empty string of at most 128 characters')
        if not isinstance(text, str) or not text.strip():
            self.client_error(TextError('"text" must be a non-empty string'), request_id=request_id)
            return
        if len(text) > self.limits.max_tts_chars:
            self.client_error(TextError(f"text longer than {self.limits.max_tts_chars} characters"), request_id)
            return
        if voice is not None and not isinstance(voice, str):
            raise ConfigError('"voice" must be a string')
        speed = msg.get("speed", 1.0)
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
            raise ConfigError('"speed" must be a number in [0.25, 4]')
        self._emit(Speak(request_id, text, voice, float(speed)))

    # -- output ------------------------------------------------------------------------------
    def send_session_started(self, info: SessionInfo) -> None:
        self.config = info.config
        self.state = State.STREAMING
        self._send_json({
            "type": "session.started", "session_id": info.session_id, "protocol": PROTOCOL_NAME,
            "config": info.config.to_json(), "limits": info.limits, "server_time_ms": self.now_ms(),
        })

    def send_start_failed(self, error: RtAudioError) -> None:
        self.state = State.AWAITING_START
        self.client_error(error)

    def send_caption(self, caption: Caption, timing: CaptionTiming) -> None:
        words = self.config.words if self.config else True
        self._send_json(caption_json(caption, timing, words, self.now_ms()))

    def send_vad(self, event: VadEvent) -> None:
        self._send_json({"type": f"vad.{event.kind}", "time_s": round(event.time_s, 3),
                         "segment_id": event.segment_id, "server_time_ms": self.now_ms()})

    def send_flushed(self, reason: str) -> None:
        self._send_json({"type": "audio.flushed", "server_time_ms": self.now_ms()})

    def send_budget(self, event: BudgetEvent) -> None:
        self._send_json({"type": "budget", "degraded": event.degraded, "level": event.level, "rung": event.rung,
                         "lag_ms": round(1000 * event.lag_s, 1), "budget_ms": event.budget_ms,
                         "partial_interval_ms": event.interval_ms, "skipped_partials": event.skipped_partials,
                         "server_time_ms": self.now_ms()})

    def send_audio_ended(self, audio_s: float) -> None:
        self._send_json({"type": "audio.ended", "audio_s": round(audio_s, 3), "server_time_ms": self.now_ms()})

    def send_speech_started(self, request_id: str, sample_rate_hz: int, encoding: Encoding) -> None:
        self._send_json({"type": "tts.started", "id": request_id, "encoding": encoding.value,
                         "sample_rate_hz": sample_rate_hz, "channels": 1, "server_time_ms": self.now_ms()})

    def send_speech_audio(self, request_id: str, samples: np.ndarray, encoding: Encoding) -> None:
        self._send_bytes(encode_pcm(samples, encoding))

    def send_speech_done(self, done: SpeechDone) -> None:
        self._send_json({"type": "tts.done", "id": done.request_id, "audio_s": round(done.audio_s, 3),
                         "chunks": done.chunks, "first_chunk_ms": round(done.first_chunk_ms, 1),
                         "server_time_ms": self.now_ms()})

    def send_speech_cancelled(self, request_id: str) -> None:
        self._send_json({"type": "tts.cancelled", "id": request_id, "server_time_ms": self.now_ms()})

    def send_error(self, error: BaseException, fatal: bool, request_id: str | None = None) -> None:
        message = str(error) if isinstance(error, RtAudioError) else "internal server error"
        obj: dict[str, Any] = {"type": "error", "code": error_code(error), "message": message, "fatal": fatal}
        if request_id is not None:
            obj["id"] = request_id
        obj["server_time_ms"] = self.now_ms()
        self._send_json(obj)
