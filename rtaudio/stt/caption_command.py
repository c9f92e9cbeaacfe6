"""`rtaudio caption`: live captions from the microphone or a file, in the terminal and to caption files.

The partial line is rewritten in place while someone speaks; finals scroll above it. A file plays
at real-time pace (`--realtime`, the default) or in virtual real time (`--fast`: the same captions
and latencies, no waiting). `--json-events` prints one JSON object per caption or event instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rtaudio.errors import ConfigError, DeviceError
from rtaudio.frames import Caption, Stability
from rtaudio.stt.latency_budget import BudgetEvent
from rtaudio.stt.live_captions import LiveCueBuilder
from rtaudio.stt.pacing import RealTimePacer, TimedOutput, VirtualClock, play
from rtaudio.stt.streaming import SAMPLE_RATE_HZ, StreamEvent, StreamingConfig, StreamingRecognizer
from rtaudio.stt.subtitles import Cue, to_srt, to_vtt
from rtaudio.stt.vad import SpeechEnded, SpeechStarted

HELP = "live captions from the microphone or a file (partials rewritten in place, finals scrolling)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", type=Path, help="audio or video file to caption (omit with --mic)")
    p.add_argument("--mic", action="store_true", help="caption the default microphone (Ctrl-C stops)")
    p.add_argument("--device", default=None, help="input device name or index for --mic")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="play a file at real-time pace (default)")
    pace.add_argument("--fast", action="store_true",
                      help="virtual real time: same captions and latencies as --realtime, without waiting")
    p.add_argument("--vtt", type=Path, help="also write WebVTT cues (live-captioning timing rules)")
    p.add_argument("--srt", type=Path, help="also write SubRip cues")
    p.add_argument("--json-events", action="store_true", help="one JSON object per caption/event on stdout")
    p.add_argument("--model", default="whisper-tiny.en", help="speech model (default: whisper-tiny.en)")
    p.add_argument("--interval-ms", type=int, default=StreamingConfig.partial_interval_ms,
                   help="partial caption cadence in ms of new audio (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="compute threads per Whisper pass (default: %(default)s; 1 keeps latency steady on a "
                        "busy machine)")


# ---------------------------------------------------------------------------------- output
def _ts(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m):02d}:{s:04.1f}"


class TerminalView:
    """Finals scroll; the partial line is redrawn in place (only on a terminal)."""

    def __init__(self, out: TextIO, live: bool) -> None:
        self.out = out
        self.live = live
        self._partial = ""

    def show(self, item: TimedOutput) -> None:
        for c in item.captions:
            if c.stability is Stability.FINAL:
                self._clear()
                if c.text:
                    self.out.write(f"[{_ts(c.start_s)} - {_ts(c.end_s)}] {c.text}\n")
            elif c.stability is Stability.PARTIAL and self.live:
                self._clear()
                width = 100
                text = c.text if len(c.text) <= width else "..." + c.text[-(width - 3):]
                self.out.write(f"  {text}")
                self._partial = text
        self.out.flush()

    def _clear(self) -> None:
        if self._partial:
            self.out.write("\r\x1b[K")
            self._partial = ""

    def close(self) -> None:
        self._clear()
        self.out.flush()


def caption_json(c: Caption, time_s: float) -> dict[str, Any]:
    return {"type": "caption", "stability": c.stability.value, "segment_id": c.segment_id, "text": c.text,
            "start_s": round(c.start_s, 3), "end_s": round(c.end_s, 3), "emitted_s": round(time_s, 3),
            "words": [{"text": w.text.strip(), "start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3),
                       "probability": round(w.probability, 3)} for w in c.words]}


def event_json(e: StreamEvent, time_s: float) -> dict[str, Any]:
    if isinstance(e, SpeechStarted):
        return {"type": "speech_started", "start_s": e.start_sample / SAMPLE_RATE_HZ, "emitted_s": round(time_s, 3)}
    if isinstance(e, SpeechEnded):
        return {"type": "speech_ended", "start_s": e.start_sample / SAMPLE_RATE_HZ,
                "end_s": e.end_sample / SAMPLE_RATE_HZ, "emitted_s": round(time_s, 3)}
    assert isinstance(e, BudgetEvent)
    return {"type": "budget", "degraded": e.degraded, "lag_s": e.lag_s, "interval_ms": e.interval_ms,
            "skipped_partials": e.skipped_partials, "emitted_s": round(time_s, 3)}


# ---------------------------------------------------------------------------------- microphone
class _MicRing:
    """The sound-card callback copies into a preallocated ring and counts overruns; nothing else."""

    def __init__(self, seconds: float = 30.0) -> None:
        self.buf = np.zeros(int(seconds * SAMPLE_RATE_HZ), np.float32)
        self.written = 0
        self.read = 0
        self.overruns = 0
        self.status_flags = 0
        self.ready = threading.Event()

    def callback(self, indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        if status:
            self.status_flags += 1
        n, cap = frames, len(self.buf)
        if self.written + n - self.read > cap:
            self.overruns += 1
            return
        i = self.written % cap
        first = min(n, cap - i)
        self.buf[i: i + first] = indata[:first, 0]
        self.buf[: n - first] = indata[first:n, 0]
        self.written += n
        self.ready.set()

    def take(self) -> np.ndarray:
        w, cap = self.written, len(self.buf)
        idx = np.arange(self.read, w) % cap
        self.read = w
        return self.buf[idx]


def _mic_outputs(stream: StreamingRecognizer, device: str | None) -> Iterator[TimedOutput]:
    try:
        import sounddevice as sd
    except OSError as e:  # PortAudio missing
        raise DeviceError(f"no audio input available (PortAudio: {e})") from e
    ring = _MicRing()
    pacer = RealTimePacer()
    t0 = pacer.now_ns()
    dev: Any = int(device) if device and device.isdigit() else device
    try:
        mic = sd.InputStream(samplerate=SAMPLE_RATE_HZ, channels=1, dtype="float32", blocksize=512,
                             device=dev, callback=ring.callback)
    except Exception as e:  # sounddevice raises PortAudioError / ValueError for bad devices
        raise DeviceError(f"cannot open the microphone: {e}") from e
    with mic:
        while True:
            ring.ready.wait(0.1)
            ring.ready.clear()
            stream.accept_waveform(ring.take())
            while stream.is_ready():
                captions, events = stream.decode(), stream.events()
                if captions or events:
                    yield TimedOutput((pacer.now_ns() - t0) / 1e9, ring.written / SAMPLE_RATE_HZ, captions, events)


# ---------------------------------------------------------------------------------- command
def run(args: argparse.Namespace) -> int:
    if args.mic == (args.file is not None):
        raise ConfigError("give either a FILE or --mic")
    if args.mic and (args.fast or args.realtime):
        raise ConfigError("--fast and --realtime apply to files; the microphone is always live")
    if args.interval_ms < 20:
        raise ConfigError("--interval-ms must be at least 20")
    from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer

    if args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    recognizer = WhisperRecognizer.load(args.model, RecognizerConfig(threads=args.threads, spin=False))
    clock: Any = VirtualClock() if args.fast else RealTimePacer()
    stream = StreamingRecognizer(recognizer, StreamingConfig(partial_interval_ms=args.interval_ms), clock)
    stream.warm_up()
    if args.mic:
        outputs = _mic_outputs(stream, args.device)
    else:
        from rtaudio.io.files import read_audio

        audio, _ = read_audio(args.file, target_rate_hz=SAMPLE_RATE_HZ)
        outputs = play(stream, audio, clock)

    view = TerminalView(sys.stdout, live=sys.stdout.isatty()) if not args.json_events else None
    cues = LiveCueBuilder()
    written: list[Cue] = []
    try:
        for item in outputs:
            if view is not None:
                view.show(item)
            else:
                for e in item.events:
                    print(json.dumps(event_json(e, item.time_s)))
                for c in item.captions:
                    print(json.dumps(caption_json(c, item.time_s)), flush=True)
            for c in item.captions:
                written += cues.push(c)
    except BrokenPipeError:  # `rtaudio caption ... | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
        return 0
    except KeyboardInterrupt:
        stream.input_finished()
        for c in stream.decode():
            written += cues.push(c)
            if view is not None:
                view.show(TimedOutput(0.0, 0.0, [c], []))
    finally:
        if view is not None:
            view.close()
    written += cues.flush()
    _write_cues(written, args.vtt, args.srt)
    return 0


def _write_cues(cues: list[Cue], vtt: Path | None, srt: Path | None) -> None:
    if vtt is not None:
        vtt.write_text(to_vtt(cues), encoding="utf-8")
    if srt is not None:
        srt.write_text(to_srt(cues), encoding="utf-8")
