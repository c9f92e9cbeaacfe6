"""The exception tree of rtaudio.

Every error a user can cause or meet derives from `RtAudioError`, so callers can catch one type.
`code` is a stable, machine-readable string that the websocket protocol sends to clients.

    RtAudioError
    ├── ConfigError            bad option value or combination
    ├── AudioError             audio cannot be read, decoded or converted
    │   ├── UnsupportedFormatError
    │   ├── EmptyAudioError
    │   ├── SampleRateError
    │   └── DeviceError        microphone / speaker / PortAudio missing
    ├── ToolMissingError       an external program (ffmpeg, espeak-ng) is not installed
    ├── ModelError             model registry and cache
    │   ├── ModelNotFetchedError   cache empty and cannot fetch
    │   ├── ModelIntegrityError    sha256 mismatch or truncated file
    │   └── UnknownModelError      name not in the registry (also unknown voices)
    ├── TextError              text to speak is empty or unusable
    ├── ProtocolError          a client broke the websocket protocol
    │   ├── MessageTooLargeError
    │   └── RateLimitError
    ├── AuthError              missing or wrong token, bad Origin
    ├── CapacityError          server full / budget would be broken
    └── BudgetError            a latency budget cannot be met
"""

from __future__ import annotations


class RtAudioError(Exception):
    """Base of every rtaudio error."""

    code = "error"


class ConfigError(RtAudioError, ValueError):
    code = "bad_config"


class AudioError(RtAudioError):
    code = "bad_audio"


class UnsupportedFormatError(AudioError):
    code = "unsupported_format"


class EmptyAudioError(AudioError):
    code = "empty_audio"


class SampleRateError(AudioError):
    code = "bad_sample_rate"


class DeviceError(AudioError):
    code = "device_error"


class ToolMissingError(RtAudioError):
    code = "tool_missing"


class ModelError(RtAudioError):
    code = "model_error"


class ModelNotFetchedError(ModelError):
    code = "model_not_fetched"


class ModelIntegrityError(ModelError):
    code = "model_integrity"


class UnknownModelError(ModelError, KeyError):
    code = "unknown_model"

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class TextError(RtAudioError, ValueError):
    code = "bad_text"


class ProtocolError(RtAudioError):
    code = "protocol_error"


class MessageTooLargeError(ProtocolError):
    code = "message_too_large"


class RateLimitError(ProtocolError):
    code = "rate_limited"


class AuthError(RtAudioError):
    code = "unauthorized"


class CapacityError(RtAudioError):
    code = "over_capacity"


class BudgetError(RtAudioError):
    code = "over_budget"


class BackendError(RtAudioError):
    """A shared compute backend (the batched GPU recognizer) failed or did not answer in time."""

    code = "internal_error"
