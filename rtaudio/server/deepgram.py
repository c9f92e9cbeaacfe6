"""Deepgram-style live transcription over websocket (`/v1/listen`), sans-I/O.

Query parameters: encoding (linear16, default), sample_rate (default 16000), channels (default 1),
interim_results, endpointing (ms of silence, or false), vad_events, utterance_end_ms, model, language.
Others (punctuate, smart_format...) are accepted and ignored. The client sends binary audio and the
text messages KeepAlive, Finalize and CloseStream; the server answers with Results (is_final,
speech_final, from_finalize), SpeechStarted, UtteranceEnd and, at close, Metadata.
"""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

from rtaudio.errors import ConfigError, ProtocolError, RtAudioError
from rtaudio.frames import Caption, Stability
from rtaudio.server.config import SessionConfig
from rtaudio.server.events import (
    AudioIn,
    CaptionTiming,
    EndOfAudio,
    Flush,
    SessionInfo,
    StartSession,
    VadEvent,
)
from rtaudio.server.wire import Wire, decode_pcm, error_code

_PUNCT = re.compile(r"[^\w'-]+")


def _bool(query: dict[str, str], key: str, default: bool) -> bool:
    value = query.get(key)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"{key} must be true or false, got {value!r}")


def _int(query: dict[str, str], key: str, default: int) -> int:
    value = query.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ConfigError(f"{key} must be an integer, got {value!r}") from e


def config_from_query(query: dict[str, str], base: SessionConfig | None = None) -> tuple[SessionConfig, dict[str, Any]]:
    """Query parameters -> session config (on `base`, the server's defaults), plus the Deepgram-only options."""
    endpointing = query.get("endpointing", "300")
    vad: dict[str, Any] = {"enabled": endpointing.lower() != "false"}
    if vad["enabled"]:
        vad["min_silence_ms"] = max(100, _int(query, "endpointing", 300))
    cfg: dict[str, Any] = {
        "audio": {"encoding": query.get("encoding", "linear16"), "sample_rate_hz": _int(query, "sample_rate", 16000),
                  "channels": _int(query, "channels", 1)},
        "vad": vad,
    }
    model = query.get("model")
    if model and model.startswith("whisper-"):
        cfg["model"] = model
    if query.get("language"):
        cfg["language"] = query["language"]
    options = {"interim_results": _bool(query, "interim_results", False),
               "vad_events": _bool(query, "vad_events", False),
               "utterance_end_ms": _int(query, "utterance_end_ms", 0)}
    return SessionConfig.from_json(cfg, base=base), options


class DeepgramProtocol(Wire):
    name = "deepgram"

    def __init__(self, *args: Any, query: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._query = query or {}
        self._request_id = str(uuid.uuid4())
        self._model_uuid = str(uuid.uuid4())
        self._options: dict[str, Any] = {}
        self._endpoint = False
        self._finalizing = False
        self._closing = False
        self._audio_s = 0.0

    def start(self) -> None:
        try:
            config, self._options = config_from_query(self._query, self.defaults)
        except RtAudioError as e:
            self.fail(e)
            return
        self.config = config
        self._emit(StartSession(config))

    # -- input -------------------------------------------------------------------------------------
    def _on_binary(self, data: bytes) -> None:
        if self._closing or self.config is None:
            raise ProtocolError("audio after CloseStream")
        if not data:  # the legacy way to close a stream
            self._close_stream()
            return
        samples = decode_pcm(data, self.config.input_encoding, self.config.input_channels)
        self._emit(AudioIn(samples, self.config.input_sample_rate_hz))

    def _on_text(self, text: str) -> None:
        kind = self._parse_json(text)["type"]
        if kind == "KeepAlive":
            return
        if kind == "Finalize":
            self._finalizing = True
            self._emit(Flush("finalize"))
        elif kind == "CloseStream":
            self._close_stream()
        else:
            raise ProtocolError(f"unknown message type {kind!r}; expected KeepAlive, Finalize or CloseStream")

    def _close_stream(self) -> None:
        if not self._closing:
            self._closing = True
            self._emit(EndOfAudio(close_after=True))

    # -- output ------------------------------------------------------------------------------------
    @property
    def _model(self) -> str:
        return self.config.model if self.config else self.defaults.model

    def send_session_started(self, info: SessionInfo) -> None:
        self.config = info.config

    def send_vad(self, event: VadEvent) -> None:
        if event.kind == "speech_started":
            if self._options.get("vad_events"):
                self._send_json({"type": "SpeechStarted", "channel": [0], "timestamp": round(event.time_s, 3)})
        else:
            self._endpoint = True

    def send_caption(self, caption: Caption, timing: CaptionTiming) -> None:
        if caption.stability is Stability.STABLE:
            return
        if not caption.is_final and not self._options.get("interim_results"):
            return
        words: list[dict[str, Any]] = [{"word": _PUNCT.sub("", w.text.strip()).lower(), "start": round(w.start_s, 3),
                  "end": round(w.end_s, 3), "confidence": round(float(w.probability), 4),
                  "punctuated_word": w.text.strip()} for w in caption.words if w.text.strip()]
        confidence = sum(w["confidence"] for w in words) / len(words) if words else 0.0
        speech_final = caption.is_final and self._endpoint
        self._send_json({
            "type": "Results", "channel_index": [0, 1],
            "duration": round(caption.end_s - caption.start_s, 3), "start": round(caption.start_s, 3),
            "is_final": caption.is_final, "speech_final": speech_final,
            "from_finalize": caption.is_final and self._finalizing,
            "channel": {"alternatives": [{"transcript": caption.text, "confidence": round(confidence, 4),
                                          "words": words}]},
            "metadata": {"request_id": self._request_id, "model_uuid": self._model_uuid,
                         "model_info": {"name": self._model, "version": "rtaudio", "arch": "whisper"}},
        })
        if caption.is_final:
            self._endpoint = False
            if speech_final and self._options.get("utterance_end_ms") and words:
                self._send_json({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": words[-1]["end"]})

    def send_flushed(self, reason: str) -> None:
        self._finalizing = False

    def send_audio_ended(self, audio_s: float) -> None:
        created = datetime.datetime.fromtimestamp(self._wall_clock(), datetime.timezone.utc)
        self._send_json({
            "type": "Metadata", "transaction_key": "deprecated", "request_id": self._request_id, "sha256": "",
            "created": created.isoformat().replace("+00:00", "Z"), "duration": round(audio_s, 3), "channels": 1,
            "models": [self._model_uuid],
            "model_info": {self._model_uuid: {"name": self._model, "version": "rtaudio", "arch": "whisper"}},
        })

    def send_error(self, error: BaseException, fatal: bool, request_id: str | None = None) -> None:
        message = str(error) if isinstance(error, RtAudioError) else "internal server error"
        self._send_json({"type": "Error", "err_code": error_code(error), "err_msg": message,
                         "request_id": self._request_id})
