"""`rtaudio transcribe FILE...`: offline transcription to text, JSON, SRT or WebVTT."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rtaudio.errors import ConfigError
from rtaudio.onnx_session import DEVICES
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.onnx_whisper import PRECISIONS
from rtaudio.stt.results import Transcript
from rtaudio.stt.subtitles import build_cues, to_srt, to_vtt

HELP = "transcribe audio or video files with Whisper (text, json, srt, vtt)"
FORMATS = ("txt", "json", "srt", "vtt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="audio or video files")
    parser.add_argument("--model", default="whisper-tiny.en", help="tiny.en (default) or base (multilingual)")
    parser.add_argument("--format", "-f", choices=FORMATS, default="txt", help="output format (default txt)")
    parser.add_argument("-o", "--output", type=Path,
                        help="output file (one input) or folder (several inputs); default stdout")
    parser.add_argument("--language", help="spoken language code, e.g. en, de (base: detected if omitted)")
    parser.add_argument("--task", choices=("transcribe", "translate"), default="transcribe",
                        help="translate = into English (multilingual models)")
    parser.add_argument("--beam-size", type=int, default=5, help="1 = greedy (faster)")
    parser.add_argument("--prompt", help="initial prompt: names, spelling, style")
    parser.add_argument("--hotwords", help="words to favour")
    parser.add_argument("--word-timestamps", action="store_true", help="per-word times in json (on for srt/vtt)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: int8 on the CPU, fp32 on a GPU")
    parser.add_argument("--onnx-device", choices=DEVICES, default="auto",
                        help="where Whisper runs: auto = a CUDA GPU if onnxruntime-gpu is installed")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def render(transcript: Transcript, fmt: str, source: str) -> str:
    if fmt == "txt":
        return transcript.text + "\n"
    if fmt == "json":
        return json.dumps({
            "file": source, "language": transcript.language, "duration_s": round(transcript.duration_s, 3),
            "text": transcript.text,
            "segments": [{
                "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3), "text": s.text.strip(),
                "avg_logprob": round(s.avg_logprob, 4), "no_speech_prob": round(s.no_speech_prob, 4),
                "words": [{"text": w.text.strip(), "start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3),
                           "probability": round(w.probability, 3)} for w in s.words],
            } for s in transcript.segments],
        }, ensure_ascii=False, indent=1) + "\n"
    cues = build_cues(transcript.segments)
    return to_srt(cues) if fmt == "srt" else to_vtt(cues)


def run(args: argparse.Namespace) -> int:
    from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer
    from rtaudio.stt.transcribe import transcribe_file

    if len(args.files) > 1 and args.output is not None and args.output.exists() and not args.output.is_dir():
        raise ConfigError("with several input files, -o must be a folder")
    options = DecodeOptions(task=args.task, language=args.language, beam_size=args.beam_size,
                            hotwords=args.hotwords,
                            word_timestamps=args.word_timestamps or args.format in ("srt", "vtt"))
    recognizer = WhisperRecognizer.load(args.model, RecognizerConfig(precision=args.precision, threads=args.threads,
                                                                         device=args.onnx_device))
    # check options against the model before reading any file (e.g. --task translate on tiny.en)
    recognizer.tokenizer.sot_sequence(args.language if recognizer.multilingual else args.language or "en", args.task)
    show = not args.no_progress and sys.stderr.isatty()
    for path in args.files:
        transcript = transcribe_file(recognizer, path, options, args.prompt, show_progress=show)
        text = render(transcript, args.format, str(path))
        if args.output is None or str(args.output) == "-":
            sys.stdout.write(text)
        else:
            out = args.output
            if len(args.files) > 1 or out.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                out = out / f"{path.stem}.{args.format}"
            out.write_text(text, encoding="utf-8")
    return 0
