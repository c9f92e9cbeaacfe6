"""The voice assistant websocket protocol (`/v1/assistant`), sans-I/O. PROTOCOL.md "Voice assistant" is its spec.

    client                                    server
    {"type":"session.start","config":{..}} -> {"type":"session.started",..}
    <binary mic PCM> (every 20 ms)          -> nothing while the assistant is quiet;
                                               one binary frame of reply audio per mic frame while it speaks
                                            -> user.speech_started, user.partial, assistant.turn,
                                               assistant.speaking, assistant.reply, assistant.timings,
                                               assistant.paused / resumed, assistant.barge_in, assistant.done
    {"type":"audio.end"}                    -> the server plays the conversation out on its own clock,
                                               then {"type":"audio.ended"}

States: AWAITING_START -> STARTING -> RUNNING -> AUDIO_ENDED. Server binary messages are always reply audio
of the reply announced by the last `assistant.speaking` (until its `assistant.done`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rtaudio.errors import ProtocolError, RtAudioError
from rtaudio.server.assistant_config import AssistantConfig
from rtaudio.server.config import Encoding
from rtaudio.server.events import EndOfAudio, StartAssistant
from rtaudio.server.native import InputConfig, NativeWire, State
from rtaudio.server.wire import encode_pcm, error_code

PROTOCOL_NAME = "rtaudio.assistant.v1"


def stream_seconds(samples: int) -> float:
    """16 kHz stream samples -> seconds, rounded for the wire."""
    return round(samples / 16000, 3)


class AssistantProtocol(NativeWire):
    name = "assistant"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.assistant_config: AssistantConfig | None = None

    # -- input -------------------------------------------------------------------------------
    def _start(self, config_json: Any) -> tuple[InputConfig, StartAssistant]:
        config = AssistantConfig.from_json(config_json)
        return config, StartAssistant(config)

    def _started_config(self) -> AssistantConfig | None:
        return self.assistant_config

    def _on_message(self, kind: str, msg: dict[str, Any]) -> None:
        if kind == "audio.end":
            self._require(State.RUNNING, kind)
            self.state = State.AUDIO_ENDED
            self._emit(EndOfAudio())
        else:
            raise ProtocolError(f"unknown message type {kind!r}; expected session.start, audio.end or ping")

    # -- output ------------------------------------------------------------------------------
    def send_assistant_started(self, session_id: str, config: AssistantConfig, responder: str,
                               limits: dict[str, float]) -> None:
        self.assistant_config = config
        self.state = State.RUNNING
        self._send_json({"type": "session.started", "session_id": session_id, "protocol": PROTOCOL_NAME,
                         "config": config.to_json(), "responder": responder, "limits": limits,
                         "server_time_ms": self.now_ms()})

    def send_start_failed(self, error: RtAudioError) -> None:
        self.state, self._pending = State.AWAITING_START, None
        self.client_error(error)

    def send_event(self, kind: str, **fields: Any) -> None:
        """An assistant event (`user.*`, `assistant.*`); stream times are already in seconds."""
        self._send_json({"type": kind, **fields, "server_time_ms": self.now_ms()})

    def send_reply_audio(self, samples: np.ndarray, encoding: Encoding) -> None:
        self._send_bytes(encode_pcm(samples, encoding))

    def send_audio_ended(self, audio_s: float) -> None:
        self._send_json({"type": "audio.ended", "audio_s": round(audio_s, 3), "server_time_ms": self.now_ms()})

    def send_error(self, error: BaseException, fatal: bool, request_id: str | None = None) -> None:
        message = str(error) if isinstance(error, RtAudioError) else "internal server error"
        self._send_json({"type": "error", "code": error_code(error), "message": message, "fatal": fatal,
                         "server_time_ms": self.now_ms()})

    def send_caption(self, caption: Any, timing: Any) -> None:  # no captions on this endpoint
        raise ProtocolError("the assistant protocol sends no captions")

