"""Pack what `bench/gpu_streams.py` needs on a GPU host that has no network and no model cache.

Writes into OUT (default `.gpu/`, git-ignored): the Whisper model as fp16 parts with a sha256 manifest
(checked on arrival), tokenizer and model config, the Silero VAD model, the dev speech as int16 arrays, and
references: transcripts plus word end times from an offline pass of our own recognizer (for latency).

    python tools/gpu_pack.py --model whisper-tiny.en --out .gpu
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from rtaudio.io.files import read_audio
from rtaudio.modelstore import ensure_model
from rtaudio.progress import Progress

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="whisper-tiny.en")
    ap.add_argument("--out", type=Path, default=REPO / ".gpu")
    ap.add_argument("--speech", type=Path, default=Path(os.environ.get("RTAUDIO_SPEECH_DIR", REPO.parent / "shared" / "speech")) / "dev")
    ap.add_argument("--skip-words", action="store_true", help="do not compute offline word times")
    args = ap.parse_args()

    import torch
    from rtaudio_models.whisper.batched import save_compact
    from rtaudio_models.whisper.ct2 import model_bin_parts, read_ct2_model
    from rtaudio_models.whisper.model import whisper_from_ct2

    model_out = args.out / args.model
    folder = ensure_model(args.model)
    torch.set_num_threads(2)
    manifest = save_compact(whisper_from_ct2(read_ct2_model(model_bin_parts(folder / "raw"))), model_out)
    for name in ("tokenizer.json", "whisper.json"):
        shutil.copy(folder / name, model_out / name)
    shutil.copy(ensure_model("silero-vad") / "raw" / "silero_vad.onnx", args.out / "silero_vad.onnx")
    print(f"model: {len(manifest['parts'])} parts, {manifest['size'] / 1e6:.1f} MB", file=sys.stderr)

    with open(args.speech / "manifest.tsv", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    audio = {r[0]: (read_audio(args.speech / r[0], 16000)[0] * 32767).astype(np.int16) for r in rows}
    np.savez(args.out / "speech.npz", **audio)
    refs: dict[str, dict] = {r[0]: {"transcript": r[2]} for r in rows}
    if not args.skip_words:
        from rtaudio.stt.decoding import DecodeOptions
        from rtaudio.stt.recognizer import WhisperRecognizer

        rec = WhisperRecognizer.load(args.model)
        with Progress("offline word times", len(rows)) as bar:
            for r in rows:
                t = rec.transcribe(audio[r[0]].astype(np.float32) / 32767,
                                   DecodeOptions(word_timestamps=True, beam_size=1, best_of=1))
                refs[r[0]]["words"] = [[w.text, round(w.start_s, 3), round(w.end_s, 3)] for w in t.words]
                refs[r[0]]["offline"] = t.text
                bar.update(1)
    (args.out / "refs.json").write_text(json.dumps(refs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
