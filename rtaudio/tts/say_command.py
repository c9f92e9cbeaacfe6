"""`rtaudio say`: speak text (argument, or stdin line by line as it arrives) to a file or the speaker."""

from __future__ import annotations

import argparse
import codecs
import io
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from rtaudio.clock import SystemClock
from rtaudio.errors import ConfigError, TextError
from rtaudio.log import get_logger, log_event
from rtaudio.tts.config import SynthesisConfig
from rtaudio.tts.splitter import SentenceSplitter

if TYPE_CHECKING:
    from rtaudio.tts.voice import PiperVoice

HELP = "speak text with the streaming Piper voice, to a WAV file or the speaker"
log = get_logger("tts.say")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", nargs="?", help="text or SSML (<speak>...) to say; if omitted, stdin is read as it "
                   "arrives and each line (or sentence of a long line) is spoken as soon as it is complete")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", help="write audio to this file (.wav, .flac, ...)")
    out.add_argument("--play", action="store_true", help="play on the default speaker as it is synthesized")
    p.add_argument("--voice", default="piper-joe", help="voice model name (default: piper-joe)")
    p.add_argument("--speed", type=float, default=1.0, help="speaking rate factor, e.g. 1.2 (default 1.0)")
    p.add_argument("--volume", type=float, default=1.0, help="linear volume, e.g. 0.5 (default 1.0)")
    p.add_argument("--pause-ms", type=float, default=120.0, help="silence between sentences in ms (default 120)")
    p.add_argument("--rate", type=int, default=None, help="output sample rate in Hz (default: the voice's 22050)")
    p.add_argument("--seed", type=int, default=None, help="seed the voice's noise for repeatable output")


def _stdin_fragments() -> Iterator[str]:
    """Text from stdin as it arrives: whatever a pipe holds (tokens from an LLM), else line by line."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        yield from sys.stdin
        return
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while data := os.read(fd, 4096):
        yield decoder.decode(data)
    yield decoder.decode(b"", final=True)


def _texts(args: argparse.Namespace) -> Iterator[str]:
    """The argument, or stdin cut into pieces to speak: each line, and long lines at sentence ends."""
    if args.text is not None:
        yield args.text
        return
    if sys.stdin.isatty():
        print("reading text from stdin, one line at a time (Ctrl-D to end)", file=sys.stderr)
    splitter = SentenceSplitter()
    for fragment in _stdin_fragments():
        yield from splitter.push(fragment)
    yield from splitter.flush()


def _audio(voice: PiperVoice, texts: Iterable[str], config: SynthesisConfig,
           skip_bad: bool) -> Iterator[np.ndarray]:
    """Chunks of every text in turn; with `skip_bad`, an unspeakable stdin line is logged and skipped."""
    spoken = 0
    for text in texts:
        try:
            yield from voice.stream(text, config)
            spoken += 1
        except TextError as e:
            if not skip_bad:
                raise
            log.warning("skipped a line: %s", e)
    if spoken == 0:
        raise TextError("nothing to say: no text was given")


def run(args: argparse.Namespace) -> int:
    from rtaudio.dsp.resample import Resampler
    from rtaudio.modelstore import ensure_model
    from rtaudio.tts.voice import PiperVoice

    if args.rate is not None and not 8000 <= args.rate <= 192000:
        raise ConfigError(f"--rate must be within 8000..192000 Hz, got {args.rate}")
    config = SynthesisConfig(speed=args.speed, volume=args.volume, sentence_pause_ms=args.pause_ms, seed=args.seed)
    ensure_model(args.voice, show_progress=sys.stderr.isatty())
    voice = PiperVoice.load(args.voice)
    rate = args.rate or voice.sample_rate
    resampler = Resampler(voice.sample_rate, rate) if rate != voice.sample_rate else None
    texts: Iterable[str] = _texts(args)
    clock = SystemClock()
    t0 = clock.now_s()
    first_s: float | None = None
    total = 0
    sink = _FileSink(args.output, rate) if args.output else _SpeakerSink(rate, clock)
    try:
        for chunk in _audio(voice, texts, config, skip_bad=args.text is None):
            if first_s is None:
                first_s = clock.now_s() - t0
            out = resampler.push(chunk) if resampler else chunk
            sink.write(out)
            total += len(chunk)
        if resampler:
            sink.write(resampler.flush())
    finally:
        sink.close()
    elapsed = clock.now_s() - t0
    log_event(log, 20, "said", first_audio_ms=round((first_s or 0) * 1000, 1), audio_s=round(total / voice.sample_rate, 2),
              rtf=round(elapsed / max(total / voice.sample_rate, 1e-9), 3))
    if args.output:
        print(f"wrote {args.output}: {total / voice.sample_rate:.2f} s at {rate} Hz", file=sys.stderr)
    return 0


class _FileSink:
    def __init__(self, path: str, rate: int) -> None:
        from rtaudio.io.files import AudioWriter

        self._writer = AudioWriter(path, rate)

    def write(self, x: np.ndarray) -> None:
        self._writer.write(x)

    def close(self) -> None:
        self._writer.close()


class _SpeakerSink:
    """Feeds the speaker's ring as fast as it accepts, then waits for the queued audio to play out."""

    def __init__(self, rate: int, clock: SystemClock) -> None:
        from rtaudio.io.devices import Speaker

        self._speaker = Speaker(rate)
        self._speaker.start()
        self._rate = rate
        self._clock = clock
        self._queued_s = 0.0
        self._started: float | None = None

    def write(self, x: np.ndarray) -> None:
        if self._started is None:
            self._started = self._clock.now_s()
        self._queued_s += len(x) / self._rate
        while len(x):
            n = self._speaker.write(x)
            x = x[n:]
            if len(x):
                time.sleep(self._speaker.block_ms / 1000.0)

    def close(self) -> None:
        if self._started is not None:
            remaining = self._started + self._queued_s + 0.2 - self._clock.now_s()
            if remaining > 0:
                time.sleep(remaining)
        self._speaker.close()
