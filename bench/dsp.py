"""DSP throughput and resampler quality, against peers measured in the same run, on one core.

    .venv/bin/python bench/dsp.py --duration-s 10

Throughput is "x real time" (seconds of audio processed per second of wall time, one thread),
best of --repeats, the implementations of a task timed in turn each round. Peers: soxr
(default "HQ") and scipy.signal.resample_poly for resampling; the plain numpy reference and
faster-whisper's FeatureExtractor for Whisper's log-mel. Our resampler runs with its default
engine (FFT blocks where the ratio allows, see rtaudio.dsp.resample) and with the direct engine
(max_block_ms=0: no block latency), each whole and in 20 ms chunks. Quality: sine-sweep passband
SNR and aliasing (rtaudio.dsp.sweep) for both engines, soxr and resample_poly. The load average
before and after is recorded: other work on the machine lowers every figure, so compare rows of
one run only. Writes bench/results/dsp.json.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core, before numpy/numba load

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from rtaudio import dsp  # noqa: E402
from rtaudio.dsp import mel  # noqa: E402
from rtaudio.dsp.resample import WHOLE_SIGNAL, Resampler, ResamplerConfig, resample  # noqa: E402
from rtaudio.dsp.sweep import resample_quality  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "dsp.json"
PAIRS = [(48000, 16000), (44100, 16000), (16000, 48000), (24000, 16000), (22050, 16000), (16000, 24000)]
DIRECT = ResamplerConfig(max_block_ms=0.0)


def _best_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm caches / JIT
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _best_interleaved(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best time of each case, the cases taken in turn each round so load changes hit them alike."""
    for fn in cases.values():
        fn()  # warm caches / JIT
    best = dict.fromkeys(cases, math.inf)
    for _ in range(repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _optional(name: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


def _streamed(x: np.ndarray, fin: int, fout: int, chunk: int, config: ResamplerConfig | None = None) -> np.ndarray:
    r = Resampler(fin, fout, config)
    parts = [r.push(x[i:i + chunk]) for i in range(0, x.size, chunk)]
    parts.append(r.flush())
    return np.concatenate(parts)


def bench_resample(duration_s: float, repeats: int) -> list[dict[str, Any]]:
    soxr, signal = _optional("soxr"), _optional("scipy.signal")
    rows = []
    rng = np.random.default_rng(0)
    for fin, fout in PAIRS:
        x = (rng.standard_normal(int(duration_s * fin)) * 0.1).astype(np.float32)
        g = math.gcd(fin, fout)
        r = Resampler(fin, fout, WHOLE_SIGNAL)
        engine = f"{r.engine}, {r.block_ms:.0f} ms blocks" if r.engine == "fft" else r.engine
        cases: dict[str, Callable[[], object]] = {
            "rtaudio (whole)": lambda x=x, fin=fin, fout=fout: resample(x, fin, fout),
            "rtaudio (20 ms chunks)": lambda x=x, fin=fin, fout=fout: _streamed(x, fin, fout, fin // 50, WHOLE_SIGNAL),
            "rtaudio direct (whole)": lambda x=x, fin=fin, fout=fout: resample(x, fin, fout, DIRECT),
            "rtaudio direct (20 ms chunks)": lambda x=x, fin=fin, fout=fout: _streamed(
                x, fin, fout, fin // 50, DIRECT),
        }
        if soxr is not None:
            cases["soxr HQ"] = lambda x=x, fin=fin, fout=fout: soxr.resample(x, fin, fout)
        if signal is not None:
            cases["scipy resample_poly"] = lambda x=x, fin=fin, fout=fout, g=g: signal.resample_poly(
                x, fout // g, fin // g)
        for name, best_s in _best_interleaved(cases, repeats).items():
            rows.append({"task": f"resample {fin}->{fout}", "impl": name,
                         "engine": engine if name.startswith("rtaudio (") else None,
                         "x_realtime": duration_s / best_s})
    return rows


def bench_mel(duration_s: float, repeats: int) -> list[dict[str, Any]]:
    fw = _optional("faster_whisper.feature_extractor")
    x = (np.random.default_rng(1).standard_normal(int(duration_s * 16000)) * 0.1).astype(np.float32)
    rows = []
    for n_mels in (80, 128):
        cases: dict[str, Callable[[], object]] = {
            "rtaudio log_mel_spectrogram": lambda n=n_mels: mel.log_mel_spectrogram(x, n),
            "rtaudio MelStream (20 ms chunks)": lambda n=n_mels: _mel_streamed(x, n),
            "numpy reference": lambda n=n_mels: mel.log_mel_reference(x, n),
        }
        if fw is not None:
            extractor = fw.FeatureExtractor(n_mels)
            cases["faster-whisper FeatureExtractor"] = lambda e=extractor: e(x, padding=0)
        for name, fn in cases.items():
            rows.append({"task": f"log-mel {n_mels}", "impl": name, "x_realtime": duration_s / _best_s(fn, repeats)})
    return rows


def _mel_streamed(x: np.ndarray, n_mels: int) -> np.ndarray:
    s = mel.MelStream(n_mels)
    parts = [s.push(x[i:i + 320]) for i in range(0, x.size, 320)]
    parts.append(s.flush())
    return mel.normalize_log_mel(np.concatenate(parts, axis=1))


def bench_quality(duration_s: float) -> list[dict[str, Any]]:
    soxr, signal = _optional("soxr"), _optional("scipy.signal")
    rows = []
    for fin, fout in PAIRS:
        g = math.gcd(fin, fout)
        impls: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "rtaudio": lambda x, fin=fin, fout=fout: resample(x, fin, fout),
            "rtaudio direct": lambda x, fin=fin, fout=fout: resample(x, fin, fout, DIRECT)}
        if soxr is not None:
            impls["soxr HQ"] = lambda x, fin=fin, fout=fout: soxr.resample(x, fin, fout)
        if signal is not None:
            impls["scipy resample_poly"] = lambda x, fin=fin, fout=fout, g=g: signal.resample_poly(x, fout // g, fin // g)
        for name, fn in impls.items():
            q = resample_quality(fn, fin, fout, duration_s=duration_s)
            rows.append({"task": f"{fin}->{fout}", "impl": name, "snr_db": q.snr_db, "aliasing_db": q.aliasing_db})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=30.0, help="seconds of audio per throughput case")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=RESULTS)
    args = ap.parse_args()

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    dsp.warmup()
    warmup_s = time.perf_counter() - t0
    speed = bench_resample(args.duration_s, args.repeats) + bench_mel(args.duration_s, args.repeats)
    quality = bench_quality(min(args.duration_s, 4.0))
    load_after = os.getloadavg()

    print(f"\nThroughput, x real time, one core ({platform.processor() or platform.machine()}):")
    print(f"{'task':<24} {'implementation':<40} {'x realtime':>11}")
    for r in speed:
        engine = f"  [{r['engine']}]" if r.get("engine") else ""
        print(f"{r['task']:<24} {r['impl']:<40} {r['x_realtime']:>11.0f}{engine}")
    ref = {r["task"]: r["x_realtime"] for r in speed if r["impl"] == "numpy reference"}
    for r in speed:
        if r["impl"] == "rtaudio log_mel_spectrogram":
            r["speedup_vs_numpy_reference"] = r["x_realtime"] / ref[r["task"]]
            print(f"{r['task']}: rtaudio is {r['speedup_vs_numpy_reference']:.2f}x the numpy reference")
    print("\nResampler quality on a sine sweep (SNR: higher is better; aliasing: lower is better):")
    print(f"{'rates':<14} {'implementation':<22} {'SNR dB':>8} {'aliasing dB':>12}")
    for r in quality:
        alias = "-" if r["aliasing_db"] is None else f"{r['aliasing_db']:.1f}"
        print(f"{r['task']:<14} {r['impl']:<22} {r['snr_db']:>8.1f} {alias:>12}")
    print(f"\ndsp.warmup(): {warmup_s:.2f} s; load average (1, 5, 15 min) before {load_before}, after {load_after}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "duration_s": args.duration_s, "repeats": args.repeats, "threads": 1, "warmup_s": warmup_s,
        "machine": platform.platform(), "load_average_before": load_before, "load_average_after": load_after,
        "throughput": speed, "quality": quality,
    }, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
