"""Configs of the server side: one session's stream settings and the whole server's limits.

Both are frozen dataclasses validated in `__post_init__` (ConfigError), with units in field names.
`SessionConfig.from_json` reads the nested `config` object of a `session.start` message strictly:
an unknown key is an error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import enum
import os
import re
import socket
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rtaudio.errors import ConfigError
from rtaudio.server.admission import AdmissionConfig
from rtaudio.stt.latency_budget import LatencyBudgetConfig
from rtaudio.stt.vad import VadConfig

MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 192000
MAX_CHANNELS = 8
CHANNEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Encoding(enum.Enum):
    """Raw little-endian PCM on the wire; the engine itself works in float32."""

    PCM_S16LE = "pcm_s16le"
    PCM_F32LE = "pcm_f32le"

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self is Encoding.PCM_S16LE else 4


def parse_encoding(value: Any, where: str) -> Encoding:
    aliases = {"pcm_s16le": "pcm_s16le", "pcm16": "pcm_s16le", "linear16": "pcm_s16le", "s16le": "pcm_s16le",
               "int16": "pcm_s16le", "pcm_f32le": "pcm_f32le", "f32le": "pcm_f32le", "float32": "pcm_f32le"}
    if not isinstance(value, str) or value.lower() not in aliases:
        raise ConfigError(f"{where}: unsupported encoding {value!r}; use 'pcm_s16le' or 'pcm_f32le'")
    return Encoding(aliases[value.lower()])


def check_channel(value: Any) -> str:
    """A caption broadcast channel name (it appears in overlay URLs, so no spaces or slashes)."""
    if not isinstance(value, str) or not CHANNEL_NAME.fullmatch(value):
        raise ConfigError(f"channel must be 1-64 letters, digits, '.', '_' or '-', got {value!r}")
    return value


def _check_rate(value: int, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_SAMPLE_RATE_HZ <= value <= MAX_SAMPLE_RATE_HZ:
        raise ConfigError(f"{where} must be an integer in [{MIN_SAMPLE_RATE_HZ}, {MAX_SAMPLE_RATE_HZ}] Hz, got {value!r}")


@dataclass(frozen=True)
class SessionConfig:
    """What one client asked for: its audio format, the caption cadence, VAD and the speech output format."""

    model: str = "whisper-tiny.en"
    """Recognizer model name (must be one the server serves)."""
    language: str | None = None
    input_encoding: Encoding = Encoding.PCM_S16LE
    input_sample_rate_hz: int = 16000
    """Rate of the client's audio; resampled to 16 kHz server-side."""
    input_channels: int = 1
    """Interleaved channels; averaged to mono."""
    partial_interval_ms: int = 500
    """How often a partial caption may be produced while speech goes on."""
    partials: bool = True
    """False: only final captions are sent."""
    words: bool = True
    """Include per-word times in caption events."""
    vad_enabled: bool = True
    vad_threshold: float = VadConfig.threshold
    """The engine's tuned default (0.35, not the customary 0.5: keeps whispered and hoarse speech)."""
    vad_min_silence_ms: int = 500
    """Silence that ends a segment (and makes its caption final)."""
    tts_voice: str = "piper-joe"
    tts_encoding: Encoding = Encoding.PCM_S16LE
    tts_sample_rate_hz: int | None = None
    """None: the voice's own rate (22050 Hz for piper-joe)."""
    channel: str | None = None
    """Caption broadcast channel: this session's captions also go to its subscribers (the OBS overlay)."""

    def __post_init__(self) -> None:
        if self.channel is not None:
            check_channel(self.channel)
        _check_rate(self.input_sample_rate_hz, "audio.sample_rate_hz")
        if self.tts_sample_rate_hz is not None:
            _check_rate(self.tts_sample_rate_hz, "tts.sample_rate_hz")
        if not 1 <= self.input_channels <= MAX_CHANNELS:
            raise ConfigError(f"audio.channels must be in [1, {MAX_CHANNELS}], got {self.input_channels!r}")
        if not 100 <= self.partial_interval_ms <= 10000:
            raise ConfigError(f"partial_interval_ms must be in [100, 10000], got {self.partial_interval_ms!r}")
        if not 0.0 < self.vad_threshold < 1.0:
            raise ConfigError(f"vad.threshold must be in (0, 1), got {self.vad_threshold!r}")
        if not 100 <= self.vad_min_silence_ms <= 10000:
            raise ConfigError(f"vad.min_silence_ms must be in [100, 10000], got {self.vad_min_silence_ms!r}")
        if not self.model or not self.tts_voice:
            raise ConfigError("model and tts.voice must be non-empty")

    @property
    def input_frame_bytes(self) -> int:
        """Bytes of one multi-channel sample frame on the wire."""
        return self.input_encoding.bytes_per_sample * self.input_channels

    @classmethod
    def from_json(cls, obj: Any, base: SessionConfig | None = None) -> SessionConfig:
        """Read the `config` object of `session.start`; see PROTOCOL.md for the keys."""
        base = base or cls()
        if obj is None:
            return base
        if not isinstance(obj, dict):
            raise ConfigError("config must be a JSON object")
        kw: dict[str, Any] = {}
        sections = {"audio": ("encoding", "sample_rate_hz", "channels"),
                    "vad": ("enabled", "threshold", "min_silence_ms"),
                    "tts": ("voice", "encoding", "sample_rate_hz")}
        flat = {"model": str, "language": (str, type(None)), "partial_interval_ms": int, "partials": bool, "words": bool,
                "channel": (str, type(None))}
        for key, value in obj.items():
            if key in flat:
                _typed(value, flat[key], key)
                kw[key] = value
            elif key in sections:
                if not isinstance(value, dict):
                    raise ConfigError(f"{key} must be a JSON object")
                for sub, v in value.items():
                    if sub not in sections[key]:
                        raise ConfigError(f"unknown key {key}.{sub}; known: {', '.join(sections[key])}")
                    _section_value(kw, key, sub, v)
            else:
                known = ", ".join([*flat, *sections])
                raise ConfigError(f"unknown config key {key!r}; known: {known}")
        return replace(base, **kw)

    def to_json(self) -> dict[str, Any]:
        """The effective config, echoed in `session.started` (same shape as `from_json` reads)."""
        return {
            "model": self.model, "language": self.language,
            "audio": {"encoding": self.input_encoding.value, "sample_rate_hz": self.input_sample_rate_hz,
                      "channels": self.input_channels},
            "partial_interval_ms": self.partial_interval_ms, "partials": self.partials, "words": self.words,
            "vad": {"enabled": self.vad_enabled, "threshold": self.vad_threshold,
                    "min_silence_ms": self.vad_min_silence_ms},
            "tts": {"voice": self.tts_voice, "encoding": self.tts_encoding.value,
                    "sample_rate_hz": self.tts_sample_rate_hz},
            "channel": self.channel,
        }


