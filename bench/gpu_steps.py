"""What one decode step and one encode cost on the GPU, by batch and window shape: whether a round's decode
loops are bound by kernel launches (step time flat in the batch) or by memory (step time grows with it); and
what the VAD of a 400-stream round costs, by ONNX Runtime on the CPU and by its PyTorch twin on the GPU.

    python -m bench.gpu_steps            # on the lent H100, from the inputs of `tools/gpu_pack.py`
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.gpu_streams import REPO, SR, build_engine
from rtaudio.stt.batch_runner import BatchedVad
from rtaudio.stt.batch_stream import BatchStream, BatchStreamConfig


def vad_tick_ms(path: Path, audio: np.ndarray, streams: int, device: str | None, rounds: int = 20) -> float:
    """Wall time of `BatchedVad.score` for `streams` streams given 200 ms of new speech each (a round)."""
    vad = BatchedVad(path, threads=12, chunk=48, device=device)
    live = [BatchStream(i, BatchStreamConfig()) for i in range(streams)]
    step = SR // 5
    starts = [(i * 7919) % (len(audio) - (rounds + 4) * step) for i in range(streams)]
    spent = []
    for k in range(rounds + 3):
        for s, a in zip(live, starts, strict=True):
            s.accept(audio[a + k * step: a + (k + 1) * step])
        t = time.perf_counter()
        vad.score(live)
        spent.append(time.perf_counter() - t)
    return float(np.mean(spent[3:]) * 1000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=REPO / ".gpu")
    ap.add_argument("--model", default="whisper-tiny.en")
    ap.add_argument("--streams", type=int, default=400, help="streams for the VAD timing")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_steps.json")
    args = ap.parse_args()

    import torch

    engine, _, _ = build_engine(args.pack, args.model, "cuda", static_shapes=True)
    speech = dict(np.load(args.pack / "speech.npz"))
    audio = np.concatenate([x.astype(np.float32) / 32767 for x in speech.values()])

    def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
        fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / repeat * 1000

    mode = torch.inference_mode()  # the engine's tensors are inference tensors
    mode.__enter__()
    rows = []
    print(f"{'kind':>6} {'window':>6} {'rows':>5} {'encode ms':>9} {'step ms':>8} {'decode ms':>9} {'steps':>5}")
    for beam, shapes, sizes in ((1, engine.static_windows_s, (32, 64, 128, 256)),
                                (engine.final_beam, engine.final_windows_s, (8, 16, 32, 64))):
        for window_s in shapes:
            for b in sizes:
                n = int(window_s * SR) - engine.tail_pad
                windows = [audio[i * n: (i + 1) * n] for i in range(b)]
                run = functools.partial(engine.transcribe_static, windows, window_s=window_s, beam=beam,
                                        timed=beam > 1)
                whole = timed(run, 3)
                key = next(k for k in engine._static if k[0] == b and k[1] == int(window_s * SR) // 320
                           and k[4] == beam)
                dec = engine._static[key]
                steps = int(dec.step_index.item())  # of the last run

                def replays(d=dec) -> None:  # type: ignore[no-untyped-def]
                    d._reset()  # from step 0: replays stay within the token budget and the cache
                    d.pos.fill_(d.prefix)
                    for _ in range(20):
                        d.graph.replay()

                step = timed(replays, 5) / 20
                audio_t, valid = engine._pad(windows, int(window_s * SR))
                enc = timed(functools.partial(lambda a, v: engine._encode(engine.log_mel(a).to(engine.dtype), v),
                                              audio_t, valid), 5)
                rows.append({"beam": beam, "window_s": window_s, "rows": b, "encode_ms": enc, "step_ms": step,
                             "decode_ms": whole, "steps": steps})
                print(f"{'beam' if beam > 1 else 'greedy':>6} {window_s:6.0f} {b:5d} {enc:9.2f} {step:8.3f} "
                      f"{whole:9.1f} {steps:5d}", flush=True)
    vad = {name: vad_tick_ms(args.pack / "silero_vad.onnx", audio, args.streams, device)
           for name, device in (("onnx, 12 threads", None), ("pytorch, cuda", "cuda"))}
    for name, ms in vad.items():
        print(f"VAD of {args.streams} streams, 200 ms of audio each: {ms:.1f} ms a round ({name})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "rows": rows, "vad_tick_ms": vad}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
