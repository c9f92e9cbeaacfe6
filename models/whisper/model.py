"""A readable PyTorch Whisper shaped for export: encoder, cross-attention K/V once per window,
and a decoder step with a self-attention KV cache.

Shapes use B batch (beams), H heads, D state width, Dh = D / H, T audio positions
(n_frames / 2), P cached text positions, N new text positions.

Attention scaling is folded in ahead of time: the query (self-attention) or the cross key
(cross-attention) is multiplied by Dh**-0.5, so no graph multiplies a T-long score row by a scalar.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from rtaudio_models.whisper.ct2 import Ct2Model
from torch import Tensor, nn

from rtaudio.stt.onnx_whisper import WhisperDims


class MultiHeadAttention(nn.Module):
    """Whisper attention: biased query/value/out, bias-free key."""

    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.head_dim = n_state // n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)
        self.scale = (n_state // n_head) ** -0.5

    def heads(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, H, L, Dh). (unflatten/flatten keep the exported graph free of shape arithmetic.)"""
        return x.unflatten(2, (self.n_head, self.head_dim)).transpose(1, 2)

    def merge(self, x: Tensor) -> Tensor:
        """(B, H, L, Dh) -> (B, L, D)."""
        return x.transpose(1, 2).flatten(2)

    def forward(self, x: Tensor) -> Tensor:
        """Full self-attention without a mask (the encoder)."""
        q = self.heads(self.query(x) * self.scale)
        k = self.heads(self.key(x))
        v = self.heads(self.value(x))
        w = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.out(self.merge(w @ v))

    def cached_self(self, x: Tensor, past_k: Tensor, past_v: Tensor, mask: Tensor,
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """Causal self-attention of N new positions after P cached ones; returns (out, k, v) with P+N.
        `mask` (N, P+N) is 0 where a position may look and -inf where it may not."""
        q = self.heads(self.query(x) * self.scale)
        k = torch.cat([past_k, self.heads(self.key(x))], dim=2)
        v = torch.cat([past_v, self.heads(self.value(x))], dim=2)
        w = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
        return self.out(self.merge(w @ v)), k, v

    def cross_kv(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """Keys (B, H, Dh, T) already scaled and transposed, values (B, H, T, Dh)."""
        k = self.heads(self.key(audio) * self.scale).transpose(-1, -2)
        return k, self.heads(self.value(audio))

    def cross(self, x: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Attend N text positions to the audio; returns (out, scores before softmax (B, H, N, T)).
        k/v may have batch 1 and broadcast over the beams."""
        q = self.heads(self.query(x))
        scores = q @ k
        return self.out(self.merge(torch.softmax(scores, dim=-1) @ v)), scores


class EncoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class DecoderBlock(nn.Module):
    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head)
        self.cross_attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: Tensor, past_k: Tensor, past_v: Tensor, mask: Tensor, cross_k: Tensor,
                cross_v: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        a, k, v = self.attn.cached_self(self.attn_ln(x), past_k, past_v, mask)
        x = x + a
        c, w = self.cross_attn.cross(self.cross_attn_ln(x), cross_k, cross_v)
        x = x + c
        return x + self.mlp(self.mlp_ln(x)), k, v, w


class AudioEncoder(nn.Module):
    positional_embedding: Tensor

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        d = dims.n_audio_state
        self.conv1 = nn.Conv1d(dims.n_mels, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(dims.n_audio_ctx, d))
        self.blocks = nn.ModuleList(EncoderBlock(d, dims.n_audio_head) for _ in range(dims.n_audio_layer))
        self.ln_post = nn.LayerNorm(d)

    def forward(self, mel: Tensor) -> Tensor:
        """mel (B, n_mels, F) with even F <= 2 * n_audio_ctx -> (B, F/2, D). Short windows use a prefix
        of the positional embedding, which is what lets a 5 s window cost 1/6 of a 30 s one."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positional_embedding[: x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    positional_embedding: Tensor

    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        d = dims.n_text_state
        self.token_embedding = nn.Embedding(dims.n_vocab, d)
        self.register_buffer("positional_embedding", torch.zeros(dims.n_text_ctx, d))
        self.blocks = nn.ModuleList(DecoderBlock(d, dims.n_text_head) for _ in range(dims.n_text_layer))
        self.ln = nn.LayerNorm(d)

    def cross_kv(self, audio: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per layer (key (B, H, Dh, T), value (B, H, T, Dh)): computed once per window."""
        return [block.cross_attn.cross_kv(audio) for block in cast(list[DecoderBlock], list(self.blocks))]

    def step(self, tokens: Tensor, past: list[tuple[Tensor, Tensor]], cross: list[tuple[Tensor, Tensor]],
             ) -> tuple[Tensor, list[tuple[Tensor, Tensor]], list[Tensor]]:
        """tokens (B, N) int64 after P cached positions -> (hidden (B, N, D) after the final norm,
        present per layer (k, v) each (B, H, P+N, Dh), cross-attention scores per layer (B, H, N, T))."""
        offset, n = past[0][0].shape[2], tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[offset: offset + n]
        # new position i (absolute offset + i) may see cached and new positions j <= offset + i
        rows = torch.arange(n).unsqueeze(1) + offset
        cols = torch.arange(offset + n).unsqueeze(0)
        mask = torch.where(cols > rows, torch.tensor(float("-inf")), torch.tensor(0.0))
        present, weights = [], []
        for block, (pk, pv), (ck, cv) in zip(self.blocks, past, cross, strict=True):
            x, k, v, w = block(x, pk, pv, mask, ck, cv)
            present.append((k, v))
            weights.append(w)
        return self.ln(x), present, weights

    def logits(self, hidden: Tensor) -> Tensor:
        """(..., D) -> (..., V): the output projection is tied to the token embedding."""
        return hidden @ self.token_embedding.weight.T


class Whisper(nn.Module):
    def __init__(self, dims: WhisperDims) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(dims)
        self.decoder = TextDecoder(dims)

    def empty_cache(self, batch: int) -> list[tuple[Tensor, Tensor]]:
        d, h = self.dims.n_text_state, self.dims.n_text_head
        z = torch.zeros(batch, h, 0, d // h)
        return [(z, z) for _ in range(self.dims.n_text_layer)]


# -- loading CTranslate2 weights -----------------------------------------------------------------

def dims_from_ct2(ct2: Ct2Model) -> WhisperDims:
    v = ct2.variables
    n_audio_ctx, n_audio_state = v["encoder/position_encodings/encodings"].shape
    n_text_ctx, n_text_state = v["decoder/position_encodings/encodings"].shape
    return WhisperDims(
        n_mels=v["encoder/conv1/weight"].shape[1],
        n_audio_ctx=n_audio_ctx,
        n_audio_state=n_audio_state,
        n_audio_head=ct2.scalar("encoder/num_heads"),
        n_audio_layer=sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight")),
        n_vocab=v["decoder/embeddings/weight"].shape[0],
        n_text_ctx=n_text_ctx,
        n_text_state=n_text_state,
        n_text_head=ct2.scalar("decoder/num_heads"),
        n_text_layer=sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("ffn/linear_0/weight")),
    )


def _t(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32).copy())


def _linear(dst: nn.Linear | nn.Conv1d, v: dict[str, np.ndarray], prefix: str, rows: slice = slice(None)) -> None:
    dst.weight.data = _t(v[prefix + "/weight"][rows])
    if dst.bias is not None:
        dst.bias.data = _t(v[prefix + "/bias"][rows])


def _layer_norm(dst: nn.LayerNorm, v: dict[str, np.ndarray], prefix: str) -> None:
    dst.weight.data = _t(v[prefix + "/gamma"])
    dst.bias.data = _t(v[prefix + "/beta"])


def _mlp(dst: nn.Sequential, v: dict[str, np.ndarray], prefix: str) -> None:
    _linear(cast(nn.Linear, dst[0]), v, prefix + "/linear_0")
    _linear(cast(nn.Linear, dst[2]), v, prefix + "/linear_1")


def _fused_self_attention(dst: MultiHeadAttention, v: dict[str, np.ndarray], prefix: str, d: int) -> None:
    """CTranslate2 fuses Q, K, V into linear_0 (3D rows); linear_1 is the output projection."""
    _linear(dst.query, v, prefix + "/linear_0", slice(0, d))
    _linear(dst.key, v, prefix + "/linear_0", slice(d, 2 * d))  # its bias slice is zero by construction
    _linear(dst.value, v, prefix + "/linear_0", slice(2 * d, 3 * d))
    _linear(dst.out, v, prefix + "/linear_1")


def whisper_from_ct2(ct2: Ct2Model) -> Whisper:
    """Build the PyTorch model (float32) from a parsed CTranslate2 WhisperSpec."""
    if ct2.spec_name != "WhisperSpec":
        raise ValueError(f"expected a WhisperSpec model, got {ct2.spec_name!r}")
    v = ct2.variables
    dims = dims_from_ct2(ct2)
    model = Whisper(dims)
    enc, dec = model.encoder, model.decoder
    _linear(enc.conv1, v, "encoder/conv1")
    _linear(enc.conv2, v, "encoder/conv2")
    enc.positional_embedding.data = _t(v["encoder/position_encodings/encodings"])
    for i, block in enumerate(cast(list[EncoderBlock], list(enc.blocks))):
        p = f"encoder/layer_{i}"
        _fused_self_attention(block.attn, v, p + "/self_attention", dims.n_audio_state)
        _layer_norm(block.attn_ln, v, p + "/self_attention/layer_norm")
        _mlp(block.mlp, v, p + "/ffn")
        _layer_norm(block.mlp_ln, v, p + "/ffn/layer_norm")
    _layer_norm(enc.ln_post, v, "encoder/layer_norm")

    d = dims.n_text_state
    dec.token_embedding.weight.data = _t(v["decoder/embeddings/weight"])
    dec.positional_embedding.data = _t(v["decoder/position_encodings/encodings"])
    for i, dblock in enumerate(cast(list[DecoderBlock], list(dec.blocks))):
        p = f"decoder/layer_{i}"
        _fused_self_attention(dblock.attn, v, p + "/self_attention", d)
        _layer_norm(dblock.attn_ln, v, p + "/self_attention/layer_norm")
        # cross-attention: linear_0 = Q, linear_1 = fused K/V (2D rows), linear_2 = output
        _linear(dblock.cross_attn.query, v, p + "/attention/linear_0")
        _linear(dblock.cross_attn.key, v, p + "/attention/linear_1", slice(0, d))
        _linear(dblock.cross_attn.value, v, p + "/attention/linear_1", slice(d, 2 * d))
        _linear(dblock.cross_attn.out, v, p + "/attention/linear_2")
        _layer_norm(dblock.cross_attn_ln, v, p + "/attention/layer_norm")
        _mlp(dblock.mlp, v, p + "/ffn")
        _layer_norm(dblock.mlp_ln, v, p + "/ffn/layer_norm")
    _layer_norm(dec.ln, v, "decoder/layer_norm")
    return model.eval()
