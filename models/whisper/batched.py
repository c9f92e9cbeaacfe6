"""Many windows at once on a GPU: batched log-mel, encoder, and greedy or beam decoding with a KV cache.

This is the PyTorch CUDA backend for serving hundreds of live streams from one card: each scheduler tick
hands it the due windows of many sessions, which run as one batch in fp16. Windows are padded with silence
to a few fixed lengths (Whisper was trained on silence-padded 30 s windows) and the encoder attention is
masked to each row's own audio, so a row decodes the same alone or in a batch. A row may carry a prompt
(its stream's earlier text): all prefixes go through the decoder in one call, then each row steps from its
own position. Rows that reach end-of-text keep stepping (their output is ignored) until every row is done
or the token budget is spent. Partial windows decode greedily; finals (the text that stays) with beam
search, as on the CPU path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable
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
TIME_STEP_S = 0.02  # one timestamp token = one encoder position
_CAPTURE = threading.Lock()  # one CUDA graph capture at a time in a process


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
    """Transcription of a batch of windows (float32 16 kHz arrays) on one device: greedy, or beam search for
    the rows marked final."""

    def __init__(self, model: Whisper, mel_filters: np.ndarray, start_tokens: list[int], eot: int,
                 suppress_ids: list[int], suppress_begin_ids: list[int], device: str = "cuda",
                 dtype: torch.dtype = torch.float16, pad_multiple_s: float = 1.0, tail_pad_s: float = 1.0,
                 min_window_s: float = 8.0, static_shapes: bool = False,
                 static_windows_s: tuple[float, ...] = (8.0, 15.0), final_windows_s: tuple[float, ...] = (8.0, 15.0, 21.0),
                 batch_bucket: int = 32,
                 encode: Callable[[str], list[int]] | None = None, sot_prev: int | None = None,
                 max_prompt_tokens: int = 48, final_beam: int = 5, beam_bucket: int = 8,
                 timestamp_begin: int | None = None, alignment_heads: list[tuple[int, int]] | None = None) -> None:
        self.device = torch.device(device)
        self.encode = encode if sot_prev is not None else None
        """Text -> token ids, for prompts (None: prompts are ignored)."""
        self.sot_prev = sot_prev
        self.max_prompt_tokens = max_prompt_tokens
        """A prompt keeps its last this many tokens: every row of its batch steps through them."""
        self.timestamp_begin = timestamp_begin
        """First timestamp token (the model decodes in timestamp mode, see `for_whisper`); None: text mode."""
        self.alignment_heads = list(alignment_heads or []) if timestamp_begin is not None else []
        """(layer, head) pairs whose cross-attention follows the audio: finals come back timed (see `timed`)."""
        self.final_beam = final_beam
        """Beam width for rows marked final (1: greedy like partials)."""
        self.beam_bucket = beam_bucket
        """Static beam batches are rounded up to a multiple of this many windows."""
        self._static: dict[tuple[int, int, int, int, int, bool], StaticDecoder] = {}
        self._warm_rows: dict[bool, int] = {}
        """Most rows a fixed-shape batch was warmed up for, for greedy rows and for finals' rows (see
        `warm_up`): a larger batch is split, so that no CUDA graph is captured mid-stream."""
        self.static_shapes = static_shapes
        """Decode at fixed shapes (CUDA graphs on a GPU): `transcribe` then calls `transcribe_static`."""
        self.batch_bucket = batch_bucket
        """Static batches are rounded up to a multiple of this (one CUDA graph per size)."""
        self.static_windows_s = tuple(sorted(static_windows_s))
        """Fixed window lengths; each window goes to the shortest that holds it with its tail padding. Short
        partial windows then neither encode nor cross-attend 15 s of padding nor wait for the decode steps
        of long ones (H100, 128 rows of 1-12 s: 128 ms in one 15 s batch, 59 ms for rows up to 6.5 s in 8 s).
        Encoder attention is masked to each row's own length, so the bucket does not change the text."""
        self.final_windows_s = tuple(sorted(final_windows_s))
        """The same for finals (beam search), whose windows hold up to a 14 s segment after 6 s of context
        (`BatchStreamConfig`). Each shape is a decode loop of its own in a round, yet all finals in one 21 s
        shape gave slower rounds in the one run tried (H100, 400 streams: 197 ms against 160-188 ms in other
        runs, which vary by that much between machines): short finals then encode and cross-attend 21 s."""
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
                   info["suppress_ids_begin"], device=device, dtype=dtype, encode=tokenizer.encode,
                   sot_prev=tokenizer.sot_prev, timestamp_begin=tokenizer.timestamp_begin,
                   alignment_heads=[(int(a), int(b)) for a, b in info.get("alignment_heads", [])], **options)

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
        keep = n - min(self.tail_pad, n // 4)
        kept = [w[max(0, len(w) - keep):] for w in windows]
        lengths = np.array([len(w) for w in kept], dtype=np.int64)
        valid = np.minimum(n, np.maximum(lengths + self.tail_pad, self.min_window)) // (2 * HOP)
        # Only the audio travels (one flat array, no padding: ~3 s of a typical 8 s row), and the
        # padded batch is laid out on the device. H100, 400 streams, 128-row batches: 17 ms -> 4 ms a batch,
        # ticks 148-162 -> 108-118 ms.
        flat = torch.from_numpy(np.concatenate([*kept, np.zeros(0, np.float32)]).astype(np.float32, copy=False))
        if self.device.type == "cuda":
            flat = flat.pin_memory()
        flat = flat.to(self.device, non_blocking=True)
        n_rows = torch.from_numpy(lengths).to(self.device, non_blocking=True)
        row = torch.repeat_interleave(torch.arange(len(kept), device=self.device), n_rows, output_size=len(flat))
        first = torch.cumsum(n_rows, 0) - n_rows
        col = torch.arange(len(flat), device=self.device) - first[row]
        batch = torch.zeros((len(kept), n), dtype=torch.float32, device=self.device)
        batch[row, col] = flat
        return batch, torch.from_numpy(valid).to(self.device, non_blocking=True)

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

    def prefixes(self, prompts: list[str] | None, rows: int) -> list[list[int]]:
        """Each row's forced start: `<|startofprev|>` + the last `max_prompt_tokens` of its prompt (the text
        said before, as the CPU recognizer conditions on it), then the start sequence."""
        start = self.start.tolist()
        if prompts is None or self.encode is None:
            return [start] * rows
        out = []
        for p in prompts:
            ids = self.encode(" " + p.strip())[-self.max_prompt_tokens:] if p and p.strip() else []
            out.append(([self.sot_prev, *ids] if ids else []) + start)
        return out

    def _decoder(self, batch: int, n_audio_ctx: int, budget: int, prefix: int, graph: bool,
                 beam: int = 1, final: bool = False) -> StaticDecoder:
        """The fixed-shape decoder for `batch` windows; with `graph` one is kept per shape (its CUDA graph)
        and kind: finals' decoders are apart from partials' even where shapes match, since the engine host
        decodes the two kinds at once on two threads (a decoder's buffers serve one batch at a time)."""
        def make() -> StaticDecoder:
            if beam > 1:
                return BeamDecoder(self, batch, beam, n_audio_ctx, budget, prefix, graph=graph)
            return StaticDecoder(self, batch, n_audio_ctx, budget, prefix, graph=graph)

        if not graph:
            return make()
        key = (batch, n_audio_ctx, budget, prefix, beam, final)
        if key not in self._static:
            self._static[key] = make()
        return self._static[key]

    def warm_up(self, max_rows: int = 256, max_finals: int = 64) -> int:
        """Capture the CUDA graphs of every fixed shape a live round may need (partial batches up to
        `max_rows`, finals up to `max_finals`, beam-searched or greedy, with and without a prompt), so that
        none is captured mid-stream (each capture stalls its round); larger batches are then decoded in
        parts of at most those sizes. Returns how many shapes were run; nothing to do without fixed shapes."""
        if not self.static_shapes:
            return 0
        runs = 0
        for shapes, bucket, most, beam, timed in (
                (self.static_windows_s, self.batch_bucket, max_rows, 1, False),
                (self.final_windows_s, self.beam_bucket, max_finals, self.final_beam, True),
                (self.final_windows_s, self.beam_bucket, max_finals, 1, True)):  # finals of a late batch
            for window_s in shapes:
                for rows in range(bucket, most + 1, bucket):
                    for prompt in ("", "Hello."):
                        self.transcribe_static([np.zeros(SAMPLE_RATE, np.float32)] * rows, window_s=window_s,
                                               prompts=[prompt] * rows, beam=beam, timed=timed)
                        runs += 1
        self._warm_rows = {False: max_rows, True: max_finals}
        return runs

    def lane(self, urgent: bool = False) -> contextlib.AbstractContextManager[Any]:
        """Entered by a thread that decodes while another one does (the engine host's partial and final
        lanes, `rtaudio.stt.engine_host`): its work goes to a CUDA stream of its own, so the two lanes'
        kernels overlap on the GPU instead of queueing behind each other; an `urgent` lane's stream has the
        higher priority (the GPU schedules its waiting kernels first). Nothing to do without CUDA."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.cuda.stream(torch.cuda.Stream(self.device, priority=-1 if urgent else 0))

    def _prefix_cap(self, prefixes: list[list[int]]) -> int:
        """Prefix room of a decoder: the start sequence alone, or room for the longest prompt (two shapes)."""
        longest = max(len(p) for p in prefixes)
        return len(self.start) if longest <= len(self.start) else len(self.start) + 1 + self.max_prompt_tokens

    @torch.inference_mode()
    def transcribe_static(self, windows: list[np.ndarray], max_tokens_per_s: float = 6.0,
                          window_s: float = 15.0, prompts: list[str] | None = None, beam: int = 1,
                          timed: bool = False) -> list[list[int]]:
        """Like `transcribe`, at fixed shapes (batch rounded up to `batch_bucket`, `window_s` of audio) so that
        decoding replays a CUDA graph; windows longer than `window_s` keep their latest part."""
        if not windows:
            return []
        final_shape = beam > 1 or timed  # finals' batches: rounded to `beam_bucket`, warmed up apart
        most = self._warm_rows.get(final_shape)
        if most is not None and len(windows) > most:  # beyond the warmed-up shapes: in parts that have graphs
            return [row for i in range(0, len(windows), most) for row in self.transcribe_static(
                windows[i:i + most], max_tokens_per_s, window_s, None if prompts is None else prompts[i:i + most],
                beam, timed)]
        b = len(windows)
        bucket = self.beam_bucket if final_shape else self.batch_bucket
        size = -(-b // bucket) * bucket
        n = int(window_s * SAMPLE_RATE)
        budget = int(8 + max_tokens_per_s * (window_s - self.tail_pad / SAMPLE_RATE))
        padded = list(windows) + [np.zeros(0, np.float32)] * (size - b)
        prefixes = self.prefixes(None if prompts is None else [*prompts, *[""] * (size - b)], size)
        decoder = self._decoder(size, n // (2 * HOP), budget, self._prefix_cap(prefixes), graph=True, beam=beam,
                                final=final_shape)
        audio, valid = self._pad(padded, n)
        encoded, mask = self._encode(self.log_mel(audio).to(self.dtype), valid)
        row_budget = self._row_budget(padded, max_tokens_per_s)
        cross = self._cross_kv(encoded)
        rows = decoder.run(cross, mask, row_budget, prefixes)[:b]
        if timed:
            return self.timed(rows, windows, [(k[:b], v[:b]) for k, v in cross], mask[:b], row_budget[:b])
        return self._within_audio(rows, windows)

    def _row_budget(self, windows: list[np.ndarray], max_tokens_per_s: float) -> Tensor:
        """Tokens each row may generate: 8 + `max_tokens_per_s` per second of its audio."""
        return torch.tensor([int(8 + max_tokens_per_s * len(w) / SAMPLE_RATE) for w in windows], device=self.device)

    def _transcribe_bucketed(self, windows: list[np.ndarray], max_tokens_per_s: float,
                             prompts: list[str] | None, beam: int, timed: bool) -> list[list[int]]:
        """`transcribe_static` per window-length bucket; results in the order of `windows`."""
        shapes = self.final_windows_s if timed else self.static_windows_s
        buckets = [next(b for b in shapes if len(w) + self.tail_pad <= b * SAMPLE_RATE) for w in windows]
        return _per_group(buckets, windows, prompts, lambda bucket, ws, ps: self.transcribe_static(
            ws, max_tokens_per_s, window_s=bucket, prompts=ps, beam=beam, timed=timed))

    @torch.inference_mode()
    def transcribe(self, windows: list[np.ndarray], max_tokens_per_s: float = 6.0,
                   prompts: list[str] | None = None, finals: list[bool] | None = None,
                   beam: int | None = None) -> list[list[int]]:
        """Token ids (without start sequence and end-of-text) for each window; `prompts`, one per window
        ("" for none), is the text said before it; windows marked in `finals` are decoded with beam search
        of width `beam` (None: `final_beam`; 1: greedily, as a cheaper final that still hears its context)
        and come back timed (see `timed`), the others greedily."""
        if not windows:
            return []
        width = self.final_beam if beam is None else beam
        keys = [bool(finals is not None and finals[i]) for i in range(len(windows))]
        return _per_group(keys, windows, prompts, lambda final, ws, ps: self._transcribe_rows(
            ws, max_tokens_per_s, ps, width if final else 1, timed=bool(final)))

    def within_audio(self, tokens: list[int], content_s: float) -> list[int]:
        """`tokens` up to the first timestamp at or past the end of the window's audio (less 0.1 s): what
        follows is text the model placed in the silence padding, never said."""
        if self.timestamp_begin is None:
            return tokens
        end = self.timestamp_begin + round((content_s - 0.1) / TIME_STEP_S)
        cut = next((i for i, t in enumerate(tokens) if t >= end), len(tokens))
        return tokens[:cut]

    def _transcribe_rows(self, windows: list[np.ndarray], max_tokens_per_s: float, prompts: list[str] | None,
                         beam: int, timed: bool = False) -> list[list[int]]:
        longest = (self.final_windows_s if timed else self.static_windows_s)[-1]
        if self.static_shapes and max(len(w) for w in windows) + self.tail_pad <= longest * SAMPLE_RATE:
            return self._transcribe_bucketed(windows, max_tokens_per_s, prompts, beam, timed)
        audio, valid = self._pad(windows)
        encoded, mask = self._encode(self.log_mel(audio).to(self.dtype), valid)
        longest_s = max(len(w) for w in windows) / SAMPLE_RATE
        prefixes = self.prefixes(prompts, len(windows))
        budget = int(min(self.model.dims.n_text_ctx // 2, 8 + max_tokens_per_s * longest_s))
        row_budget = self._row_budget(windows, max_tokens_per_s)
        decoder = self._decoder(len(windows), encoded.shape[1], budget, self._prefix_cap(prefixes), graph=False,
                                beam=beam)
        cross = self._cross_kv(encoded)
        rows = decoder.run(cross, mask, row_budget, prefixes)
        return self.timed(rows, windows, cross, mask, row_budget) if timed else self._within_audio(rows, windows)

    def _within_audio(self, rows: list[list[int]], windows: list[np.ndarray]) -> list[list[int]]:
        return [self.within_audio(r, len(w) / SAMPLE_RATE) for r, w in zip(rows, windows, strict=True)]

    def timed(self, rows: list[list[int]], windows: list[np.ndarray], cross: list[tuple[Tensor, Tensor]],
              mask: Tensor, row_budget: Tensor) -> list[list[int]]:
        """Rows (as decoded, before `within_audio`) with word times: each text token after the timestamp
        token of where it starts in its window, then one for where the text ends, then end-of-text if the
        decoder ended the text itself (not its token budget: a loop that ran on). `rtaudio.stt.alignment.
        timed_row` reads them back. The times come from the alignment heads' cross-attention in one
        teacher-forced decoder pass over all rows and DTW, as the CPU recognizer times its words. Live
        captions need them: a final that hears earlier audio again for context drops that audio's words by
        their times. Without alignment heads rows come back untimed."""
        capped = [len(r) >= int(b) - 1 for r, b in zip(rows, row_budget.tolist(), strict=True)]
        rows = self._within_audio(rows, windows)
        if not self.alignment_heads or self.timestamp_begin is None:
            return rows
        from rtaudio.stt.alignment import path_starts

        texts = [[t for t in r if t < self.eot] for r in rows]
        lead = [*self.start.tolist(), self.timestamp_begin - 1]  # start sequence, <|notimestamps|>
        seqs = [[*lead, *t, self.eot] for t in texts]
        n = max(len(q) for q in seqs)
        forced = torch.full((len(seqs), n), self.eot, dtype=torch.long)
        for i, q in enumerate(seqs):
            forced[i, : len(q)] = torch.tensor(q)
        scores = self._alignment_scores(forced.to(self.device), cross, mask)
        n_pos = [max(1, min(min(len(w), self.max_samples) // (2 * HOP), scores.shape[-1])) for w in windows]
        # the matrices on the device (numpy took ~30 ms a final on the CPU: 400 streams fell behind), one copy
        matrices = [alignment_matrix(scores[i, :, : len(seqs[i]), : n_pos[i]], len(self.start))
                    for i, text in enumerate(texts) if text]
        flat = torch.cat([m.reshape(-1) for m in matrices]).cpu().numpy() if matrices else np.zeros(0)
        at = np.cumsum([0, *(m.numel() for m in matrices)])
        host = iter(flat[a:b].reshape(m.shape) for a, b, m in zip(at[:-1], at[1:], matrices, strict=True))
        out = []
        for i, text in enumerate(texts):
            if not text:
                out.append([] if capped[i] else [self.eot])
                continue
            starts = path_starts(next(host))
            stamps = [self.timestamp_begin + round(t / TIME_STEP_S) for t in starts]
            row = [*(x for pair in zip(stamps, text, strict=False) for x in pair), stamps[-1]]
            out.append(row if capped[i] else [*row, self.eot])
        return out

    def _alignment_scores(self, forced: Tensor, cross: list[tuple[Tensor, Tensor]], mask: Tensor) -> Tensor:
        """(B, A, N, T) float32 cross-attention scores (before softmax) of the alignment heads, teacher-forced."""
        dec = self.model.decoder
        n = forced.shape[1]
        x = dec.token_embedding(forced) + dec.positional_embedding[:n]
        causal = torch.ones((n, n), dtype=torch.bool, device=forced.device).tril()
        layers = {layer for layer, _ in self.alignment_heads}
        last = max(layers)
        by_layer: dict[int, Tensor] = {}
        for index, (block, (xk, xv)) in enumerate(zip(dec.blocks, cross, strict=False)):
            if index > last:
                break
            a = block.attn
            h = block.attn_ln(x)
            x = x + a.out(a.merge(F.scaled_dot_product_attention(a.heads(a.query(h)), a.heads(a.key(h)),
                                                                 a.heads(a.value(h)), attn_mask=causal)))
            c = block.cross_attn
            q = c.heads(c.query(block.cross_attn_ln(x)))
            if index in layers:  # (B, H, N, T) float32 scores: only where an alignment head is
                by_layer[index] = (q.float() @ xk.float().transpose(-1, -2)) * (q.shape[-1] ** -0.5)
            x = x + c.out(c.merge(F.scaled_dot_product_attention(q, xk, xv, attn_mask=mask)))
            x = x + block.mlp(block.mlp_ln(x))
        return torch.stack([by_layer[layer][:, head] for layer, head in self.alignment_heads], dim=1)


def _per_group(keys: list[Any], windows: list[np.ndarray], prompts: list[str] | None,
               decode: Callable[[Any, list[np.ndarray], list[str] | None], list[list[int]]]) -> list[list[int]]:
    """`decode(key, windows, prompts)` once per distinct key over the rows with that key; results in row order."""
    result: list[list[int]] = [[] for _ in windows]
    for key in sorted(set(keys)):
        rows = [i for i, k in enumerate(keys) if k == key]
        texts = decode(key, [windows[i] for i in rows], None if prompts is None else [prompts[i] for i in rows])
        for i, tokens in zip(rows, texts, strict=True):
            result[i] = tokens
    return result


class StaticDecoder:
    """Greedy decoding at fixed shapes (batch bucket, audio positions, prefix room + token budget), replayed as
    a CUDA graph.

    Each row's forced prefix (its prompt, then the start sequence) goes through the decoder in one call for
    all its positions (prefill); from then on every row steps at its own position, so a prompt costs one
    call, not a step per token for the whole batch. A decoder step is ~100 small kernels, bound at these
    sizes by launch overhead (~2 ms a step); one graph replay per step removes most of it. Positions live in
    device tensors, the self-attention cache is preallocated to its full length and masked beyond each
    row's position, so every step has the same shapes. Without CUDA (tests) the same code runs eagerly.
    """

    def __init__(self, engine: BatchedWhisper, batch: int, n_audio_ctx: int, budget: int, prefix: int,
                 graph: bool = True, windows: int | None = None) -> None:
        """`windows`: rows of encoder output (cross-attention keys/values) when fewer than `batch` decoder
        rows, each window's rows being consecutive (beam search: `batch` = windows x beam)."""
        self.e = engine
        windows = batch if windows is None else windows
        dims = engine.model.dims
        dev, dt = engine.device, engine.dtype
        heads, dh = dims.n_text_head, dims.n_text_state // dims.n_text_head
        self.batch, self.budget, self.prefix = batch, budget, prefix
        self.length = prefix + budget
        if self.length > dims.n_text_ctx:
            raise ValueError(f"prefix {prefix} + budget {budget} tokens exceed the decoder's {dims.n_text_ctx}")
        self.use_graph = graph and dev.type == "cuda"
        self.tokens = torch.zeros((batch, 1), dtype=torch.long, device=dev)
        self.pos = torch.zeros(batch, dtype=torch.long, device=dev)
        """Per row: the position of the token fed next (its prefix length + tokens generated so far)."""
        self.step_index = torch.zeros(1, dtype=torch.long, device=dev)
        self.done = torch.zeros(batch, dtype=torch.bool, device=dev)
        self.row_budget = torch.zeros(batch, device=dev)
        self.out = torch.full((batch, budget), engine.eot, dtype=torch.long, device=dev)
        self.cache = [(torch.zeros((batch, heads, self.length, dh), device=dev, dtype=dt),
                       torch.zeros((batch, heads, self.length, dh), device=dev, dtype=dt)) for _ in range(dims.n_text_layer)]
        self.cross = [(torch.zeros((windows, heads, n_audio_ctx, dh), device=dev, dtype=dt),
                       torch.zeros((windows, heads, n_audio_ctx, dh), device=dev, dtype=dt)) for _ in range(dims.n_text_layer)]
        self.mask = torch.ones((windows, 1, 1, n_audio_ctx), dtype=torch.bool, device=dev)
        self.positions = torch.arange(self.length, device=dev)
        self.prev = torch.zeros(batch, dtype=torch.long, device=dev)
        """Per row: the token generated before the one in `tokens`."""
        self.graph: torch.cuda.CUDAGraph | None = None

    def _layers(self, x: Tensor, write: Any, self_mask: Tensor) -> Tensor:
        """Decoder blocks over `x` (B, L, D); `write(cache_k, cache_v, k, v)` stores the new keys/values and
        returns the keys/values to attend to."""
        for block, (ck, cv), (xk, xv) in zip(self.e.model.decoder.blocks, self.cache, self.cross, strict=True):
            a = block.attn
            h = block.attn_ln(x)
            k, v = write(ck, cv, a.heads(a.key(h)), a.heads(a.value(h)))
            x = x + a.out(a.merge(F.scaled_dot_product_attention(a.heads(a.query(h)), k, v, attn_mask=self_mask)))
            c = block.cross_attn
            q = c.heads(c.query(block.cross_attn_ln(x)))
            x = x + c.out(c.merge(self._cross_attention(q, xk, xv)))
            x = x + block.mlp(block.mlp_ln(x))
        return x

    def _cross_attention(self, q: Tensor, xk: Tensor, xv: Tensor) -> Tensor:
        """Queries (B, H, L, Dh) of rows over their windows' keys/values (W, H, T, Dh), B = W x rows per
        window: a window's rows are one query sequence of length rows x L (their order within it changes
        nothing), so its audio keys/values are read once per step, not once per beam. H100, 21 s windows:
        a beam-5 step of 64 windows took 3.0 ms with the keys/values repeated per beam, 1.95 ms so."""
        w = xk.shape[0]
        if w == q.shape[0]:
            return F.scaled_dot_product_attention(q, xk, xv, attn_mask=self.mask)
        b, h, n, dh = q.shape
        k = b // w
        folded = q.view(w, k, h, n, dh).transpose(1, 2).reshape(w, h, k * n, dh)
        out = F.scaled_dot_product_attention(folded, xk, xv, attn_mask=self.mask)
        return out.view(w, h, k, n, dh).transpose(1, 2).reshape(b, h, n, dh)

    def _prefill(self, forced: Tensor, lengths: Tensor) -> Tensor:
        """All prefix positions of all rows in one call (causal: a row's padding after its prefix changes
        nothing before it); returns the logits after each row's last prefix token."""
        dec = self.e.model.decoder
        n = forced.shape[1]
        x = dec.token_embedding(forced) + dec.positional_embedding[:n]
        causal = torch.ones((n, n), dtype=torch.bool, device=forced.device).tril()

        def write(ck: Tensor, cv: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
            ck[:, :, :n] = k
            cv[:, :, :n] = v
            return k, v

        x = self._layers(x, write, causal)
        last = x[torch.arange(self.batch, device=x.device), lengths - 1]
        return dec.logits(dec.ln(last)).float()

    def _step(self) -> None:
        """Feed each row's token at its own position; record the next one. Device tensors only: capturable."""
        dec = self.e.model.decoder
        x = dec.token_embedding(self.tokens) + dec.positional_embedding.index_select(0, self.pos)[:, None]
        where = self.pos[:, None, None, None].expand(-1, self.cache[0][0].shape[1], 1, self.cache[0][0].shape[3])

        def write(ck: Tensor, cv: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
            ck.scatter_(2, where, k)
            cv.scatter_(2, where, v)
            return ck, cv

        visible = (self.positions[None, :] <= self.pos[:, None])[:, None, None, :]
        x = self._layers(x, write, visible)
        self._choose(dec.logits(dec.ln(x)[:, -1]).float())

    def _filter(self, logits: Tensor, first: bool) -> Tensor:
        """Suppressed tokens; in timestamp mode also no end-of-text right after a timestamp pair (the close
        of one text segment and the open of the next). Beam search otherwise ranks "... <|t|><|t|>" + end
        above the whole window's text (mean log-probability favours the shorter), dropping every sentence
        after the first. All dev files (`bench/gpu_streams.py --wer-finals`): beam-5 finals 8.22 % -> 8.02 %,
        greedy unchanged. Whisper's full timestamp grammar (the CPU decoder's `TimestampRules`: pairs,
        monotonic, forced timestamps) gave 8.63 %, greedy 8.76 %."""
        e = self.e
        inf = float("-inf")
        logits.index_fill_(1, e.suppress, inf)
        if first:
            logits.index_fill_(1, e.suppress_begin, inf)
        tb = e.timestamp_begin
        if tb is not None:
            pair = (self.tokens[:, 0] >= tb) & (self.prev >= tb) & (self.step_index > 1)
            logits[:, e.eot].masked_fill_(pair, inf)
        return logits

    def _advance(self, nxt: Tensor) -> None:
        """Record the tokens chosen at this step (one per row) and move on."""
        self.out.index_copy_(1, self.step_index, nxt[:, None])
        self.prev.copy_(self.tokens[:, 0])
        self.tokens.copy_(nxt[:, None])
        self.pos += 1
        self.step_index += 1

    def _choose(self, logits: Tensor, first: bool = False) -> None:
        nxt = self._filter(logits, first).argmax(dim=-1).masked_fill_(self.done, self.e.eot)
        self.done |= (nxt == self.e.eot) | (self.step_index + 1 >= self.row_budget)
        self._advance(nxt)

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread-local: another lane of the engine host may be decoding on its own stream meanwhile
        with _CAPTURE, torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self._step()

    def run(self, cross: list[tuple[Tensor, Tensor]], mask: Tensor, row_budget: Tensor,
            prefixes: list[list[int]]) -> list[list[int]]:
        """Decode; `cross`/`mask`/`row_budget`/`prefixes` have this decoder's batch size. Returns each row's
        tokens after its prefix, up to end-of-text."""
        self._decode(cross, mask, row_budget, prefixes)
        return [_until_eot(row, self.e.eot) for row in self.out.cpu().numpy()]

    def _decode(self, cross: list[tuple[Tensor, Tensor]], mask: Tensor, row_budget: Tensor,
                prefixes: list[list[int]]) -> None:
        if self.use_graph and self.graph is None:
            self._capture()
        for (dk, dv), (sk, sv) in zip(self.cross, cross, strict=True):
            dk.copy_(sk)
            dv.copy_(sv)
        lengths = [len(p) for p in prefixes]
        if max(lengths) > self.prefix:  # `BatchedWhisper.prefixes` keeps prompts within the room it sizes
            raise ValueError(f"a prefix of {max(lengths)} tokens does not fit this decoder's {self.prefix}")
        forced = np.zeros((self.batch, max(lengths)), dtype=np.int64)
        for i, p in enumerate(prefixes):
            forced[i, : len(p)] = p
        n_forced = torch.tensor(lengths, device=self.e.device)
        self.mask.copy_(mask)
        self.row_budget.copy_(row_budget)
        self._reset()
        self.pos.copy_(n_forced - 1)  # _choose moves it on to where the first generated token goes
        self._choose(self._prefill(torch.from_numpy(forced).to(self.e.device), n_forced), first=True)
        for step in range(1, self.budget):
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()
            if step % 4 == 3 and bool(self.done.all()):
                break

    def _reset(self) -> None:
        self.done.zero_()
        self.out.fill_(self.e.eot)
        self.step_index.zero_()
        self.tokens.zero_()
        self.prev.zero_()


def _until_eot(row: np.ndarray, eot: int) -> list[int]:
    ends = np.nonzero(row == eot)[0]
    return row[: ends[0] if len(ends) else len(row)].tolist()


class BeamDecoder(StaticDecoder):
    """Beam search at fixed shapes: `groups` windows of `beam` rows each, replayed as a CUDA graph like the
    greedy decoder. It searches as the CPU decoder does (`rtaudio.stt.decoding`, patience 1): each step the
    best 2 x beam continuations of a window's beams are ranked; an end-of-text among them (before the
    beam-th other one) moves that hypothesis to the window's finished list, the best `beam` others go on.
    A window is done when `beam` hypotheses finished or its token budget is spent; the best by mean
    log-probability wins. All of it is tensor indexing (no host round trip per step), so it is capturable.
    Finals use it: the CPU path's beam-5 final was worth ~0.4 WER points there."""

    def __init__(self, engine: BatchedWhisper, groups: int, beam: int, n_audio_ctx: int, budget: int, prefix: int,
                 graph: bool = True) -> None:
        super().__init__(engine, groups * beam, n_audio_ctx, budget, prefix, graph, windows=groups)
        dev = engine.device
        self.groups, self.beam = groups, beam
        self.base = torch.arange(groups, device=dev) * beam
        self.rank = torch.arange(2 * beam, device=dev)
        self.scores = torch.zeros(groups * beam, device=dev)
        self.group_done = torch.zeros(groups, dtype=torch.bool, device=dev)
        self.n_fin = torch.zeros(groups, dtype=torch.long, device=dev)
        # finished hypotheses: `beam` slots per window plus one slot that takes what is discarded
        self.fin_scores = torch.zeros(groups * (beam + 1), device=dev)
        self.fin_len = torch.zeros(groups * (beam + 1), dtype=torch.long, device=dev)
        self.fin_out = torch.zeros((groups * (beam + 1), budget), dtype=torch.long, device=dev)
        self.fin_base = torch.arange(groups, device=dev)[:, None] * (beam + 1)
        self.own = torch.arange(groups * beam, device=dev)  # each row its own source: a done window stays

    def run(self, cross: list[tuple[Tensor, Tensor]], mask: Tensor, row_budget: Tensor,
            prefixes: list[list[int]]) -> list[list[int]]:
        """Like `StaticDecoder.run` with one entry per window (`groups` of them); each window's best
        hypothesis."""
        k = self.beam
        self._decode(cross, mask, row_budget.repeat_interleave(k), [p for p in prefixes for _ in range(k)])
        fin_scores = self.fin_scores.view(self.groups, k + 1)[:, :k].cpu().numpy()
        fin_len = self.fin_len.view(self.groups, k + 1)[:, :k].cpu().numpy()
        fin_out = self.fin_out.view(self.groups, k + 1, -1)[:, :k].cpu().numpy()
        n_fin = self.n_fin.cpu().numpy()
        live_scores = self.scores.view(self.groups, k).cpu().numpy()
        live_out = self.out.view(self.groups, k, -1).cpu().numpy()
        result = []
        for g in range(self.groups):
            if n_fin[g]:
                n = int(n_fin[g])
                best = int(np.argmax(fin_scores[g, :n] / np.maximum(1, fin_len[g, :n])))
                result.append(fin_out[g, best, : fin_len[g, best]].tolist())
            else:  # the budget ran out first: the best unfinished beam
                rows = [_until_eot(r, self.e.eot) for r in live_out[g]]
                best = int(np.argmax(live_scores[g] / np.maximum(1, [len(r) for r in rows])))
                result.append(rows[best])
        return result

    def _reset(self) -> None:
        super()._reset()
        self.scores.fill_(float("-inf"))
        self.scores[self.base] = 0.0  # all beams of a window start alike: the first step expands one
        self.group_done.zero_()
        self.n_fin.zero_()
        self.fin_scores.fill_(float("-inf"))
        self.fin_len.zero_()

    def _choose(self, logits: Tensor, first: bool = False) -> None:
        e, k, g = self.e, self.beam, self.groups
        logits = self._filter(logits, first)
        vocab = logits.shape[-1]
        cand = (self.scores[:, None] + torch.log_softmax(logits, dim=-1)).view(g, k * vocab)
        top, idx = cand.topk(2 * k, dim=1)  # (groups, 2k), best first
        token, src = idx % vocab, idx // vocab + self.base[:, None]
        is_eot = token == e.eot
        live = torch.where(is_eot, self.rank + 2 * k, self.rank).argsort(dim=1)[:, :k]  # the first k others
        # finished: end-of-text candidates ranked above the k-th other one, into the window's free slots
        take = is_eot & (self.rank[None] < live[:, -1:]) & ~self.group_done[:, None]
        slot = self.n_fin[:, None] + take.long().cumsum(1) - 1
        slot = torch.where(take & (slot < k), slot, k)
        where = (self.fin_base + slot).view(-1)
        self.fin_scores.index_copy_(0, where, top.reshape(-1))
        self.fin_len.index_copy_(0, where, self.step_index.expand(where.shape[0]))
        self.fin_out.index_copy_(0, where, self.out.index_select(0, src.reshape(-1)))
        self.n_fin.copy_(torch.clamp(self.n_fin + take.sum(1), max=k))
        # the beams go on from the chosen others; a done window's beams stay as they are
        frozen = self.done
        pick_src = torch.where(frozen, self.own, src.gather(1, live).view(-1))
        pick_tok = torch.where(frozen, e.eot, token.gather(1, live).view(-1))
        self.scores.copy_(torch.where(frozen, self.scores, top.gather(1, live).view(-1)))
        for buf in [*(t for kv in self.cache for t in kv), self.out, self.tokens]:
            buf.copy_(buf.index_select(0, pick_src))
        spent = (self.step_index + 1 >= self.row_budget).view(g, k).all(dim=1)
        self.group_done |= (self.n_fin >= k) | spent
        self.done.copy_(self.group_done.repeat_interleave(k))
        self._advance(pick_tok)


def alignment_matrix(scores: Tensor, n_sot: int) -> Tensor:
    """`rtaudio.stt.alignment.alignment_matrix` on the device, for scores (A, N, T) already cut to the
    window's audio positions (float64, as the numpy reference it is tested against)."""
    from rtaudio.stt.alignment import MEDIAN_FILTER_WIDTH

    w = torch.softmax(scores.double(), dim=-1)
    w = (w - w.mean(dim=-2, keepdim=True)) / (w.std(dim=-2, keepdim=True, correction=0) + 1e-10)
    pad = MEDIAN_FILTER_WIDTH // 2
    if w.shape[-1] > pad:
        w = F.pad(w, (pad, pad), mode="reflect").unfold(-1, MEDIAN_FILTER_WIDTH, 1).median(dim=-1).values
    return w.mean(dim=0)[n_sot:-1]


def text_decoder(tokenizer: Any) -> Callable[[list[int]], str]:
    """Token ids of a row -> its text (timestamp and special tokens dropped)."""
    return lambda tokens: str(tokenizer.decode([t for t in tokens if t < tokenizer.eot]))


def load_engine(folder: Path, device: str) -> tuple[BatchedWhisper, Callable[[list[int]], str]]:
    """The batched engine for a model folder and its text decoder; fixed shapes and CUDA graphs on a GPU.
    The folder is the model's in rtaudio's store (CTranslate2 weights) or one packed by `save_compact`
    (fp16 parts, sha256-checked here); either has whisper.json and tokenizer.json."""
    from rtaudio_models.whisper.ct2 import model_bin_parts, read_ct2_model
    from rtaudio_models.whisper.model import whisper_from_ct2

    from rtaudio.stt.tokenizer import WhisperTokenizer

    info = json.loads((folder / "whisper.json").read_text())
    tok = WhisperTokenizer.from_file(folder / "tokenizer.json", info["dims"]["n_vocab"])
    if (folder / "compact.json").exists():
        model = load_compact(folder, device)
    else:
        model = whisper_from_ct2(read_ct2_model(model_bin_parts(folder / "raw")))
    cuda = device.startswith("cuda")
    return BatchedWhisper.for_whisper(model, info, tok, device, static_shapes=cuda), text_decoder(tok)


def mel_filters_torch(n_mels: int) -> np.ndarray:
    """The same filterbank the CPU front end uses, so GPU and CPU features agree."""
    from rtaudio.dsp.mel import mel_filters

    return mel_filters(n_mels).astype(np.float32)

