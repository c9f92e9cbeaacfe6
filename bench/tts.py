"""Streaming TTS against piper-tts (same voice, same machine, same run): first audio, speed, intelligibility.

    .venv/bin/python bench/tts.py                 # latency + WER over tests/data/tts_sentences.txt
    .venv/bin/python bench/tts.py --skip-wer      # latency only (~1 min)

Latency: time to first audio (TTFA: text in -> first samples out) and real-time factor (compute
time / audio duration) for short, medium (20 words) and long sentences; median and p90 over
--repeats runs, ours and piper-tts interleaved so both see the same machine load. piper-tts
(GPL, installed in .venv only as a peer for this benchmark) synthesizes a whole sentence before
returning it; rtaudio streams chunks of the vocoder ("stall": the worst wait, over the runs, that a
player starting at the first chunk would have had for a later chunk).

Intelligibility: round-trip WER - each sentence synthesized by both, resampled to 16 kHz and
transcribed by whisper-tiny.en (faster-whisper on the cached weights; --stt rtaudio for our
WhisperRecognizer), scored against the written sentence with both sides put in one spoken form
(rtaudio's TTS normalizer, then rtaudio.stt.textnorm.normalize_english), so "$5.50" heard as
"five dollars and fifty cents" counts as right. Writes bench/results/tts.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rtaudio.dsp.resample import resample
from rtaudio.modelstore import model_dir
from rtaudio.tts.config import SynthesisConfig
from rtaudio.tts.voice import PiperVoice

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "tts.json"
SENTENCES = ROOT / "tests" / "data" / "tts_sentences.txt"
CASES = {
    "short": "Please call me back.",
    "medium": "The quick brown fox jumps over the lazy dog while the children play happily in the old park "
              "near the river.",
    "long": "Although the weather had been unpredictable for most of the week, the organizers decided to hold "
            "the outdoor concert anyway, and by the time the first band walked on stage the clouds had cleared, "
            "the sun was setting behind the hills, and thousands of people were singing along.",
}


def _ours(voice: PiperVoice, text: str) -> tuple[float, float, float, float]:
    """(TTFA s, total s, audio s, playback stall s) for one streamed synthesis; the stall is how long a
    player that starts with the first chunk would wait for later ones."""
    t0 = time.perf_counter()
    first = None
    n = 0
    play_until = stall = 0.0
    for chunk in voice.stream(text, SynthesisConfig(seed=0)):
        now = time.perf_counter() - t0
        if first is None:
            first = play_until = now
        stall += max(0.0, now - play_until)
        play_until = max(play_until, now) + len(chunk) / voice.sample_rate
        n += len(chunk)
    return first or 0.0, time.perf_counter() - t0, n / voice.sample_rate, stall


def _theirs(voice: Any, text: str) -> tuple[float, float, float, float]:
    t0 = time.perf_counter()
    first = None
    n = 0
    for chunk in voice.synthesize(text):
        if first is None:
            first = time.perf_counter() - t0
        n += len(chunk.audio_float_array)
    return first or 0.0, time.perf_counter() - t0, n / voice.config.sample_rate, 0.0


def _stats(runs: list[tuple[float, float, float, float]]) -> dict[str, Any]:
    ttfa = sorted(r[0] * 1000 for r in runs)
    rtf = sorted(r[1] / r[2] for r in runs)
    return {"ttfa_ms_min": round(ttfa[0], 1), "ttfa_ms_p50": round(statistics.median(ttfa), 1),
            "ttfa_ms_p90": round(ttfa[int(0.9 * (len(ttfa) - 1))], 1),
            "rtf_p50": round(statistics.median(rtf), 3), "audio_s": round(runs[0][2], 2),
            "stall_ms_max": round(max(r[3] for r in runs) * 1000, 1), "ttfa_ms": [round(x, 1) for x in ttfa]}


def latency(ours: PiperVoice, theirs: Any, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for case, text in CASES.items():
        _ours(ours, text), _theirs(theirs, text)  # warm both on this length
        runs_o, runs_t = [], []
        for _ in range(repeats):
            runs_o.append(_ours(ours, text))
            time.sleep(0.05)  # let onnxruntime's spinning workers of the other engine go idle
            runs_t.append(_theirs(theirs, text))
            time.sleep(0.05)
        o, t = _stats(runs_o), _stats(runs_t)
        rows.append({"case": case, "words": len(text.split()), "rtaudio": o, "piper_tts": t,
                     "ttfa_speedup": round(t["ttfa_ms_p50"] / o["ttfa_ms_p50"], 2)})
    return rows


def canonical(text: str) -> str:
    """Both sides of the WER in one spoken form: "$5.50", "5 dollars 50" and "five dollars and fifty cents"
    all become the same words, so a system is scored on what a listener heard, not on notation."""
    from rtaudio.errors import TextError
    from rtaudio.stt.textnorm import normalize_english
    from rtaudio.tts.normalize import normalize_text

    try:
        text = normalize_text(text)
    except TextError:
        pass
    return normalize_english(text)


def _wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    pairs = [(canonical(r), canonical(h) or "<empty>") for r, h in zip(refs, hyps, strict=True)]
    return float(jiwer.wer([r for r, _ in pairs if r], [h for r, h in pairs if r]))


def _faster_whisper() -> Callable[[np.ndarray], str]:
    """faster-whisper on the same cached whisper-tiny.en CTranslate2 weights (vocabulary file added)."""
    from faster_whisper import WhisperModel

    raw = model_dir("whisper-tiny.en") / "raw"
    tok = json.loads((raw / "tokenizer.json").read_text(encoding="utf-8"))
    ids = dict(tok["model"]["vocab"]) | {a["content"]: a["id"] for a in tok.get("added_tokens", [])}
    vocab = [""] * (max(ids.values()) + 1)
    for token, i in ids.items():
        vocab[i] = token
    vocab += [f"<|{0.02 * i:.2f}|>" for i in range(51864 - len(vocab))]  # tiny.en has 51864 outputs
    folder = Path(tempfile.mkdtemp(prefix="fw-tiny-en-"))
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (folder / name).symlink_to(raw / name)
    (folder / "vocabulary.json").write_text(json.dumps(vocab), encoding="utf-8")
    model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=2)
    return lambda audio: " ".join(seg.text.strip() for seg in model.transcribe(audio, language="en", beam_size=5)[0])


def _rtaudio_stt() -> Callable[[np.ndarray], str]:
    from rtaudio.stt.decoding import DecodeOptions
    from rtaudio.stt.recognizer import WhisperRecognizer

    rec = WhisperRecognizer.load("whisper-tiny.en")
    options = DecodeOptions(language="en")
    return lambda audio: rec.transcribe_window(audio, options=options).text.strip()


def intelligibility(ours: PiperVoice, theirs: Any, limit: int | None, stt: str) -> dict[str, Any]:
    transcribe = _faster_whisper() if stt == "faster-whisper" else _rtaudio_stt()
    lines = [x.strip() for x in SENTENCES.read_text(encoding="utf-8").splitlines() if x.strip() and not x.startswith("#")]
    lines = lines[:limit] if limit else lines
    heard: dict[str, list[str]] = {"rtaudio": [], "piper_tts": []}
    for i, text in enumerate(lines):
        a = ours.synthesize(text, SynthesisConfig(seed=i))
        b = np.concatenate([c.audio_float_array for c in theirs.synthesize(text)])
        for name, audio in (("rtaudio", a), ("piper_tts", b)):
            heard[name].append(transcribe(resample(audio, 22050, 16000)))
    from rtaudio.tts.normalize import normalize_text

    written = [normalize_text(t) != t for t in lines]  # needs normalizing: numbers, symbols, abbreviations
    result: dict[str, Any] = {"sentences": len(lines), "n_written_forms": sum(written),
                              "stt": f"{stt} whisper-tiny.en (beam 5)"}
    for name, hyps in heard.items():
        subset = {flag: ([t for t, w in zip(lines, written, strict=True) if w == flag],
                         [h for h, w in zip(hyps, written, strict=True) if w == flag]) for flag in (True, False)}
        result[name] = {"wer": round(_wer(lines, hyps), 4), "wer_written_forms": round(_wer(*subset[True]), 4),
                        "wer_plain": round(_wer(*subset[False]), 4)}
    result["per_sentence"] = [{"text": t, "rtaudio": a, "piper_tts": b}
                              for t, a, b in zip(lines, heard["rtaudio"], heard["piper_tts"], strict=True)]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--skip-wer", action="store_true")
    ap.add_argument("--keep-wer", action="store_true", help="with --skip-wer: keep the WER already in --json")
    ap.add_argument("--wer-limit", type=int, default=None, help="only the first N sentences")
    ap.add_argument("--stt", choices=("faster-whisper", "rtaudio"), default="faster-whisper",
                    help="recognizer for the round trip (rtaudio's WhisperRecognizer still loops on some clips)")
    ap.add_argument("--json", type=Path, default=RESULTS)
    args = ap.parse_args()
    try:
        import piper
    except ImportError as e:
        raise SystemExit("the peer needs piper-tts: .venv/bin/pip install piper-tts (GPL; benchmark only)") from e

    load_before = os.getloadavg()
    ours = PiperVoice.load("piper-joe")
    theirs = piper.PiperVoice.load(str(next((model_dir("piper-joe") / "raw").glob("*.onnx"))))
    rows = latency(ours, theirs, args.repeats)
    print(f"\nTime to first audio and real-time factor ({os.cpu_count()} cores, load {load_before[0]:.1f}); "
          f"median of {args.repeats}, min and p90 in brackets:")
    print(f"{'case':<8} {'words':>5} {'audio s':>7} | {'rtaudio TTFA ms':>24} {'RTF':>6} {'stall ms':>8} | "
          f"{'piper-tts TTFA ms':>26} {'RTF':>6} | {'TTFA x':>6}")
    for r in rows:
        o, t = r["rtaudio"], r["piper_tts"]
        print(f"{r['case']:<8} {r['words']:>5} {o['audio_s']:>7.2f} | {o['ttfa_ms_p50']:>8.1f} "
              f"[{o['ttfa_ms_min']:>6.1f} {o['ttfa_ms_p90']:>6.1f}] {o['rtf_p50']:>6.3f} {o['stall_ms_max']:>8.1f} | "
              f"{t['ttfa_ms_p50']:>9.1f} [{t['ttfa_ms_min']:>6.1f} {t['ttfa_ms_p90']:>7.1f}] {t['rtf_p50']:>6.3f} | "
              f"{r['ttfa_speedup']:>6.1f}")
    wer = None
    if args.keep_wer and args.json.exists():
        wer = json.loads(args.json.read_text(encoding="utf-8")).get("intelligibility")
    if not args.skip_wer:
        wer = intelligibility(ours, theirs, args.wer_limit, args.stt)
        print(f"\nRound-trip WER over {wer['sentences']} sentences ({wer['n_written_forms']} with numbers, symbols or "
              f"abbreviations), STT: {wer['stt']}:")
        print(f"{'system':<10} {'all':>7} {'written forms':>14} {'plain':>7}")
        for name in ("rtaudio", "piper_tts"):
            w = wer[name]
            print(f"{name:<10} {w['wer']:>7.3f} {w['wer_written_forms']:>14.3f} {w['wer_plain']:>7.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "peer": f"piper-tts {importlib.metadata.version('piper-tts')}", "voice": "piper-joe (en_US-joe-medium)",
        "schedule": vars(ours.vocoder.schedule), "latency": rows, "intelligibility": wer}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
