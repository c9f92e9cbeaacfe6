"""What the two rtaudio-native protocols (`/v1/stream`, `/v1/assistant`) share, sans-I/O.

    client                                   server
    {"type":"ping","id":..}                -> {"type":"pong","id":..}   (at any time)
    {"type":"session.start","config":{..}} -> the protocol's start event; the server answers "session.started"
    <binary PCM>, <binary PCM>, ...        -> AudioIn, also between "session.start" and "session.started"

Both walk through the same `State`s; each protocol handles its other messages in `_on_message`.
"""

from __future__ import annotations

import enum
from typing import Any

from rtaudio.errors import ProtocolError
from rtaudio.server.assistant_config import AssistantConfig
from rtaudio.server.config import SessionConfig
from rtaudio.server.events import AudioIn, ClientEvent
from rtaudio.server.wire import Wire, decode_pcm

InputConfig = SessionConfig | AssistantConfig  # what a client's binary audio is decoded with


class State(enum.Enum):
    """Where a native connection is; the value is named in error messages."""

    AWAITING_START = "awaiting_start"
    STARTING = "starting"
    STREAMING = "streaming"  # /v1/stream, after "session.started"
    RUNNING = "running"  # /v1/assistant, after "session.started"
    AUDIO_ENDED = "audio_ended"
    SUBSCRIBED = "subscribed"  # /v1/stream, a read-only caption viewer


class NativeWire(Wire):
    """Base of the native protocols: ping, session.start and binary audio.

    A subclass implements `_start` (parse the requested config), `_started_config` (the config in
    force once "session.started" was sent) and `_on_message` (its other text messages).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = State.AWAITING_START
        self._pending: InputConfig | None = None  # requested by "session.start", until "session.started"

    def _start(self, config_json: Any) -> tuple[InputConfig, ClientEvent]:
        """The "config" of "session.start" -> (config, event to emit); ConfigError when it is invalid."""
        raise NotImplementedError

    def _started_config(self) -> InputConfig | None:
        raise NotImplementedError

    def _on_message(self, kind: str, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    def _on_binary(self, data: bytes) -> None:
        # Audio may follow "session.start" at once, before "session.started" comes back.
        config = self._pending if self.state is State.STARTING else self._started_config()
        if self.state is State.AWAITING_START or config is None:
            raise ProtocolError('binary audio before "session.start"')
        if self.state is State.AUDIO_ENDED:
            raise ProtocolError('binary audio after "audio.end"')
        if data:
            samples = decode_pcm(data, config.input_encoding, config.input_channels)
            self._emit(AudioIn(samples, config.input_sample_rate_hz))

    def _on_text(self, text: str) -> None:
        msg = self._parse_json(text)
        kind = msg["type"]
        if kind == "ping":
            self._send_json({"type": "pong", "id": msg.get("id"), "server_time_ms": self.now_ms()})
        elif kind == "session.start":
            if self.state is not State.AWAITING_START:
                raise ProtocolError("session already started")
            config, event = self._start(msg.get("config"))
            self.state, self._pending = State.STARTING, config
            self._emit(event)
        else:
            self._on_message(kind, msg)

    def _require(self, state: State, kind: str) -> None:
        if self.state is not state:
            raise ProtocolError(f"{kind!r} not allowed in state {self.state.value}")
