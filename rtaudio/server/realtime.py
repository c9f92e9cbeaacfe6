"""OpenAI Realtime-style transcription session over websocket (`/v1/realtime`), sans-I/O.

Client events: `session.update` (GA shape) or `transcription_session.update` (beta shape),
`input_audio_buffer.append` (base64 PCM16, 24 kHz unless the session says another rate),
`input_audio_buffer.commit`, `input_audio_buffer.clear`.
Server events: `session.created|updated` (or `transcription_session.*` when the client speaks beta or
connects with `?intent=transcription`), `input_audio_buffer.speech_started|speech_stopped|committed|
cleared`, `conversation.item.input_audio_transcription.delta|completed`, `error`.

Mapping: one caption segment is one conversation item. Deltas carry the words the recognizer has
committed (STABLE captions), so they only ever append; `completed` carries the FINAL text.
With `turn_detection: null` segments end only on `commit`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import replace
from typing import Any

from rtaudio.errors import ConfigError, EmptyAudioError, ProtocolError, RtAudioError, UnsupportedFormatError
from rtaudio.frames import Caption, Stability
from rtaudio.server.config import Encoding, SessionConfig
from rtaudio.server.events import (
    AudioIn,
    CaptionTiming,
    ClearAudio,
    Flush,
    SessionInfo,
    StartSession,
    VadEvent,
)
from rtaudio.server.wire import Wire, decode_pcm, error_code

REALTIME_RATE_HZ = 24000


def _served_model(name: Any, default: str) -> str:
    """OpenAI model names (gpt-4o-transcribe, whisper-1) map to the server default; ours pass through."""
    if isinstance(name, str) and name.startswith("whisper-") and name != "whisper-1":
        return name
    return default


def _object(value: Any, where: str) -> dict[str, Any]:
    """A JSON object field that may be absent (null): {} then; any other type is a ConfigError."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object")
    return value


