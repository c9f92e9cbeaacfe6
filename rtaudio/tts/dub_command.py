"""`rtaudio dub`: turn subtitles into a voice track, optionally mixed over ducked background audio."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rtaudio.errors import AudioError, ConfigError

HELP = "speak an SRT/VTT subtitle file at its cue times into an audio track (optionally over music)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("subtitles", type=Path, help="subtitle file (.srt or .vtt)")
    p.add_argument("-o", "--output", required=True, help="audio file to write (.wav, .flac, ...)")
    p.add_argument("--background", type=Path, help="audio to mix under the speech, ducked while it talks")
    p.add_argument("--voice", default="piper-joe", help="voice model name (default: piper-joe)")
    p.add_argument("--speed", type=float, default=1.0, help="speaking rate factor before any squeezing")
    p.add_argument("--rate", type=int, default=None,
                   help="output sample rate in Hz (default: the background's, else the voice's)")
    p.add_argument("--duck-db", type=float, default=-12.0, help="background gain while speaking (default -12 dB)")
    p.add_argument("--max-speedup", type=float, default=1.6, help="strongest squeeze of a long cue (default 1.6)")
    p.add_argument("--seed", type=int, default=0, help="seed the voice's noise (default 0: repeatable)")


def run(args: argparse.Namespace) -> int:
    from rtaudio.dsp.dynamics import DuckingConfig, soft_limit
    from rtaudio.dsp.resample import resample
    from rtaudio.io.files import read_audio, write_audio
    from rtaudio.modelstore import ensure_model
    from rtaudio.tts.config import SynthesisConfig
    from rtaudio.tts.dub import Dubber, DubConfig, mix_under, read_subtitles
    from rtaudio.tts.voice import PiperVoice

    try:
        text = args.subtitles.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read subtitles {args.subtitles}: {e}") from e
    if args.rate is not None and not 8000 <= args.rate <= 192000:
        raise ConfigError(f"--rate must be within 8000..192000 Hz, got {args.rate}")
    cues = read_subtitles(text)
    config = DubConfig(max_speedup=args.max_speedup, ducking=DuckingConfig(duck_db=args.duck_db))
    ensure_model(args.voice, show_progress=sys.stderr.isatty())
    voice = PiperVoice.load(args.voice)
    speech, report = Dubber(voice, config, SynthesisConfig(speed=args.speed, seed=args.seed)).render(cues)
    if args.background is not None:
        background, rate = read_audio(args.background)
        if background.size == 0:
            raise AudioError(f"{args.background} holds no audio")
        out = mix_under(speech, voice.sample_rate, background, rate, config.ducking)
    else:
        out, rate = soft_limit(speech), voice.sample_rate
    if args.rate and args.rate != rate:
        out, rate = resample(out, rate, args.rate), args.rate
    write_audio(args.output, out, rate)
    squeezed = [c for c in report if c.speedup > 1.0]
    late = [c for c in report if c.overrun_s > 0.05]
    print(f"wrote {args.output}: {len(out) / rate:.2f} s at {rate} Hz, {len(report)} cues, "
          f"{len(squeezed)} squeezed, {len(late)} over their end", file=sys.stderr)
    for c in late:
        print(f"  cue at {c.cue_start_s:.2f}s ran {c.overrun_s:.2f}s over (squeezed x{c.speedup:.2f}): {c.text[:50]!r}",
              file=sys.stderr)
    return 0
