"""What a wire protocol hands the server (client events) and what the server tells it to send (timings).

Every wire protocol (native, OpenAI Realtime-style, Deepgram-style) turns its messages into these
same events, so one session runner serves all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from rtaudio.errors import RtAudioError
from rtaudio.server.assistant_config import AssistantConfig
from rtaudio.server.config import SessionConfig


@dataclass(frozen=True)
class StartSession:
    """Start (or restart with new settings) the caption stream."""

    config: SessionConfig


@dataclass(frozen=True)
class AudioIn:
    """Decoded client audio: float32 mono in [-1, 1] at the session's input rate."""

    samples: np.ndarray
    sample_rate_hz: int


@dataclass(frozen=True)
class Flush:
    """Finish the current segment now: its caption becomes final (audio.flush, Finalize, commit)."""

    reason: str = "flush"


@dataclass(frozen=True)
class ClearAudio:
    """Forget audio received but not yet captioned (OpenAI input_audio_buffer.clear)."""


@dataclass(frozen=True)
class EndOfAudio:
    """No more audio: flush the last final caption; `close_after` closes the connection once done."""

    close_after: bool = False


@dataclass(frozen=True)
class Speak:
    """Synthesize `text` and stream it back."""

    request_id: str
    text: str
    voice: str | None = None
    speed: float = 1.0
    """Speaking rate factor (2.0 = twice as fast)."""


@dataclass(frozen=True)
class CancelSpeech:
    """Stop a speech request (None: all of them); control outranks queued audio."""

    request_id: str | None = None


@dataclass(frozen=True)
class Subscribe:
    """Follow the captions published on `channel` (read-only viewer, e.g. the OBS overlay)."""

    channel: str


@dataclass(frozen=True)
class ClientMistake:
    """The client broke the protocol; already answered on the wire, reported here for metrics."""

    error: RtAudioError
    fatal: bool


@dataclass(frozen=True)
class StartAssistant:
    """Start a voice assistant session (`/v1/assistant`) with the client's settings."""

    config: AssistantConfig


ClientEvent = Union[StartSession, AudioIn, Flush, ClearAudio, EndOfAudio, Speak, CancelSpeech, Subscribe,  # noqa: UP007
                    ClientMistake, StartAssistant]


@dataclass(frozen=True)
class SessionInfo:
    """What the server tells a client when its session (re)starts."""

    session_id: str
    config: SessionConfig
    limits: dict[str, float]


@dataclass(frozen=True)
class CaptionTiming:
    """Latency facts attached to a caption so a client can see (and check) the delay.

    decoded_until_s: stream time of the newest audio the decode had seen.
    server_latency_ms: from the arrival of that audio at the server to the caption being sent.
    """

    decoded_until_s: float
    server_latency_ms: float


@dataclass(frozen=True)
class VadEvent:
    """Speech activity at stream time `time_s`: kind is 'speech_started' or 'speech_stopped'."""

    kind: str
    time_s: float
    segment_id: int = 0


@dataclass(frozen=True)
class SpeechDone:
    request_id: str
    audio_s: float
    chunks: int
    first_chunk_ms: float