class RealtimeProtocol(Wire):
    name = "openai-realtime"

    def __init__(self, *args: Any, query: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._beta = (query or {}).get("intent") == "transcription"
        self._session_id = "sess_" + secrets.token_hex(8)
        self._config = replace(self.defaults, input_sample_rate_hz=REALTIME_RATE_HZ, partial_interval_ms=500)
        self._started = False
        self._events_n = 0
        self._items: dict[int, str] = {}  # caption segment id -> item id
        self._sent: dict[str, str] = {}  # item id -> text already sent as deltas
        self._current: str | None = None  # item of the speech in progress
        self._open_item: str | None = None  # opened by speech_started, no caption yet
        self._previous: str | None = None  # last committed item
        self._audio_in_buffer = False
        self._prompt = ""
        self._commits_pending = 0  # commits not yet answered by a completed item

    # -- input -------------------------------------------------------------------------------------
    def start(self) -> None:
        self._send_event(f"{self._prefix}.created", session=self._session_json())

    @property
    def _prefix(self) -> str:
        return "transcription_session" if self._beta else "session"

    def _ensure_started(self) -> None:
        if not self._started:
            self._started = True
            self._emit(StartSession(self._config))

    def _on_binary(self, data: bytes) -> None:
        raise ProtocolError("binary messages are not part of this protocol; send input_audio_buffer.append")

    def _on_text(self, text: str) -> None:
        msg = self._parse_json(text)
        kind = msg["type"]
        if kind in ("session.update", "transcription_session.update"):
            self._beta = kind.startswith("transcription_session")
            session = msg.get("session")
            if not isinstance(session, dict):
                raise ConfigError('"session" must be an object')
            self._config = self._update_config(session) if self._beta else self._update_config_ga(session)
            if self._started:
                self._emit(StartSession(self._config))
            else:
                self._ensure_started()
        elif kind == "input_audio_buffer.append":
            audio = msg.get("audio")
            if not isinstance(audio, str):
                raise ProtocolError('"audio" must be a base64 string')
            try:
                data = base64.b64decode(audio, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ProtocolError(f"audio is not valid base64: {e}") from e
            self._ensure_started()
            if data:
                self._emit(AudioIn(decode_pcm(data, Encoding.PCM_S16LE, 1), self._config.input_sample_rate_hz))
                self._audio_in_buffer = True
        elif kind == "input_audio_buffer.commit":
            self._ensure_started()
            if not self._audio_in_buffer and self._current is None:
                raise EmptyAudioError("input audio buffer is empty; nothing to commit")
            self._commits_pending += 1
            self._emit(Flush("commit"))
        elif kind == "input_audio_buffer.clear":
            self._ensure_started()
            self._emit(ClearAudio())
        else:
            raise ProtocolError(f"unsupported event {kind!r} in a transcription session")

    def _update_config(self, s: dict[str, Any]) -> SessionConfig:
        """Beta `transcription_session.update` fields."""
        fmt = s.get("input_audio_format", "pcm16")
        if fmt != "pcm16":
            raise UnsupportedFormatError(f"input_audio_format {fmt!r} is not supported; use 'pcm16'")
        return self._apply(s.get("input_audio_transcription"), s.get("turn_detection", "keep"), REALTIME_RATE_HZ)

    def _update_config_ga(self, s: dict[str, Any]) -> SessionConfig:
        """GA `session.update` with `session.type = "transcription"`."""
        if s.get("type", "transcription") != "transcription":
            raise ConfigError("only transcription sessions are served here (session.type = 'transcription')")
        audio_in = _object(_object(s.get("audio"), "session.audio").get("input"), "session.audio.input")
        fmt = _object(audio_in.get("format"), "session.audio.input.format") or {"type": "audio/pcm"}
        if fmt.get("type") != "audio/pcm":
            raise UnsupportedFormatError(f"audio format {fmt.get('type')!r} is not supported; use 'audio/pcm'")
        rate = fmt.get("rate", REALTIME_RATE_HZ)
        return self._apply(audio_in.get("transcription"), audio_in.get("turn_detection", "keep"), rate)

    def _apply(self, transcription: Any, turn: Any, rate: Any) -> SessionConfig:
        cfg: dict[str, Any] = {"audio": {"sample_rate_hz": rate}}
        if isinstance(transcription, dict):
            cfg["model"] = _served_model(transcription.get("model"), self.defaults.model)
            if transcription.get("language") is not None:
                cfg["language"] = transcription["language"]
            self._prompt = str(transcription.get("prompt") or "")
        if turn is None:
            cfg["vad"] = {"enabled": False}
        elif isinstance(turn, dict):
            vad: dict[str, Any] = {"enabled": True}
            if "threshold" in turn:
                vad["threshold"] = turn["threshold"]
            if "silence_duration_ms" in turn:
                silence = turn["silence_duration_ms"]
                if isinstance(silence, bool) or not isinstance(silence, (int, float)) or not 0 <= silence < 1e6:
                    raise ConfigError(f"turn_detection.silence_duration_ms must be a number of ms, got {silence!r}")
                vad["min_silence_ms"] = max(100, int(silence))
            cfg["vad"] = vad
        return SessionConfig.from_json(cfg, base=self._config)

    # -- output ------------------------------------------------------------------------------------
    def _send_event(self, kind: str, **fields: Any) -> None:
        self._events_n += 1
        self._send_json({"type": kind, "event_id": f"event_{self._events_n:06d}", **fields})

    def _session_json(self) -> dict[str, Any]:
        c = self._config
        turn = ({"type": "server_vad", "threshold": c.vad_threshold, "prefix_padding_ms": 200,
                 "silence_duration_ms": c.vad_min_silence_ms} if c.vad_enabled else None)
        transcription = {"model": c.model, "language": c.language, "prompt": self._prompt}
        if self._beta:
            return {"id": self._session_id, "object": "realtime.transcription_session",
                    "input_audio_format": "pcm16", "input_audio_transcription": transcription,
                    "turn_detection": turn}
        return {"type": "transcription", "id": self._session_id, "object": "realtime.transcription_session",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": c.input_sample_rate_hz},
                                    "transcription": transcription, "turn_detection": turn}}}

    def send_session_started(self, info: SessionInfo) -> None:
        self.config = self._config = info.config
        self._send_event(f"{self._prefix}.updated", session=self._session_json())

    def _item_for(self, segment_id: int) -> str:
        """The item of a caption segment: the one speech_started opened, else a new one."""
        item = self._items.get(segment_id)
        if item is None:
            item, self._open_item = self._open_item or "item_" + secrets.token_hex(8), None
            self._items[segment_id] = item
            self._current = item
        return item

    def send_vad(self, event: VadEvent) -> None:
        if event.kind == "speech_started":
            self._open_item = self._current = "item_" + secrets.token_hex(8)
            self._send_event("input_audio_buffer.speech_started", audio_start_ms=int(event.time_s * 1000),
                             item_id=self._current)
        elif self._current is not None:
            self._send_event("input_audio_buffer.speech_stopped", audio_end_ms=int(event.time_s * 1000),
                             item_id=self._current)

    def send_caption(self, caption: Caption, timing: CaptionTiming) -> None:
        if caption.stability is Stability.PARTIAL:
            return  # deltas only ever append: they follow the committed (STABLE) words
        item = self._item_for(caption.segment_id)
        sent = self._sent.get(item, "")
        text = caption.text
        if text.startswith(sent) and len(text) > len(sent):
            delta = text[len(sent):] if sent else text
            self._sent[item] = text
            self._send_event("conversation.item.input_audio_transcription.delta", item_id=item, content_index=0,
                             delta=delta)
        self._sent.setdefault(item, "")
        if caption.is_final:
            self._send_event("input_audio_buffer.committed", previous_item_id=self._previous, item_id=item)
            self._send_event("conversation.item.input_audio_transcription.completed", item_id=item,
                             content_index=0, transcript=text,
                             usage={"type": "duration", "seconds": round(caption.end_s - caption.start_s, 3)})
            self._previous = item
            self._audio_in_buffer = False
            self._commits_pending = max(0, self._commits_pending - 1)
            if self._current == item:
                self._current = None

    def send_flushed(self, reason: str) -> None:
        """A commit that produced no caption (silence) still gets its item, with an empty transcript."""
        if reason != "commit" or self._commits_pending == 0:
            return
        self._commits_pending -= 1
        item, self._open_item = self._open_item or "item_" + secrets.token_hex(8), None
        self._send_event("input_audio_buffer.committed", previous_item_id=self._previous, item_id=item)
        self._send_event("conversation.item.input_audio_transcription.completed", item_id=item, content_index=0,
                         transcript="", usage={"type": "duration", "seconds": 0.0})
        self._previous, self._current, self._audio_in_buffer = item, None, False

    def send_cleared(self) -> None:
        self._audio_in_buffer = False
        self._send_event("input_audio_buffer.cleared")

    def send_error(self, error: BaseException, fatal: bool, request_id: str | None = None) -> None:
        message = str(error) if isinstance(error, RtAudioError) else "internal server error"
        kind = "invalid_request_error" if isinstance(error, RtAudioError) else "server_error"
        self._send_event("error", error={"type": kind, "code": error_code(error), "message": message,
                                         "param": None, "event_id": None})
