"""What a `/v1/assistant` client may choose: its audio formats, the recognizer and voice, turn-taking waits.

Read strictly from the `config` object of `session.start` (an unknown key is a `bad_config` error). Who
answers (the responder, an LLM URL) is not here: that is the operator's `AssistantServiceConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from rtaudio.assistant.turns import TurnConfig
from rtaudio.errors import ConfigError
from rtaudio.server.config import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE_HZ,
    MIN_SAMPLE_RATE_HZ,
    Encoding,
    parse_encoding,
)

_SECTIONS = {
    "audio": ("encoding", "sample_rate_hz", "channels"),
    "tts": ("voice", "encoding", "sample_rate_hz"),
    "turn": ("complete_silence_ms", "default_silence_ms", "continuation_silence_ms", "min_interrupt_words"),
}


def _rate(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_SAMPLE_RATE_HZ <= value <= MAX_SAMPLE_RATE_HZ:
        raise ConfigError(f"{where} must be an integer in [{MIN_SAMPLE_RATE_HZ}, {MAX_SAMPLE_RATE_HZ}] Hz, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class AssistantConfig:
    model: str | None = None
    """Recognizer model; None: the server's default."""
    voice: str | None = None
    """Reply voice; None: the server's first voice."""
    input_encoding: Encoding = Encoding.PCM_S16LE
    input_sample_rate_hz: int = 16000
    """Rate of the client's microphone audio; resampled to 16 kHz server-side."""
    input_channels: int = 1
    output_encoding: Encoding = Encoding.PCM_S16LE
    output_sample_rate_hz: int | None = None
    """Rate of the reply audio the server sends; None: the same as the input rate."""
    turn: TurnConfig = field(default_factory=TurnConfig)
    """How long a pause ends the user's turn (after a finished sentence, with no cue, after "and"/"um")."""

    def __post_init__(self) -> None:
        _rate(self.input_sample_rate_hz, "audio.sample_rate_hz")
        if self.output_sample_rate_hz is not None:
            _rate(self.output_sample_rate_hz, "tts.sample_rate_hz")
        if isinstance(self.input_channels, bool) or not 1 <= self.input_channels <= MAX_CHANNELS:
            raise ConfigError(f"audio.channels must be in [1, {MAX_CHANNELS}], got {self.input_channels!r}")
        if self.model == "" or self.voice == "":
            raise ConfigError("model and tts.voice must be non-empty")
        if not (100 <= self.turn.complete_silence_ms and self.turn.continuation_silence_ms <= 5000):
            raise ConfigError("turn waits must be in [100, 5000] ms")
        if not 1 <= self.turn.min_interrupt_words <= 10:
            raise ConfigError("turn.min_interrupt_words must be in [1, 10]")

    @property
    def output_rate_hz(self) -> int:
        return self.output_sample_rate_hz or self.input_sample_rate_hz

    @classmethod
    def from_json(cls, obj: Any) -> AssistantConfig:
        """Read the `config` object of `session.start` (PROTOCOL.md, "Voice assistant")."""
        if obj is None:
            return cls()
        if not isinstance(obj, dict):
            raise ConfigError("config must be a JSON object")
        kw: dict[str, Any] = {}
        turn: dict[str, Any] = {}
        for key, value in obj.items():
            if key in ("model",):
                if not isinstance(value, (str, type(None))):
                    raise ConfigError(f"{key} must be a string or null")
                kw[key] = value
            elif key in _SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{key} must be a JSON object")
                for sub, v in value.items():
                    if sub not in _SECTIONS[key]:
                        raise ConfigError(f"unknown key {key}.{sub}; known: {', '.join(_SECTIONS[key])}")
                    where = f"{key}.{sub}"
                    if key == "turn" and sub == "min_interrupt_words":
                        if isinstance(v, bool) or not isinstance(v, int):
                            raise ConfigError(f"{where} must be an integer, got {v!r}")
                        turn[sub] = v
                    elif key == "turn":
                        turn[sub] = _number(v, where)
                    elif sub == "encoding":
                        kw["input_encoding" if key == "audio" else "output_encoding"] = parse_encoding(v, where)
                    elif sub == "sample_rate_hz":
                        if key == "audio":
                            kw["input_sample_rate_hz"] = _rate(v, where)
                        else:
                            kw["output_sample_rate_hz"] = None if v is None else _rate(v, where)
                    elif sub == "channels":
                        if isinstance(v, bool) or not isinstance(v, int):
                            raise ConfigError(f"{where} must be an integer, got {v!r}")
                        kw["input_channels"] = v
                    elif not isinstance(v, (str, type(None))):  # tts.voice
                        raise ConfigError(f"{where} must be a string or null")
                    else:
                        kw["voice"] = v
            else:
                raise ConfigError(f"unknown config key {key!r}; known: model, {', '.join(_SECTIONS)} "
                                  "(the responder is the server's choice)")
        if turn:
            kw["turn"] = replace(TurnConfig(), **turn)  # TurnConfig checks its own order
        return cls(**kw)

    def resolved(self, model: str, voice: str) -> AssistantConfig:
        """This config with the server's defaults filled in."""
        return replace(self, model=self.model or model, voice=self.voice or voice)

    @property
    def input_frame_bytes(self) -> int:
        return self.input_encoding.bytes_per_sample * self.input_channels

    def to_json(self) -> dict[str, Any]:
        """The effective config, echoed in `session.started` (the shape `from_json` reads)."""
        t = self.turn
        return {
            "model": self.model,
            "audio": {"encoding": self.input_encoding.value, "sample_rate_hz": self.input_sample_rate_hz,
                      "channels": self.input_channels},
            "tts": {"voice": self.voice, "encoding": self.output_encoding.value, "sample_rate_hz": self.output_rate_hz},
            "turn": {"complete_silence_ms": t.complete_silence_ms, "default_silence_ms": t.default_silence_ms,
                     "continuation_silence_ms": t.continuation_silence_ms,
                     "min_interrupt_words": t.min_interrupt_words},
        }
