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
from typing import Any

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
                 min_window_s: float = 8.0, static_shapes: bool = False,
                 static_windows_s: tuple[float, ...] = (8.0, 15.0), batch_bucket: int = 32) -> None:
        self.device = torch.device(device)
        self.static_shapes = static_shapes
        """Decode at fixed shapes (CUDA graphs on a GPU): `transcribe` then calls `transcribe_static`."""
        self.batch_bucket = batch_bucket
        """Static batches are rounded up to a multiple of this (one CUDA graph per size)."""
        self.static_windows_s = tuple(sorted(static_windows_s))
        """Fixed window lengths; each window goes to the shortest that holds it with its tail padding. Short
        partial windows then neither encode nor cross-attend 15 s of padding nor wait for the decode steps
        of long ones (H100, 128 rows of 1-12 s: 128 ms in one 15 s batch, 59 ms for rows up to 6.5 s in 8 s).
        Encoder attention is masked to each row's own length, so the bucket does not change the text."""
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

    @classmethod
    def for_whisper(cls, model: Whisper, info: dict, tokenizer: Any, device: str = "cuda",
                    **options: Any) -> BatchedWhisper:
        """The engine for a model and its `whisper.json` (suppressed ids, mel bins) and tokenizer, decoding
        in timestamp mode: the closing timestamp is followed by end-of-text far more reliably than text
        alone, so short windows don't loop (the caller drops timestamps from the text)."""
        start = tokenizer.sot_sequence("en" if tokenizer.multilingual else None, "transcribe")
        suppress = list(info["suppress_ids"]) + list(range(tokenizer.eot + 1, tokenizer.timestamp_begin))
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        return cls(model, mel_filters_torch(info["dims"]["n_mels"]), start, tokenizer.eot, suppress,
                   info["suppress_ids_begin"], device=device, dtype=dtype, **options)

    def log_mel(self, audio: Tensor) -> Tensor:
        """(B, N) float32 -> (B, n_mels, N // 160) normalised per row like Whisper (max - 8, (x + 4) / 4)."""
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2
        mel = torch.log10(torch.clamp(self.filters @ power, min=1e-10))
        peak = mel.amax(dim=(1, 2), keepdim=True)
        return (torch.maximum(mel, peak - 8.0) + 4.0) / 4.0

    def _pad(self, windows: list[np.ndarray], fixed_samples: int | None = None) -> tuple[Tensor, Tensor]:
        """Silence-padded batch (B, N) and, per row, how many encoder positions belong to it (B,).

        Each row keeps `tail_pad` of silence after its audio (a window ending right at speech invites
        loops); positions past that are masked out, so a row decodes the same alone or in a batch."""
        longest = max(max(len(w) for w in windows) + self.tail_pad, self.min_window)
        n = min(self.max_samples, -(-longest // self.pad_multiple) * self.pad_multiple)
        if fixed_samples is not None:
            n = fixed_samples
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
    def transcribe_static(self, windows: list[np.ndarray], max_tokens_per_s: float = 6.0,
                          window_s: float = 15.0) -> list[list[int]]:
        """Like `transcribe`, at fixed shapes (batch rounded up to `batch_bucket`, `window_s` of audio) so that
        decoding replays a CUDA graph; windows longer than `window_s` keep their latest part."""
        if not windows:
            return []
        b = len(windows)
        size = -(-b // self.batch_bucket) * self.batch_bucket
        n = int(window_s * SAMPLE_RATE)
        budget = int(8 + max_tokens_per_s * (window_s - self.tail_pad / SAMPLE_RATE))
        key = (size, n, budget)
        if not hasattr(self, "_static"):
            self._static: dict[tuple[int, int, int], StaticDecoder] = {}
        if key not in self._static:
            self._static[key] = StaticDecoder(self, size, n // (2 * HOP), budget)
        padded = list(windows) + [np.zeros(0, np.float32)] * (size - b)
        audio, valid = self._pad(padded, n)
        encoded, mask = self._encode(self.log_mel(audio).to(self.dtype), valid)
        row_budget = torch.tensor([8 + max_tokens_per_s * len(w) / SAMPLE_RATE for w in padded], device=self.device)
        out = self._static[key].run(self._cross_kv(encoded), mask, row_budget)
        return self._rows(out[:b])

    def _transcribe_bucketed(self, windows: list[np.ndarray], max_tokens_per_s: float) -> list[list[int]]:
        """`transcribe_static` per window-length bucket; results in the order of `windows`."""
        groups: dict[float, list[int]] = {}
        for i, w in enumerate(windows):
            need = len(w) + self.tail_pad
            bucket = next(b for b in self.static_windows_s if need <= b * SAMPLE_RATE)
            groups.setdefault(bucket, []).append(i)
        result: list[list[int]] = [[] for _ in windows]
        for bucket, rows in groups.items():
            for i, tokens in zip(rows, self.transcribe_static([windows[i] for i in rows], max_tokens_per_s,
                                                              window_s=bucket), strict=True):
                result[i] = tokens
        return result

    def _rows(self, out: Tensor) -> list[list[int]]:
        result = []
        for row in out.cpu().numpy():
            ends = np.nonzero(row == self.eot)[0]
            result.append(row[: ends[0] if len(ends) else len(row)].tolist())
        return result

    @torch.inference_mode()
    def transcribe(self, windows: list[np.ndarray], max_tokens_per_s: float = 6.0) -> list[list[int]]:
        """Token ids (without start sequence and end-of-text) for each window."""
        if not windows:
            return []
        if self.static_shapes and max(len(w) for w in windows) + self.tail_pad <= self.static_windows_s[-1] * SAMPLE_RATE:
            return self._transcribe_bucketed(windows, max_tokens_per_s)
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
        return self._rows(out)


class StaticDecoder:
    """Greedy decoding at fixed shapes (batch bucket, 15 s of audio, token budget), replayed as a CUDA graph.

    A decoder step is ~100 small kernels, so at these sizes it is bound by launch overhead (~2 ms a step);
    one graph replay per step removes most of it. Positions live in device tensors, the self-attention
    cache is preallocated to its full length and masked beyond the current position, so every step has
    the same shapes. Without CUDA (tests) the same code runs eagerly.
    """

    def __init__(self, engine: BatchedWhisper, batch: int, n_audio_ctx: int, budget: int) -> None:
        self.e = engine
        dims = engine.model.dims
        dev, dt = engine.device, engine.dtype
        heads, dh = dims.n_text_head, dims.n_text_state // dims.n_text_head
        self.batch, self.budget = batch, budget
        self.length = len(engine.start) + budget
        self.tokens = torch.zeros((batch, 1), dtype=torch.long, device=dev)
        self.pos = torch.zeros(1, dtype=torch.long, device=dev)
        self.step_index = torch.zeros(1, dtype=torch.long, device=dev)
        self.done = torch.zeros(batch, dtype=torch.bool, device=dev)
        self.row_budget = torch.zeros(batch, device=dev)
        self.out = torch.full((batch, budget), engine.eot, dtype=torch.long, device=dev)
        self.cache = [(torch.zeros((batch, heads, self.length, dh), device=dev, dtype=dt),
                       torch.zeros((batch, heads, self.length, dh), device=dev, dtype=dt)) for _ in range(dims.n_text_layer)]
        self.cross = [(torch.zeros((batch, heads, n_audio_ctx, dh), device=dev, dtype=dt),
                       torch.zeros((batch, heads, n_audio_ctx, dh), device=dev, dtype=dt)) for _ in range(dims.n_text_layer)]
        self.mask = torch.ones((batch, 1, 1, n_audio_ctx), dtype=torch.bool, device=dev)
        self.positions = torch.arange(self.length, device=dev)
        self.graph: torch.cuda.CUDAGraph | None = None

    def _layers(self) -> Tensor:
        """Run `self.tokens` at `self.pos` through the decoder, writing K/V into the cache; returns logits."""
        dec = self.e.model.decoder
        x = dec.token_embedding(self.tokens) + dec.positional_embedding.index_select(0, self.pos)[None]
        visible = (self.positions <= self.pos)[None, None, None, :]
        for block, (ck, cv), (xk, xv) in zip(dec.blocks, self.cache, self.cross, strict=True):
            a = block.attn
            h = block.attn_ln(x)
            ck.index_copy_(2, self.pos, a.heads(a.key(h)))
            cv.index_copy_(2, self.pos, a.heads(a.value(h)))
            att = F.scaled_dot_product_attention(a.heads(a.query(h)), ck, cv, attn_mask=visible)
            x = x + a.out(a.merge(att))
            c = block.cross_attn
            q = c.heads(c.query(block.cross_attn_ln(x)))
            x = x + c.out(c.merge(F.scaled_dot_product_attention(q, xk, xv, attn_mask=self.mask)))
            x = x + block.mlp(block.mlp_ln(x))
        return dec.logits(dec.ln(x)[:, -1]).float()

    def _step(self, first: bool = False) -> None:
        logits = self._layers().index_fill_(1, self.e.suppress, float("-inf"))  # no host tensors: capturable
        if first:
            logits.index_fill_(1, self.e.suppress_begin, float("-inf"))
        nxt = logits.argmax(dim=-1).masked_fill_(self.done, self.e.eot)
        self.out.index_copy_(1, self.step_index, nxt[:, None])
        self.done |= (nxt == self.e.eot) | (self.step_index + 1 >= self.row_budget)
        self.tokens.copy_(nxt[:, None])
        self.pos += 1
        self.step_index += 1

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step()

    def run(self, cross: list[tuple[Tensor, Tensor]], mask: Tensor, row_budget: Tensor) -> Tensor:
        """Decode; `cross`/`mask`/`row_budget` have this decoder's batch size. Returns out (B, budget)."""
        if self.e.device.type == "cuda" and self.graph is None:
            self._capture()
        for (dk, dv), (sk, sv) in zip(self.cross, cross, strict=True):
            dk.copy_(sk)
            dv.copy_(sv)
        self.mask.copy_(mask)
        self.row_budget.copy_(row_budget)
        self.done.zero_()
        self.out.fill_(self.e.eot)
        self.step_index.zero_()
        start = self.e.start
        for i in range(len(start) - 1):
            self.pos.fill_(i)
            self.tokens.copy_(start[i].expand(self.batch, 1))
            self._layers()
        self.pos.fill_(len(start) - 1)
        self.tokens.copy_(start[-1].expand(self.batch, 1))
        self._step(first=True)
        for step in range(1, self.budget):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()
            if step % 8 == 7 and bool(self.done.all()):
                break
        return self.out


def mel_filters_torch(n_mels: int) -> np.ndarray:
    """The same filterbank the CPU front end uses, so GPU and CPU features agree."""
    from rtaudio.dsp.mel import mel_filters

    return mel_filters(n_mels).astype(np.float32)

