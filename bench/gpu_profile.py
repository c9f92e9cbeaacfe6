"""Time the parts of one batched decode on the GPU (encoder, decoder step variants) with synchronisation."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from bench.gpu_streams import REPO, build_engine


def timed(fn, n=20):  # type: ignore[no-untyped-def]
    fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1000


def main() -> int:
    eng, tok = build_engine(REPO / ".gpu", "whisper-tiny.en", "cuda")
    speech = dict(np.load(REPO / ".gpu" / "speech.npz"))
    wins = [v.astype(np.float32)[: 16000 * 6] / 32767 for v in list(speech.values())[:64]]
    rng = np.random.default_rng(0)
    allw = [v.astype(np.float32) / 32767 for v in speech.values()]
    for i in range(4):
        b = int(rng.integers(20, 60))
        w = [np.tile(allw[int(rng.integers(len(allw)))], 3)[: int(rng.uniform(1, 14) * 16000)] for _ in range(b)]
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = eng.transcribe(w)
        torch.cuda.synchronize()
        print(f"varied B={b} max {max(len(x) for x in w) / 16000:.1f}s: {1000 * (time.perf_counter() - t):.0f} ms, "
              f"max tokens {max(len(o) for o in out)}")
    from torch.profiler import ProfilerActivity, profile

    b = 40
    w = [np.tile(allw[int(rng.integers(len(allw)))], 3)[: int(rng.uniform(1, 14) * 16000)] for _ in range(b)]
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        eng.transcribe(w)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=12, max_name_column_width=60))
    return 0
    for b in (8, 64):
        w = (wins * 8)[:b]
        print(f"B={b} transcribe {timed(lambda: eng.transcribe(w), 3):.1f} ms")
        audio, valid = eng._pad(w)
        mel = eng.log_mel(audio).to(eng.dtype)
        print(f"  mel {timed(lambda: eng.log_mel(audio)):.2f} ms  encode {timed(lambda: eng._encode(mel, valid)):.2f} ms")
        enc, mask = eng._encode(mel, valid)
        cross = eng._cross_kv(enc)
        dims = eng.model.dims
        shape = (b, 6, 100, 64)
        cache = [(torch.zeros(shape, device="cuda", dtype=eng.dtype), torch.zeros(shape, device="cuda", dtype=eng.dtype)) for _ in range(4)]
        tokens = eng.start[-1].expand(b, 1)
        print(f"  step(mask) {timed(lambda: eng._step(tokens, 20, cache, cross, mask)):.2f} ms")
        print(f"  step(no mask) {timed(lambda: eng._step(tokens, 20, cache, cross, None)):.2f} ms")
        crossc = [(k.contiguous(), v.contiguous()) for k, v in cross]
        print(f"  step(contig cross, mask) {timed(lambda: eng._step(tokens, 20, cache, crossc, mask)):.2f} ms")
        fmask = torch.zeros(mask.shape, device="cuda", dtype=eng.dtype).masked_fill(~mask, float("-inf"))
        print(f"  step(contig, float mask) {timed(lambda: eng._step(tokens, 20, cache, crossc, fmask)):.2f} ms")
        h = torch.randn(b, 384, device="cuda", dtype=eng.dtype)
        print(f"  logits {timed(lambda: eng.model.decoder.logits(h)):.2f} ms")
        q = torch.randn(b, 6, 1, 64, device="cuda", dtype=eng.dtype)
        k, v = crossc[0]
        print(f"  sdpa cross {timed(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)):.3f} ms")
        print(f"  manual cross {timed(lambda: torch.softmax((q @ k.transpose(-1, -2)) * 0.125 + fmask, -1) @ v):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
