"""Whisper's exported ONNX graphs behind a small numpy interface (encode once, step the decoder).

`WhisperBackend` is the protocol the decoder drives; `OnnxWhisper` implements it with
onnxruntime, and `rtaudio_models.whisper.torch_backend` with the PyTorch model (tests compare them).
Arrays: mel (n_mels, F) float32 with F even; cross K/V per layer (1, H, Dh, T) / (1, H, T, Dh);
a self-attention cache is a list of 2 * n_layers arrays (B, H, P, Dh). The decoder only passes cross K/V
back to `step`, so a backend may keep them where it computed them (on a GPU: see `OnnxWhisper`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rtaudio.errors import ConfigError, ModelError
from rtaudio.onnx_session import CUDA_PROVIDER, execution_providers, open_session

CONFIG_NAME = "whisper.json"
PRECISIONS = ("auto", "int8", "fp32")
"""auto: int8 on the CPU, fp32 on CUDA (measured on an H100: int8 graphs there ran slower than fp32, at
0.044 vs 0.024 real-time factor, since onnxruntime quantizes each call's activations on the CPU)."""


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


@dataclass(frozen=True)
class WhisperModelInfo:
    """What `whisper.json` (written by the exporter) says about the model."""

    dims: WhisperDims
    alignment_heads: tuple[tuple[int, int], ...]
    suppress_ids: tuple[int, ...]
    suppress_ids_begin: tuple[int, ...]
    files: dict[str, dict[str, str]]
    io: dict[str, list[str]]

    @classmethod
    def load(cls, folder: Path) -> WhisperModelInfo:
        try:
            raw = json.loads((folder / CONFIG_NAME).read_text())
            return cls(
                dims=WhisperDims(**raw["dims"]),
                alignment_heads=tuple((int(a), int(b)) for a, b in raw["alignment_heads"]),
                suppress_ids=tuple(raw["suppress_ids"]),
                suppress_ids_begin=tuple(raw["suppress_ids_begin"]),
                files=raw["files"],
                io=raw["io"],
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"{folder / CONFIG_NAME} is missing or invalid ({e}); re-fetch the model") from e


class WhisperBackend(Protocol):
    info: WhisperModelInfo

    def encode(self, mel: np.ndarray) -> list[np.ndarray]:
        """mel (n_mels, F) float32, F even -> cross K/V per layer (batch 1)."""
        ...

    def step(self, tokens: np.ndarray, cache: list[np.ndarray], cross: list[np.ndarray],
             ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """tokens (B, N) int64 -> logits (B, V) of the last position, new cache (P+N), and the
        alignment heads' cross-attention scores before softmax (B, A, N, T)."""
        ...


def empty_cache(dims: WhisperDims, batch: int) -> list[np.ndarray]:
    dh = dims.n_text_state // dims.n_text_head
    z = np.zeros((batch, dims.n_text_head, 0, dh), np.float32)
    return [z] * (2 * dims.n_text_layer)


class OnnxWhisper:
    """Encoder and decoder-step sessions (thread-safe: onnxruntime sessions may run concurrently).

    On CUDA the cross K/V stay on the GPU from `encode` to every `step` of the window (io binding): fed
    back as numpy arrays they crossed PCIe twice per decoder step, ~6-18 MB each way for tiny.en. The
    self-attention cache comes back to the host each step: beam search reorders it there, and it is small."""

    def __init__(self, folder: Path, precision: str = "auto", threads: int = 2, spin: bool = True,
                 decoder_threads: int | None = None, device: str = "cpu") -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "auto":
            precision = "fp32" if CUDA_PROVIDER in execution_providers(device) else "int8"
        self.precision = precision
        self.info = WhisperModelInfo.load(folder)
        files = self.info.files[precision]
        self._encoder = open_session(folder / files["encoder"], "the Whisper encoder", threads, spin, device)
        self._decoder = open_session(folder / files["decoder"], "the Whisper decoder", decoder_threads or threads, spin,
                                     device)
        io = self.info.io
        self._enc_out = io["encoder_outputs"]
        self._dec_in = io["decoder_inputs"]
        self._dec_out = io["decoder_outputs"]
        self._n_cache = 2 * self.info.dims.n_text_layer
        on_gpu = CUDA_PROVIDER in self._encoder.get_providers() and CUDA_PROVIDER in self._decoder.get_providers()
        self.cross_device: str | None = "cuda" if on_gpu else None
        """Where `encode` leaves the cross K/V (io binding); None: numpy arrays on the host."""

    def encode(self, mel: np.ndarray) -> list[np.ndarray]:
        feed = np.ascontiguousarray(mel[None], dtype=np.float32)
        if self.cross_device is None:
            return list(self._encoder.run(self._enc_out, {"mel": feed}))
        binding = self._encoder.io_binding()
        binding.bind_cpu_input("mel", feed)
        for name in self._enc_out:
            binding.bind_output(name, self.cross_device)
        self._encoder.run_with_iobinding(binding)
        return list(binding.get_outputs())  # OrtValues on the device, passed back to `step` as they are

    def step(self, tokens: np.ndarray, cache: list[np.ndarray], cross: list[np.ndarray],
             ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        values = [tokens, *cache, *cross]
        if self.cross_device is None:
            out = self._decoder.run(self._dec_out, dict(zip(self._dec_in, values, strict=True)))
        else:
            binding = self._decoder.io_binding()
            for name, value in zip(self._dec_in, values, strict=True):
                if isinstance(value, np.ndarray):
                    binding.bind_cpu_input(name, np.ascontiguousarray(value))
                else:
                    binding.bind_ortvalue_input(name, value)
            for name in self._dec_out:
                binding.bind_output(name, "cpu")
            self._decoder.run_with_iobinding(binding)
            out = binding.copy_outputs_to_cpu()
        return out[0], list(out[1:1 + self._n_cache]), out[-1]
