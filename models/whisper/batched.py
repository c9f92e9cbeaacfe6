"""Many windows at once on a GPU: batched log-mel, encoder and greedy decoding with a KV cache.

This is the PyTorch CUDA backend for serving hundreds of live streams from one card: each scheduler tick
hands it the due windows of many sessions, which run as one batch in fp16. Windows are padded with silence
to the longest in the batch (Whisper was trained on silence-padded 30 s windows, so the extra padding
costs no accuracy); every row starts from the same start sequence, so all rows share positions and no
attention masks are needed. Rows that reach end-of-text keep stepping (their output is ignored) until
every row is done or the token budget is spent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rtaudio_models.whisper.model import Whisper, WhisperDims
from torch import Tensor

N_FFT, HOP = 400, 160
SAMPLE_RATE = 16000


def save_compact(model: Whisper, folder: Path, part_bytes: int = 40 << 20) -> dict:
    """Write the model as fp16 in parts small enough to carry to a GPU host, plus a manifest with sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    blob_path = folder / "whisper-fp16.pt"
    torch.save({"dims": asdict(model.dims), "state": state}, blob_path)
    blob = blob_path.read_bytes()
    blob_path.unlink()
    parts = []
    for i in range(0, len(blob), part_bytes):
        name = f"whisper-fp16.pt.part{i // part_bytes}"
        (folder / name).write_bytes(blob[i:i + part_bytes])
        parts.append(name)
    manifest = {"parts": parts, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    (folder / "compact.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def load_compact(folder: Path, device: str = "cpu") -> Whisper:
    """Reassemble and hash-check the parts written by `save_compact`; returns the model on `device`."""
    manifest = json.loads((folder / "compact.json").read_text())
    blob = b"".join((folder / p).read_bytes() for p in manifest["parts"])
    if len(blob) != manifest["size"] or hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise ValueError(f"compact model in {folder} is corrupted or incomplete (sha256 mismatch)")
    import io

    payload = torch.load(io.BytesIO(blob), map_location="cpu")
    model = Whisper(WhisperDims(**payload["dims"]))
    model.load_state_dict({k: v.float() for k, v in payload["state"].items()})
    return model.to(device).eval()


class BatchedWhisper:
    """Greedy transcription of a batch of windows (float32 16 kHz arrays) on one device."""

    def __init__(self, model: Whisper, mel_filters: np.ndarray, start_tokens: list[int], eot: int,
                 suppress_ids: list[int], suppress_begin_ids: list[int], device: str = "cuda",
                 dtype: torch.dtype = torch.float16, pad_multiple_s: float = 1.0, tail_pad_s: float = 1.0,
                 min_window_s: float = 8.0) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda":
            # cuDNN's attention builds a new graph for every new shape (each decoder step has one more key):
            # ~5 ms of CPU per call. Flash / memory-efficient kernels have no such set-up cost.
            torch.backends.cuda.enable_cudnn_sdp(False)
        self.dtype = dtype if self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        self.filters = torch.from_numpy(mel_filters).to(self.device, torch.float32)
        self.window = torch.hann_window(N_FFT, device=self.device)
        self.start = torch.tensor(start_tokens, device=self.device)
        self.eot = eot
        self.suppress = torch.tensor(sorted(set(suppress_ids)), device=self.device)
        self.suppress_begin = torch.tensor(sorted(set(suppress_begin_ids)), device=self.device)
        self.pad_multiple = int(pad_multiple_s * SAMPLE_RATE)
        self.tail_pad = int(tail_pad_s * SAMPLE_RATE)
        self.min_window = int(min_window_s * SAMPLE_RATE)
        """Rows see at least this much (speech + silence): shorter windows invite loops and early stops."""
        self.max_samples = 2 * HOP * model.dims.n_audio_ctx  # 30 s

    def log_mel(self, audio: Tensor) -> Tensor:
        """(B, N) float32 -> (B, n_mels, N // 160) normalised per row like Whisper (max - 8, (x + 4) / 4)."""
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2
        mel = torch.log10(torch.clamp(self.filters @ power, min=1e-10))
        peak = mel.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0

    def _pad(self, windows: list[np.ndarray]) -> tuple[Tensor, Tensor]:
        """Silence-padded batch (B, N) and, per row, how many encoder positions belong to it (B,).

        Each row keeps `tail_pad` of silence after its audio (a window ending right at speech invites
        loops); positions past that are masked out, so a row decodes the same alone or in a batch."""
        longest = max(max(len(w) for w in windows) + self.tail_pad, self.min_window)
        n = min(self.max_samples, -(-longest // self.pad_multiple) * self.pad_multiple)
        batch = np.zeros((len(windows), n), dtype=np.float32)
        valid = np.zeros(len(windows), dtype=np.int64)
        for i, w in enumerate(windows):
            w = w[-(n - min(self.tail_pad, n // 4)):]
            batch[i, : len(w)] = w
            valid[i] = min(n, max(len(w) + self.tail_pad, self.min_window)) // (2 * HOP)
        return (torch.from_numpy(batch).to(self.device, non_blocking=True),
                torch.from_numpy(valid).to(self.device, non_blocking=True))

    def _encode(self, mel: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder with a key-padding mask; returns (B, T, D) and the mask (B, 1, 1, T) for cross-attention."""
        enc = self.model.encoder
        x = F.gelu(enc.conv1(mel))
        x = F.gelu(enc.conv2(x)).transpose(1, 2)
        x = x + enc.positional_embedding[: x.shape[1]]
        mask = (torch.arange(x.shape[1], device=self.device)[None, :] < valid[:, None])[:, None, None, :]
        for block in enc.blocks:
            a = block.attn
            h = block.attn_ln(x)
            att = F.scaled_dot_product_attention(a.heads(a.query(h)), a.heads(a.key(h)), a.heads(a.value(h)),
                                                 attn_mask=mask)
            x = x + a.out(a.merge(att))
            x = x + block.mlp(block.mlp_ln(x))
        return enc.ln_post(x), mask

    def _cross_kv(self, encoded: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per decoder layer: cross-attention keys and values (B, H, T, Dh), computed once per window."""
        out = []
        for block in self.model.decoder.blocks:
            a = block.cross_attn
            out.append((a.heads(a.key(encoded)), a.heads(a.value(encoded))))
        return out

    def _step(self, tokens: Tensor, position: int, cache: list[tuple[Tensor, Tensor]],
              cross: list[tuple[Tensor, Tensor]], mask: Tensor) -> Tensor:
        """One token per row at `position`; writes its K/V into the preallocated `cache`; returns logits."""
        dec = self.model.decoder
        x = dec.token_embedding(tokens) + dec.positional_embedding[position: position + 1]
        for block, (ck, cv), (xk, xv) in zip(dec.blocks, cache, cross, strict=True):
            a = block.attn
            h = block.attn_ln(x)
            ck[:, :, position: position + 1] = a.heads(a.key(h))
            cv[:, :, position: position + 1] = a.heads(a.value(h))
            q = a.heads(a.query(h))
            att = F.scaled_dot_product_attention(q, ck[:, :, : position + 1], cv[:, :, : position + 1])
            x = x + a.out(a.merge(att))
            c = block.cross_attn
            q = c.heads(c.query(block.cross_attn_ln(x)))
            x = x + c.out(c.merge(F.scaled_dot_product_attention(q, xk, xv, attn_mask=mask)))
            x = x + block.mlp(block.mlp_ln(x))
        return dec.logits(dec.ln(x)[:, -1])

    @torch.inference_mode()
    def transcribe(self, windows: list[np.ndarray], max_tokens_per_s: float = 6.0) -> list[list[int]]:
        """Token ids (without start sequence and end-of-text) for each window."""
        if not windows:
            return []
        audio, valid = self._pad(windows)
        encoded, mask = self._encode(self.log_mel(audio).to(self.dtype), valid)
        cross = self._cross_kv(encoded)
        dims = self.model.dims
        b, n_start = len(windows), len(self.start)
        longest_s = max(len(w) for w in windows) / SAMPLE_RATE
        budget = int(min(dims.n_text_ctx // 2, 8 + max_tokens_per_s * longest_s))
        row_budget = torch.tensor([8 + max_tokens_per_s * len(w) / SAMPLE_RATE for w in windows], device=self.device)
        heads = dims.n_text_head
        shape = (b, heads, n_start + budget, dims.n_text_state // heads)
        cache = [(torch.empty(shape, device=self.device, dtype=self.dtype),
                  torch.empty(shape, device=self.device, dtype=self.dtype)) for _ in range(dims.n_text_layer)]
        for i in range(n_start - 1):  # prefill the start sequence one position at a time (it is short)
            self._step(self.start[i].expand(b, 1), i, cache, cross, mask)
        tokens = self.start[-1].expand(b, 1)
        out = torch.full((b, budget), self.eot, dtype=torch.long, device=self.device)
        done = torch.zeros(b, dtype=torch.bool, device=self.device)
        for step in range(budget):
            logits = self._step(tokens, n_start - 1 + step, cache, cross, mask).float()
            logits[:, self.suppress] = -torch.inf
            if step == 0:
                logits[:, self.suppress_begin] = -torch.inf
            nxt = torch.where(done, self.eot, logits.argmax(dim=-1))
            out[:, step] = nxt
            done |= (nxt == self.eot) | (step + 1 >= row_budget)
            if step % 8 == 7 and bool(done.all()):
                break
            tokens = nxt[:, None]
        result = []
        for row in out.cpu().numpy():
            ends = np.nonzero(row == self.eot)[0]
            result.append(row[: ends[0] if len(ends) else len(row)].tolist())
        return result


def mel_filters_torch(n_mels: int) -> np.ndarray:
    """The same filterbank the CPU front end uses, so GPU and CPU features agree."""
    from rtaudio.dsp.mel import mel_filters

    return mel_filters(n_mels).astype(np.float32)

