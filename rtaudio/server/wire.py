"""The shared core of every sans-I/O wire protocol: limits, client errors, close codes, PCM decoding.

A wire protocol is fed whole websocket messages (`receive_message`), yields `ClientEvent`s
(`events_received`) and queues messages to send (`data_to_send`: str for JSON text, bytes for
binary audio). It never touches a socket or asyncio, so tests drive it bytes-in / bytes-out.

Client mistakes are answered on the wire and reported as `ClientMistake` events; a fatal one sets
`close_code` / `close_reason` and the glue closes the connection after sending what is queued.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from rtaudio.clock import Clock, wall_time_s
from rtaudio.dsp.pcm import float32_to_int16, int16_to_float32, to_mono
from rtaudio.errors import (
    AudioError,
    AuthError,
    CapacityError,
    ConfigError,
    MessageTooLargeError,
    ProtocolError,
    RateLimitError,
    RtAudioError,
)
from rtaudio.frames import Caption
from rtaudio.log import get_logger
from rtaudio.server.config import Encoding, ServerLimits, SessionConfig
from rtaudio.server.events import CaptionTiming, ClientEvent, ClientMistake, SessionInfo, SpeechDone, VadEvent
from rtaudio.server.ratelimit import TokenBucket
from rtaudio.stt.latency_budget import BudgetEvent

log = get_logger("rtaudio.server.wire")

# RFC 6455 close codes used by the server.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013


def close_code_for(error: BaseException) -> int:
    """The websocket close code that goes with a fatal error."""
    if isinstance(error, MessageTooLargeError):
        return CLOSE_TOO_BIG
    if isinstance(error, CapacityError):
        return CLOSE_TRY_AGAIN
    if isinstance(error, (RateLimitError, AuthError, ProtocolError)):
        return CLOSE_POLICY
    if isinstance(error, (AudioError, ConfigError)):
        return CLOSE_INVALID_PAYLOAD
    return CLOSE_INTERNAL


def error_code(error: BaseException) -> str:
    """Stable machine-readable code (rtaudio.errors `code`); 'internal_error' for server bugs."""
    return error.code if isinstance(error, RtAudioError) else "internal_error"


def decode_pcm(data: bytes, encoding: Encoding, channels: int) -> np.ndarray:
    """Little-endian PCM bytes -> float32 mono in [-1, 1]; misaligned or non-finite data is an AudioError."""
    frame_bytes = encoding.bytes_per_sample * channels
    if len(data) % frame_bytes:
        raise AudioError(
            f"binary frame of {len(data)} bytes is not a whole number of {channels}-channel "
            f"{encoding.value} samples ({frame_bytes} bytes each)"
        )
    if encoding is Encoding.PCM_S16LE:
        x = int16_to_float32(np.frombuffer(data, dtype="<i2"))
    else:
        x = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise AudioError("float32 audio contains NaN or infinity")
        x = np.clip(x, -1.0, 1.0)
    if channels > 1:
        x = to_mono(x.reshape(-1, channels))
    return np.ascontiguousarray(x, dtype=np.float32)


def encode_pcm(samples: np.ndarray, encoding: Encoding) -> bytes:
    """float32 mono -> little-endian PCM bytes for the wire."""
    if encoding is Encoding.PCM_S16LE:
        return float32_to_int16(samples).astype("<i2").tobytes()
    return np.asarray(samples, dtype="<f4").tobytes()


class Wire:
    """Base of the wire protocols; subclasses implement `_on_text`, `_on_binary` and the `send_*` renderers."""

    name = "wire"

    def __init__(self, limits: ServerLimits, clock: Clock, wall_clock: Any = wall_time_s,
                 defaults: SessionConfig | None = None) -> None:
        self.limits = limits
        self.defaults = defaults or SessionConfig()
        """What a session that names no model or voice gets: the server's first served ones."""
        self._clock = clock
        self._wall_clock = wall_clock
        self._bucket = TokenBucket(limits.max_messages_per_s, 2 * limits.max_messages_per_s, clock)
        self._events: list[ClientEvent] = []
        self._out: list[str | bytes] = []
        self._mistakes = 0
        self.config: SessionConfig | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    # -- input -------------------------------------------------------------------------------
    def start(self) -> None:
        """The connection is open; a protocol may emit events or greet the client here."""

    def receive_message(self, message: str | bytes) -> None:
        """Feed one complete websocket message (str: text frame, bytes: binary frame)."""
        if self.close_code is not None:
            return
        if not self._bucket.take():
            self.fail(RateLimitError(f"more than {self.limits.max_messages_per_s:g} messages per second"))
            return
        size = len(message)
        if size > self.limits.max_message_bytes:
            self.fail(MessageTooLargeError(f"message of {size} bytes exceeds {self.limits.max_message_bytes}"))
            return
        try:
            if isinstance(message, str):
                self._on_text(message)
            else:
                self._on_binary(bytes(message))
        except RtAudioError as e:
            self.client_error(e)
        except Exception as e:  # a bug of ours: this session closes (1011), the server and others go on
            log.error("%s protocol failed on a client message", self.name, exc_info=True)
            self.fail(e)

    def events_received(self) -> list[ClientEvent]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str | bytes]:
        out, self._out = self._out, []
        return out

    def _on_text(self, text: str) -> None:
        raise NotImplementedError

    def _on_binary(self, data: bytes) -> None:
        raise NotImplementedError

    def _emit(self, event: ClientEvent) -> None:
        self._events.append(event)

    def _parse_json(self, text: str) -> dict[str, Any]:
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise ProtocolError(f"text message is not valid JSON: {e}") from e
        except RecursionError as e:  # "[[[[..." deeper than the parser's recursion limit
            raise ProtocolError("text message is nested too deeply") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise ProtocolError('text message must be a JSON object with a string "type"')
        return obj

    # -- errors and closing --------------------------------------------------------------------
    def client_error(self, error: RtAudioError, request_id: str | None = None) -> None:
        """A recoverable client mistake: answer it and keep going, unless there were too many."""
        self._mistakes += 1
        if self._mistakes > self.limits.max_client_errors:
            self.fail(ProtocolError(f"too many client errors ({self._mistakes}); last: {error}"))
            return
        self._emit(ClientMistake(error, fatal=False))
        self.send_error(error, fatal=False, request_id=request_id)

    def fail(self, error: BaseException, code: int | None = None) -> None:
        """A fatal error: tell the client, then ask the glue to close the connection."""
        if self.close_code is not None:
            return
        if isinstance(error, RtAudioError):
            self._emit(ClientMistake(error, fatal=True))
        self.send_error(error, fatal=True)
        self.close(code if code is not None else close_code_for(error), error_code(error))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason[:120]

    # -- output helpers ------------------------------------------------------------------------
    def now_ms(self) -> float:
        """Wall-clock UNIX time in ms, stamped on events so same-host clients can measure latency."""
        return round(float(self._wall_clock()) * 1000.0, 3)

    def _send_json(self, obj: dict[str, Any]) -> None:
        self._out.append(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))

    def _send_bytes(self, data: bytes) -> None:
        self._out.append(data)

    # -- output API (rendered by each protocol) -----------------------------------------------------
    def send_session_started(self, info: SessionInfo) -> None:
        """The session (re)started with `info.config`."""

    def send_start_failed(self, error: RtAudioError) -> None:
        """The requested config cannot be served (unknown model...)."""
        self.client_error(error)

    def send_caption(self, caption: Caption, timing: CaptionTiming) -> None:
        raise NotImplementedError

    def send_vad(self, event: VadEvent) -> None:
        """Speech started / stopped; protocols without such events ignore it."""

    def send_flushed(self, reason: str) -> None:
        """A Flush finished: every caption it produced has been sent."""

    def send_budget(self, event: BudgetEvent) -> None:
        """The session stepped on its degradation ladder; protocols without such an event ignore it."""

    def send_cleared(self) -> None:
        """ClearAudio finished."""

    def send_audio_ended(self, audio_s: float) -> None:
        """EndOfAudio finished: the last final caption has been sent."""

    def send_speech_started(self, request_id: str, sample_rate_hz: int, encoding: Encoding) -> None:
        raise ProtocolError(f"{self.name} protocol does not do speech synthesis")

    def send_speech_audio(self, request_id: str, samples: np.ndarray, encoding: Encoding) -> None:
        raise ProtocolError(f"{self.name} protocol does not do speech synthesis")

    def send_speech_done(self, done: SpeechDone) -> None:
        raise ProtocolError(f"{self.name} protocol does not do speech synthesis")

    def send_speech_cancelled(self, request_id: str) -> None:
        raise ProtocolError(f"{self.name} protocol does not do speech synthesis")

    def send_error(self, error: BaseException, fatal: bool, request_id: str | None = None) -> None:
        raise NotImplementedError
