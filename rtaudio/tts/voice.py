"""A Piper voice on onnxruntime that streams: text -> sentences -> phoneme ids -> latents -> audio chunks.

The voice is the three ONNX parts written by `rtaudio_models.piper.split` (encoder, flow, decoder)
plus the voice JSON. One `PiperVoice` holds the sessions and is shared by all streams and threads;
each `stream()` call is independent.

Loudness: Piper normalises every sentence to full-scale peak, so loudness jumps between sentences
and chunks cannot be normalised before the sentence is done. Here a fixed gain (measured on this
voice, about -22 LUFS for ordinary sentences) and a stateless soft limiter are applied instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtaudio.dsp.dynamics import soft_limit
from rtaudio.errors import ModelError, TextError, UnknownModelError
from rtaudio.modelstore import REGISTRY, get_spec, model_dir
from rtaudio.onnx_session import open_session
from rtaudio.tts.config import ChunkSchedule, SynthesisConfig
from rtaudio.tts.phonemize import CLAUSE_BREAK, Phonemizer, phoneme_ids
from rtaudio.tts.ssml import to_blocks
from rtaudio.tts.vocoder import ChunkedVocoder

VOICE_GAIN = 1.41  # +3 dB
"""Fixed output gain: raw sentences measure -24..-27 LUFS with peaks 0.4-0.8; +3 dB puts them near -22 LUFS."""
MIN_FIRST_PIECE_PHONEMES = 12
"""A first clause shorter than this is not worth its own utterance (and sounds clipped)."""


@dataclass(frozen=True)
class VoiceInfo:
    """What the voice JSON says: rate, espeak voice, phoneme ids and noise/length defaults."""

    name: str
    sample_rate: int
    espeak_voice: str
    phoneme_id_map: Mapping[str, tuple[int, ...]]
    noise_scale: float
    length_scale: float
    noise_w: float
    hop_length: int

    @staticmethod
    def from_json(path: Path, name: str) -> VoiceInfo:
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
            inference = cfg.get("inference", {})
            return VoiceInfo(
                name=name, sample_rate=int(cfg["audio"]["sample_rate"]), espeak_voice=cfg["espeak"]["voice"],
                phoneme_id_map={k: tuple(v) for k, v in cfg["phoneme_id_map"].items()},
                noise_scale=float(inference.get("noise_scale", 0.667)),
                length_scale=float(inference.get("length_scale", 1.0)),
                noise_w=float(inference.get("noise_w", 0.8)),
                hop_length=int(cfg.get("rtaudio", {}).get("hop_length", 256)))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"bad voice config {path}: {e}") from e


@dataclass(frozen=True)
class Utterance:
    """One sentence as the model sees it, and the silence after it."""

    phonemes: tuple[str, ...]
    ids: tuple[int, ...]
    pause_after_ms: float


class PiperVoice:
    """Shareable Piper voice: `stream(text)` yields float32 chunks at `sample_rate` as soon as ready."""

    def __init__(self, folder: Path, name: str | None = None, schedule: ChunkSchedule | None = None,
                 phonemizer: Phonemizer | None = None, threads: int = 0) -> None:
        folder = Path(folder)
        self.info = VoiceInfo.from_json(folder / "voice.json", name or folder.name)
        # Three sessions alternate many short runs; spinning idle workers of one would steal the cores
        # the next one needs (measured: 5x slower first audio on 2 cores): open_session spins none.
        self._encoder = open_session(folder / "encoder.onnx", f"the voice encoder of {self.info.name}", threads)
        self._flow = open_session(folder / "flow.onnx", f"the voice flow of {self.info.name}", threads)
        self._decoder = open_session(folder / "decoder.onnx", f"the voice decoder of {self.info.name}", threads)
        self.phonemizer = phonemizer or Phonemizer(self.info.espeak_voice)
        self.vocoder = ChunkedVocoder(self._run_flow, self._run_decoder, self.info.hop_length, schedule)

    @classmethod
    def load(cls, name: str = "piper-joe", schedule: ChunkSchedule | None = None) -> PiperVoice:
        """A voice from the model store; UnknownModelError for names that are not voices."""
        voices = sorted(n for n, s in REGISTRY.items() if s.kind == "tts")
        try:
            spec = get_spec(name)
        except UnknownModelError as e:
            raise UnknownModelError(f"unknown voice {name!r}; voices: {', '.join(voices)}") from e
        if spec.kind != "tts":
            raise UnknownModelError(f"{spec.name!r} is a {spec.kind} model, not a voice; voices: {', '.join(voices)}")
        voice = cls(model_dir(spec.name), spec.name, schedule)
        voice.warm_up()
        return voice

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    # -- text -> utterances -------------------------------------------------------------------------
    def utterances(self, text: str, config: SynthesisConfig | None = None) -> list[Utterance]:
        """Sentences to synthesize; TextError when there is nothing speakable."""
        config = config or SynthesisConfig()
        if not text or not text.strip():
            raise TextError("nothing to say: the text is empty")
        blocks = to_blocks(text)
        out: list[Utterance] = []
        for b, block in enumerate(blocks):
            sentences = self.phonemizer.phonemize(block.text)
            for i, phonemes in enumerate(sentences):
                pause = config.sentence_pause_ms
                if i == len(sentences) - 1:  # the block's own break, or none after the very end
                    pause = block.break_after_ms if block.break_after_ms is not None else \
                        (config.sentence_pause_ms if b < len(blocks) - 1 else 0.0)
                ids = phoneme_ids(phonemes, self.info.phoneme_id_map)
                out.append(Utterance(tuple(phonemes), tuple(ids), pause))
        if not out:
            raise TextError(f"nothing to say in {text[:60]!r}")
        return self._split_first(out, config.eager_first_clause_ids) + out[1:]

    def _split_first(self, out: list[Utterance], max_ids: int) -> list[Utterance]:
        """The first sentence, cut after its first clause (", " "; " ": ") when it is longer than
        `max_ids`: the encoder runs on the whole utterance before any audio, so a shorter first piece
        starts the audio sooner (about 0.3 ms per id on 2 cores)."""
        first = out[0]
        if not max_ids or len(first.ids) <= max_ids:
            return out[:1]
        p = first.phonemes
        for k in range(MIN_FIRST_PIECE_PHONEMES, len(p) - MIN_FIRST_PIECE_PHONEMES):
            if p[k] in CLAUSE_BREAK and p[k + 1] == " ":
                head, tail = p[:k + 2], p[k + 2:]
                return [Utterance(head, tuple(phoneme_ids(head, self.info.phoneme_id_map)), 0.0),
                        Utterance(tail, tuple(phoneme_ids(tail, self.info.phoneme_id_map)), first.pause_after_ms)]
        return out[:1]

    # -- model parts ------------------------------------------------------------------------------------
    def latents(self, ids: tuple[int, ...] | list[int], config: SynthesisConfig,
                rng: np.random.Generator) -> np.ndarray:
        """Phoneme ids -> z_p (1, 192, frames) float32, the flow's input (noise drawn from `rng`)."""
        noise_scale = self.info.noise_scale if config.noise_scale is None else config.noise_scale
        noise_w = self.info.noise_w if config.noise_w is None else config.noise_w
        length_scale = self.info.length_scale / config.speed
        x = np.asarray([ids], dtype=np.int64)
        m_p, logs_p, _ = self._encoder.run(None, {
            "input": x, "input_lengths": np.array([x.shape[1]], dtype=np.int64),
            "scales": np.array([noise_scale, length_scale, noise_w], dtype=np.float32),
            "dp_noise": rng.standard_normal((1, 2, x.shape[1]), dtype=np.float32)})
        if noise_scale == 0.0:
            return m_p
        eps = rng.standard_normal(m_p.shape, dtype=np.float32)
        return m_p + eps * np.exp(logs_p) * np.float32(noise_scale)

    def _run_flow(self, z_p: np.ndarray) -> np.ndarray:
        mask = np.ones((1, 1, z_p.shape[2]), dtype=np.float32)
        return self._flow.run(None, {"z_p": z_p, "y_mask": mask})[0]

    def _run_decoder(self, z: np.ndarray) -> np.ndarray:
        return self._decoder.run(None, {"z": z})[0].reshape(-1)

    def decode_whole(self, z_p: np.ndarray) -> np.ndarray:
        """The unchunked reference: flow and decoder over the whole utterance (raw model output)."""
        return self._run_decoder(self._run_flow(z_p))

    def warm_up(self) -> None:
        """One sentence-sized run through every part, so the first request pays no start-up cost
        (kernel set-up, memory arena growth)."""
        pad = self.info.phoneme_id_map["_"][0]
        ids = [self.info.phoneme_id_map["^"][0]] + [20, pad] * 60 + [self.info.phoneme_id_map["$"][0]]
        z_p = self.latents(ids, SynthesisConfig(noise_scale=0.0, noise_w=0.0), np.random.default_rng(0))
        for _ in self.vocoder.render(z_p[:, :, :96]):
            pass

    # -- public synthesis ------------------------------------------------------------------------------
    def stream(self, text: str, config: SynthesisConfig | None = None) -> Iterator[np.ndarray]:
        """Yield float32 mono chunks at `sample_rate`: the first one after the first sentence's encoder
        and one small vocoder chunk, the rest while the caller plays them."""
        config = config or SynthesisConfig()
        utterances = self.utterances(text, config)
        rng = np.random.default_rng(config.seed)
        gain = np.float32(VOICE_GAIN * config.volume)
        for utt in utterances:
            z_p = self.latents(utt.ids, config, rng)
            for chunk in self.vocoder.render(z_p):
                yield soft_limit(chunk * gain)
            pause = int(round(utt.pause_after_ms * self.sample_rate / 1000.0))
            if pause:
                yield np.zeros(pause, dtype=np.float32)

    def synthesize(self, text: str, config: SynthesisConfig | None = None) -> np.ndarray:
        """The whole text as one float32 array at `sample_rate`."""
        return np.concatenate(list(self.stream(text, config)))