def _typed(value: Any, kind: Any, where: str) -> None:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"{where} has the wrong type: {value!r}")


def _section_value(kw: dict[str, Any], section: str, key: str, value: Any) -> None:
    where = f"{section}.{key}"
    if key == "encoding":
        kw[f"{'input' if section == 'audio' else 'tts'}_encoding"] = parse_encoding(value, where)
    elif key == "sample_rate_hz":
        if section == "tts" and value is None:
            kw["tts_sample_rate_hz"] = None
            return
        _typed(value, int, where)
        kw[f"{'input' if section == 'audio' else 'tts'}_sample_rate_hz"] = value
    elif key == "channels":
        _typed(value, int, where)
        kw["input_channels"] = value
    elif key == "voice":
        _typed(value, str, where)
        kw["tts_voice"] = value
    elif key == "enabled":
        _typed(value, bool, where)
        kw["vad_enabled"] = value
    elif key == "threshold":
        _typed(value, float, where)
        kw["vad_threshold"] = float(value)
    elif key == "min_silence_ms":
        _typed(value, int, where)
        kw["vad_min_silence_ms"] = value


@dataclass(frozen=True)
class ServerLimits:
    """What one client may do; breaking a limit gives that client an error, never the server."""

    max_sessions: int = 16
    """Concurrent websocket sessions; more are refused with HTTP 503 (over_capacity)."""
    max_message_bytes: int = 1 << 20
    """Largest websocket message (1 MiB = 5.5 s of 48 kHz stereo int16); larger closes with 1009."""
    max_messages_per_s: float = 200.0
    """Sustained message rate per session (token bucket, burst of 2 s worth)."""
    max_client_errors: int = 20
    """Non-fatal client errors tolerated per session before it is closed (1008)."""
    idle_timeout_s: float = 60.0
    """A session with no message at all for this long is closed (1001); send `ping` to stay."""
    ring_capacity_ms: int = 10000
    """Per-session inbound audio ring; when full the server stops reading that socket (TCP back-pressure)."""
    outbound_high_water_bytes: int = 1 << 20
    """Above this many queued outbound bytes, partials are coalesced and speech synthesis waits."""
    outbound_max_bytes: int = 16 << 20
    """Above this the client reads far too slowly and is closed (1008, over_capacity)."""
    max_tts_chars: int = 5000
    max_upload_bytes: int = 100 << 20
    """Largest HTTP request body (file uploads to /v1/audio/transcriptions)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ConfigError(f"limit {f.name} must be positive, got {getattr(self, f.name)!r}")
        if self.outbound_max_bytes < self.outbound_high_water_bytes:
            raise ConfigError("outbound_max_bytes must be >= outbound_high_water_bytes")


@dataclass(frozen=True)
class AssistantServiceConfig:
    """Who answers `/v1/assistant` sessions: chosen by the operator (`rtaudio serve --responder`), never by a
    client, so no client can make the server connect to an address of its choosing."""

    responder: str = "echo"
    """"echo": offline rules (no network); "openai": an OpenAI-compatible chat-completions server."""
    llm_base_url: str = "http://127.0.0.1:8080/v1"
    llm_model: str = "local"
    llm_api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the chat server's API key (read when a reply starts)."""

    def __post_init__(self) -> None:
        if self.responder not in ("echo", "openai"):
            raise ConfigError(f"responder must be 'echo' or 'openai', got {self.responder!r}")
        if not self.llm_base_url.startswith(("http://", "https://")):
            raise ConfigError(f"llm_base_url must be http(s)://, got {self.llm_base_url!r}")


