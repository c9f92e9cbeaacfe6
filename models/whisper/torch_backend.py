"""The PyTorch model behind rtaudio's `WhisperBackend` protocol (numpy in, numpy out).

Lets the same decoding code run on the reference model and on the ONNX export, so tests can check
that the export changes nothing (dev/test only: rtaudio's runtime never imports torch).
"""

from __future__ import annotations

import numpy as np
import torch
from rtaudio_models.whisper.model import Whisper

from rtaudio.stt.onnx_whisper import WhisperModelInfo


class TorchWhisper:
    def __init__(self, model: Whisper, info: WhisperModelInfo) -> None:
        self.model = model.eval()
        self.info = info
        self._heads = list(info.alignment_heads)

    @torch.no_grad()
    def encode(self, mel: np.ndarray) -> list[np.ndarray]:
        audio = self.model.encoder(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None])
        return [t.numpy() for kv in self.model.decoder.cross_kv(audio) for t in kv]

    @torch.no_grad()
    def step(self, tokens: np.ndarray, cache: list[np.ndarray], cross: list[np.ndarray],
             ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        t = [torch.from_numpy(np.ascontiguousarray(c)) for c in cache]
        x = [torch.from_numpy(np.ascontiguousarray(c)) for c in cross]
        n = len(t) // 2
        hidden, present, scores = self.model.decoder.step(
            torch.from_numpy(tokens), [(t[2 * i], t[2 * i + 1]) for i in range(n)],
            [(x[2 * i], x[2 * i + 1]) for i in range(n)])
        logits = self.model.decoder.logits(hidden[:, -1])
        alignment = torch.stack([scores[layer][:, head] for layer, head in self._heads], dim=1)
        return logits.numpy(), [a.numpy() for kv in present for a in kv], alignment.numpy()
