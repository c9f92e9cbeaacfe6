"""One recording captioned live, event by event: what the caption timeline plot (bench/plots.py) draws.

    .venv/bin/python -m bench.timeline [--file jfk_inaugural_ask_not.flac] [--charge cpu]

Streams one file of ../shared/speech/dev through `StreamingRecognizer` exactly as bench/stt_stream.py
does (20-100 ms chunks at real-time pace on a virtual clock that charges each decode its compute), and
writes bench/results/timeline.json: the waveform envelope (min / max per 10 ms), the words with their
times in the audio (offline pass with word alignment, as stt_stream's latency uses), every caption with
the stream time it was emitted, and per word when it first appeared in a partial and in a final.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.stt_stream import match_words, stream_file  # noqa: E402
from rtaudio.frames import Stability  # noqa: E402
from rtaudio.io.files import read_audio  # noqa: E402
from rtaudio.stt.decoding import DecodeOptions  # noqa: E402
from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer  # noqa: E402
from rtaudio.stt.stabilizer import normalize_word  # noqa: E402
from rtaudio.stt.streaming import SAMPLE_RATE_HZ, StreamingConfig, StreamingRecognizer  # noqa: E402
from rtaudio.stt.vad import SileroVadModel  # noqa: E402
from tools.wer import read_manifest, speech_dir  # noqa: E402

ENVELOPE_SAMPLES = SAMPLE_RATE_HZ // 100  # 10 ms per envelope point


def envelope(audio: np.ndarray) -> tuple[list[float], list[float]]:
    """(min, max) of each 10 ms of float32 `audio`, rounded: enough to draw the waveform."""
    n = len(audio) // ENVELOPE_SAMPLES * ENVELOPE_SAMPLES
    blocks = audio[:n].reshape(-1, ENVELOPE_SAMPLES)
    return ([round(float(x), 4) for x in blocks.min(axis=1)], [round(float(x), 4) for x in blocks.max(axis=1)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--file", default="jfk_inaugural_ask_not.flac", help="a file of ../shared/speech/dev")
    p.add_argument("--model", default="whisper-tiny.en")
    p.add_argument("--charge", choices=("wall", "cpu", "model"), default="cpu",
                   help="what compute costs on the virtual clock (see bench/stt_stream.py)")
    p.add_argument("--seed", type=int, default=0, help="seed of the chunk sizes")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "timeline.json")
    args = p.parse_args(argv)

    folder = speech_dir() / "dev"
    reference = {u.file: u.transcript for u in read_manifest(folder / "manifest.tsv")}
    if args.file not in reference:
        p.error(f"{args.file} is not in {folder / 'manifest.tsv'}")
    audio, _ = read_audio(folder / args.file, target_rate_hz=SAMPLE_RATE_HZ)
    config = StreamingConfig()
    recognizer = WhisperRecognizer.load(args.model, RecognizerConfig(threads=1, spin=False))
    vad = SileroVadModel.load()
    StreamingRecognizer(recognizer, config, vad_model=vad).warm_up()
    load_before = os.getloadavg()

    offline = recognizer.transcribe(audio, DecodeOptions(word_timestamps=True))
    spoken = [(w.text.strip(), w.start_s, w.end_s) for w in offline.words if normalize_word(w.text)]
    ref_words = [(normalize_word(t), s, e) for t, s, e in spoken]
    t0 = time.perf_counter()
    run = stream_file(recognizer, vad, audio, config, seed=args.seed, charge=args.charge)
    wall_s = time.perf_counter() - t0

    first_partial: dict[int, float] = {}
    first_final: dict[int, float] = {}
    captions: list[dict[str, Any]] = []
    for emitted, audio_s, cap in run.timeline:
        matched = match_words(ref_words, audio_s, cap)
        for i in matched:
            first_partial.setdefault(i, emitted)
            if cap.stability is Stability.FINAL:
                first_final.setdefault(i, emitted)
        captions.append({"emitted_s": round(emitted, 3), "audio_s": round(audio_s, 3),
                         "stability": cap.stability.name.lower(), "segment": cap.segment_id,
                         "start_s": round(cap.start_s, 3), "end_s": round(cap.end_s, 3), "text": cap.text})
    words: list[dict[str, Any]] = [{"text": t, "start_s": round(s, 3), "end_s": round(e, 3),
              "first_shown_s": round(first_partial[i], 3) if i in first_partial else None,
              "final_s": round(first_final[i], 3) if i in first_final else None}
             for i, (t, s, e) in enumerate(spoken)]
    lo, hi = envelope(audio)
    result = {
        "file": args.file, "model": args.model, "reference": reference[args.file], "offline": offline.text,
        "streaming": run.text, "duration_s": round(len(audio) / SAMPLE_RATE_HZ, 3),
        "clock": f"virtual real-time (idle skipped, compute charged at measured {args.charge} time)",
        "chunks_ms": [20, 100], "seed": args.seed, "partial_interval_ms": config.partial_interval_ms,
        "envelope_step_s": ENVELOPE_SAMPLES / SAMPLE_RATE_HZ, "envelope_min": lo, "envelope_max": hi,
        "words": words, "captions": captions, "stream_rtf": run.compute_s / (len(audio) / SAMPLE_RATE_HZ),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "wall_s": wall_s,
    }
    print(f"{args.file}: {len(audio) / SAMPLE_RATE_HZ:.1f} s, {len(captions)} captions "
          f"({sum(c['stability'] == 'final' for c in captions)} final), stream RTF {result['stream_rtf']:.2f}")
    print(f"{'word':<16} {'end s':>6} {'partial +s':>10} {'final +s':>9}")
    for w in words:
        shown = "-" if w["first_shown_s"] is None else f"{w['first_shown_s'] - w['end_s']:+.2f}"
        final = "-" if w["final_s"] is None else f"{w['final_s'] - w['end_s']:+.2f}"
        print(f"{w['text']:<16} {w['end_s']:>6.2f} {shown:>10} {final:>9}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
