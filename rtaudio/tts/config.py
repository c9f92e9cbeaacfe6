"""Configs of speech synthesis: what to say how (SynthesisConfig) and how to cut the vocoder (ChunkSchedule)."""

from __future__ import annotations

from dataclasses import dataclass

from rtaudio.errors import ConfigError


@dataclass(frozen=True)
class SynthesisConfig:
    """Per-request controls. Noise defaults come from the voice's JSON; set them to 0 for exact repeats."""

    speed: float = 1.0
    """Speaking rate factor: 2.0 is twice as fast (the voice's length scale is divided by it)."""
    volume: float = 1.0
    """Linear gain on top of the voice's fixed gain; peaks beyond the limiter threshold are soft-limited."""
    sentence_pause_ms: float = 120.0
    """Silence added between sentences (the voice already ends each sentence with a short decay)."""
    noise_scale: float | None = None
    """Latent noise (voice default 0.667): variation in voice quality between runs; 0 = deterministic."""
    noise_w: float | None = None
    """Duration-predictor noise (voice default 0.8): variation in rhythm; 0 = deterministic."""
    seed: int | None = None
    """Seed for both noises; None draws fresh randomness per call."""
    eager_first_clause_ids: int = 200
    """A first sentence longer than this many phoneme ids (~17 words) speaks its first clause (up to
    , ; :) as a separate utterance, so audio starts sooner; 0 = always whole sentences."""

    def __post_init__(self) -> None:
        if not 0.25 <= self.speed <= 4.0:
            raise ConfigError(f"speed must be within 0.25..4, got {self.speed}")
        if not 0.0 <= self.volume <= 4.0:
            raise ConfigError(f"volume must be within 0..4, got {self.volume}")
        if not 0.0 <= self.sentence_pause_ms <= 10_000:
            raise ConfigError(f"sentence_pause_ms must be within 0..10000, got {self.sentence_pause_ms}")
        if self.eager_first_clause_ids < 0:
            raise ConfigError("eager_first_clause_ids must be >= 0")
        for name in ("noise_scale", "noise_w"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 2.0:
                raise ConfigError(f"{name} must be within 0..2, got {value}")


@dataclass(frozen=True)
class ChunkSchedule:
    """How the flow + decoder run over latent frames (1 frame = hop = 256 samples, 11.6 ms at 22.05 kHz).

    The first chunk is small so audio leaves early; later chunks double up to `max_chunk_frames`
    (fewer, larger runs are cheaper per frame: with these defaults a sentence costs ~1.2x the
    unchunked compute, and each chunk is computed well within the playing time of those before it). Context frames on each side make a chunk match the
    whole-utterance output: the reverse flow sees +-32 frames (4 coupling layers of 4 convs k=5) and
    the HiFi-GAN decoder about +-12; measured, 24 and 8 frames give > 55 dB agreement.
    """

    first_chunk_frames: int = 8
    max_chunk_frames: int = 128
    decoder_context_frames: int = 8
    flow_context_frames: int = 24
    flow_lookahead_frames: int = 96
    """Most frames the flow computes ahead of the decoder's needs (fewer runs, less context overhead);
    none before the first chunk, then twice the chunk size until this cap."""
    crossfade_samples: int = 64
    """Raised-cosine blend where chunks join; taken from the previous chunk's right context."""

    def __post_init__(self) -> None:
        if self.first_chunk_frames < 1 or self.max_chunk_frames < self.first_chunk_frames:
            raise ConfigError("need 1 <= first_chunk_frames <= max_chunk_frames")
        if self.decoder_context_frames < 0 or self.flow_context_frames < 0 or self.flow_lookahead_frames < 0:
            raise ConfigError("context and lookahead frames must be >= 0")
        if not 0 <= self.crossfade_samples <= 256 * self.decoder_context_frames:
            raise ConfigError("crossfade_samples must fit in the decoder context (256 samples per frame)")
