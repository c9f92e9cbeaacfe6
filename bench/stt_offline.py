"""Offline Whisper: rtaudio's ONNX recognizer vs faster-whisper (CTranslate2), same weights, same run.

    .venv/bin/python bench/stt_offline.py                       # tiny.en, all dev files
    .venv/bin/python bench/stt_offline.py --model base --limit 40
    .venv/bin/python bench/stt_offline.py --systems ours-int8,fw-int8 --window-sweep
    python bench/stt_offline.py --model-dir ONNX --speech-pack .gpu --systems ours-cuda,ours-fp32,ours-int8

On a GPU host without network (the last line): `python -m rtaudio_models.whisper.export .gpu/whisper-tiny.en
ONNX` writes the ONNX graphs from the model `tools/gpu_pack.py` packed, and `--speech-pack` reads the dev
speech and transcripts from that pack; `ours-cuda` is the fp32 graphs on onnxruntime's CUDA provider.

For each system: real-time factor (wall time / audio time; systems take turns file by file, 2 threads)
and WER per file group and pooled (tools/wer.py normalisation). Decoding settings are the same on
both sides: beam 5, temperature fallback, timestamps on, condition on previous text.
`--window-sweep` adds rtaudio int8 with 30 s windows and with other trailing-silence pads, to show
the accuracy cost of encoding shortened windows. Writes bench/results/stt_offline.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rtaudio.modelstore import ensure_model  # noqa: E402
from rtaudio.stt.decoding import DecodeOptions  # noqa: E402
from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer  # noqa: E402
from tools.wer import Utterance, as_json, format_table, read_manifest, score, speech_dir  # noqa: E402

THREADS = 2
Transcriber = Callable[[np.ndarray], str]


def ours(folder: Path, config: RecognizerConfig, language: str | None, cross_on_host: bool = False) -> Transcriber:
    recognizer = WhisperRecognizer.from_folder(folder, config)
    if cross_on_host:  # the CUDA path before its io binding: cross K/V fed back as numpy every step
        recognizer.backend.cross_device = None  # type: ignore[attr-defined]
    options = DecodeOptions(language=language)
    return lambda audio: recognizer.transcribe(audio, options).text


def faster_whisper(raw: Path, compute_type: str, language: str | None) -> Transcriber:
    """faster-whisper on the very weights we converted (the model store's raw CTranslate2 files)."""
    import tempfile

    from faster_whisper import WhisperModel
    from rtaudio_models.whisper.ct2 import faster_whisper_folder

    folder = faster_whisper_folder(raw, Path(tempfile.mkdtemp(prefix="fw-")))
    model = WhisperModel(str(folder), device="cpu", compute_type=compute_type, cpu_threads=THREADS)

    def run(audio: np.ndarray) -> str:
        segments, _ = model.transcribe(audio, beam_size=5, language=language)
        return " ".join(s.text.strip() for s in segments)

    return run


def _bind(make: Callable[[Path, RecognizerConfig, str | None], Transcriber], folder: Path,
          config: RecognizerConfig, language: str | None) -> Callable[[], Transcriber]:
    return lambda: make(folder, config, language)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="whisper-tiny.en", help="whisper-tiny.en or whisper-base")
    p.add_argument("--systems", default="ours-int8,ours-fp32,fw-int8,fw-fp32",
                   help="comma list of ours-int8, ours-fp32, fw-int8, fw-fp32")
    p.add_argument("--window-sweep", action="store_true", help="also ours-int8 with 30 s windows and pads 1/10 s")
    p.add_argument("--limit", type=int, default=0, help="only the first N files of each group (0 = all)")
    p.add_argument("--manifest", type=Path, default=speech_dir() / "dev" / "manifest.tsv")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "stt_offline.json")
    p.add_argument("--model-dir", type=Path, help="ONNX graphs from this folder instead of the model store")
    p.add_argument("--speech-pack", type=Path, help="speech.npz and refs.json from tools/gpu_pack.py instead of --manifest")
    args = p.parse_args(argv)

    folder = args.model_dir or ensure_model(args.model)
    multilingual = json.loads((folder / "whisper.json").read_text())["dims"]["n_vocab"] >= 51865
    language = "en" if multilingual else None  # the dev set is English: no detection on either side
    read: Callable[[Utterance], np.ndarray]
    if args.speech_pack:
        packed = np.load(args.speech_pack / "speech.npz")
        refs = json.loads((args.speech_pack / "refs.json").read_text())
        utterances = [Utterance(f, packed[f].size / 16000, r["transcript"]) for f, r in refs.items()]
        read = lambda u: packed[u.file].astype(np.float32) / 32767  # noqa: E731
    else:
        from rtaudio.io.files import read_audio  # soundfile: absent on GPU hosts, where --speech-pack serves

        utterances = read_manifest(args.manifest)
        read = lambda u: read_audio(args.manifest.parent / u.file, target_rate_hz=16000)[0]  # noqa: E731
    if args.limit:
        seen: dict[str, int] = {}
        kept = []
        for u in utterances:
            g = u.file.split("_")[0]
            seen[g] = seen.get(g, 0) + 1
            if seen[g] <= args.limit:
                kept.append(u)
        utterances = kept
    audio = {u.file: read(u) for u in utterances}
    total_s = sum(a.size for a in audio.values()) / 16000

    factories: dict[str, Callable[[], Transcriber]] = {
        "ours-int8": lambda: ours(folder, RecognizerConfig(precision="int8", threads=THREADS, device="cpu"), language),
        "ours-fp32": lambda: ours(folder, RecognizerConfig(precision="fp32", threads=THREADS, device="cpu"), language),
        "ours-cuda": lambda: ours(folder, RecognizerConfig(precision="fp32", device="cuda"), language),
        "ours-cuda-int8": lambda: ours(folder, RecognizerConfig(precision="int8", device="cuda"), language),
        "ours-cuda-numpy": lambda: ours(folder, RecognizerConfig(precision="fp32", device="cuda"), language, True),
        "fw-int8": lambda: faster_whisper(folder / "raw", "int8", language),  # needs the store's folder
        "fw-fp32": lambda: faster_whisper(folder / "raw", "float32", language),
    }
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if args.window_sweep:
        for name, cfg in (("ours-int8-30s", RecognizerConfig(full_window=True)),
                          ("ours-int8-pad1", RecognizerConfig(trailing_pad_s=1.0)),
                          ("ours-int8-pad10", RecognizerConfig(trailing_pad_s=10.0))):
            factories[name] = _bind(ours, folder, cfg, language)
            systems.append(name)
    unknown = [s for s in systems if s not in factories]
    if unknown:
        p.error(f"unknown systems {unknown}; known: {sorted(factories)}")

    print(f"{args.model}: {len(audio)} files, {total_s:.1f} s of audio, {THREADS} threads", file=sys.stderr)
    transcribers = {name: factories[name]() for name in systems}
    first = next(iter(audio.values()))
    for transcribe in transcribers.values():
        transcribe(first)  # warm-up (graph optimisation, allocations)
    # round-robin per file: load from other processes on this shared machine hits every system alike
    walls = dict.fromkeys(systems, 0.0)
    hyps: dict[str, dict[str, str]] = {name: {} for name in systems}
    for i, (f, a) in enumerate(audio.items()):
        for name in systems:
            t0 = time.perf_counter()
            hyps[name][f] = transcribers[name](a)
            walls[name] += time.perf_counter() - t0
        if (i + 1) % 20 == 0:
            print(f"  {i + 1}/{len(audio)} files", file=sys.stderr)
    results: dict[str, dict] = {}
    scores = {}
    for name in systems:
        scores[name] = score(utterances, hyps[name])
        results[name] = {"rtf": walls[name] / total_s, "wall_s": walls[name], "wer": as_json(scores[name])}

    print(f"\n{'system':<16} {'RTF':>7} {'x faster than fw-int8':>22} {'WER':>7}")
    base_rtf = results.get("fw-int8", {}).get("rtf")
    for name, r in results.items():
        speed = f"{base_rtf / r['rtf']:.2f}x" if base_rtf else "-"
        print(f"{name:<16} {r['rtf']:7.4f} {speed:>22} {r['wer']['pooled']['wer'] * 100:6.2f}%")
    print("\nWER by group\n" + format_table(scores))

    args.json.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(args.json.read_text()) if args.json.exists() else {}
    existing[args.model] = {"audio_s": total_s, "files": len(audio), "threads": THREADS,
                            "machine": platform.processor() or platform.machine(), "systems": results}
    args.json.write_text(json.dumps(existing, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
