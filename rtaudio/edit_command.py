"""`rtaudio edit`: streaming file edits (see rtaudio/edit.py for what each option does)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rtaudio.dsp.dynamics import DuckingConfig
from rtaudio.edit import EditPlan, parse_range_s, run_edit

HELP = "trim, cut, concat, mix with ducking, gain, loudness-normalise, resample and convert audio files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="input files, concatenated in order")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="output file; the extension picks the format (.wav .flac .ogg .mp3 .m4a .webm ...)")
    parser.add_argument("--rate", type=int, default=None, metavar="HZ", help="output sample rate (default: first input's)")
    parser.add_argument("--cut", action="append", default=[], metavar="START-END",
                        help="remove a time range, e.g. 1:02.5-1:10 (repeatable; times on the concatenated input)")
    parser.add_argument("--crossfade-ms", type=float, default=0.0, help="overlap between consecutive inputs")
    parser.add_argument("--trim-silence", action="store_true", help="remove leading and trailing silence")
    parser.add_argument("--silence-threshold-db", type=float, default=-50.0, metavar="DBFS",
                        help="RMS below this is silence when trimming (default -50)")
    parser.add_argument("--keep-silence-ms", type=float, default=100.0, help="silence kept at each end when trimming")
    parser.add_argument("--gain-db", type=float, default=0.0, help="gain applied before mixing")
    parser.add_argument("--mix", type=Path, default=None, metavar="FILE", help="background track mixed underneath")
    parser.add_argument("--mix-gain-db", type=float, default=0.0, help="background level")
    parser.add_argument("--duck-db", type=float, default=-12.0, help="background dip while the main audio is active")
    parser.add_argument("--normalize-lufs", type=float, default=None, metavar="LUFS",
                        help="normalise integrated loudness (EBU R128), e.g. -16 for podcasts, -23 for broadcast")
    parser.add_argument("--subtype", default=None, help="output sample format, e.g. PCM_16, PCM_24, FLOAT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    plan = EditPlan(
        inputs=tuple(args.inputs), output=args.output, rate_hz=args.rate,
        cuts_s=tuple(parse_range_s(c) for c in args.cut), crossfade_ms=args.crossfade_ms,
        trim_silence=args.trim_silence, silence_threshold_dbfs=args.silence_threshold_db,
        keep_silence_ms=args.keep_silence_ms, gain_db=args.gain_db, background=args.mix,
        background_gain_db=args.mix_gain_db, ducking=DuckingConfig(duck_db=args.duck_db),
        normalize_lufs=args.normalize_lufs, subtype=args.subtype,
    )
    report = run_edit(plan, show_progress=not args.no_progress)
    loud = f", input {report.input_lufs:.1f} LUFS, gain {report.applied_gain_db:+.1f} dB" if report.input_lufs else ""
    print(f"wrote {report.output} ({report.duration_s:.2f} s at {report.rate_hz} Hz{loud})")
    return 0