@dataclass(frozen=True)
class ServerConfig:
    """How `rtaudio serve` runs: address, auth, TLS, workers, models and limits."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    """If set, every websocket and /v1 request must present it (Bearer header, `token` query, or subprotocol)."""
    allowed_origins: tuple[str, ...] = ()
    """Browser pages (Origin header) allowed besides the server's own page; "*" allows any. Clients
    that send no Origin (not browsers) are unaffected. Stops other web sites from using the server."""
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    decode_workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))
    """Threads running recognizer steps; sessions share them first come, first served."""
    recognizer_threads: int | None = None
    """onnxruntime threads per recognizer call; None: the cores divided among the decode workers."""
    tts_workers: int = 1
    models: tuple[str, ...] = ("whisper-tiny.en",)
    """Recognizer models served; the first is the default and is loaded at start."""
    stt_backend: str = "auto"
    """How caption sessions are decoded: "onnx" (each session's passes on CPU worker threads), "batched"
    (all sessions' windows as one batch on the PyTorch backend, fp16 + CUDA graphs on a GPU; English), or
    "auto" (batched where PyTorch sees a CUDA GPU, else onnx)."""
    batched_pack: str | None = None
    """A folder written by `tools/gpu_pack.py` (fp16 parts, sha256-checked on load): the batched backend
    takes its models from there instead of the model store (a GPU host without network)."""
    processes: int = 1
    """Server processes sharing the port (SO_REUSEPORT: the kernel spreads new connections over them). One
    Python process parses every message of its sessions under one interpreter lock: with the batched
    backend it keeps ~50 live sessions in real time however fast the GPU is. Each process has its own
    sessions, VAD and metrics (and ONNX models); limits such as `max_sessions` are per process, and a
    caption channel can be watched only through the process that serves its session. With the batched
    backend the processes share one engine process (`shared_engine`): 8 kept 400 sessions on an H100."""
    shared_engine: bool = True
    """With several processes and the batched backend: one engine process owns the GPU and decodes every
    process's windows as one batch (`rtaudio.stt.engine_host`); False: an engine in each process."""
    engine_address: Any = None
    """Set by `rtaudio serve` when it started the shared engine process (an `EngineAddress`), not by users."""
    voices: tuple[str, ...] = ("piper-joe",)
    preload_voice: bool = True
    demo_audio: str | None = None
    """A WAV file the page offers to caption (GET /demo.wav); set by `rtaudio demo`."""
    shutdown_grace_s: float = 5.0
    """On shutdown, how long sessions get to flush their final captions."""
    limits: ServerLimits = field(default_factory=ServerLimits)
    budget: LatencyBudgetConfig = field(default_factory=LatencyBudgetConfig)
    """Latency targets of every caption session and its degradation ladder (PROTOCOL.md "Latency budgets")."""
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    """When a new caption session is refused to keep the running ones within budget."""
    assistant: AssistantServiceConfig = field(default_factory=AssistantServiceConfig)
    """The responder of voice assistant sessions (`/v1/assistant`)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in [0, 65535], got {self.port}")
        if self.decode_workers < 1 or self.tts_workers < 1:
            raise ConfigError("decode_workers and tts_workers must be >= 1")
        if not self.models or not self.voices:
            raise ConfigError("at least one model and one voice must be served")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ConfigError("TLS needs both a certificate file and a key file")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("auth token must be at least 8 characters")
        if self.shutdown_grace_s < 0:
            raise ConfigError("shutdown_grace_s must be >= 0")
        if self.processes < 1 or (self.processes > 1 and self.port == 0):
            raise ConfigError("processes must be >= 1, and several processes need a fixed port (not 0)")
        if self.processes > 1 and not hasattr(socket, "SO_REUSEPORT"):
            raise ConfigError("several server processes share a port through SO_REUSEPORT, which this system lacks")
        if self.stt_backend not in ("auto", "onnx", "batched"):
            raise ConfigError(f"stt_backend must be auto, onnx or batched, got {self.stt_backend!r}")
