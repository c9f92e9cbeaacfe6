"""`rtaudio caption`: live captions from the microphone or a file, in the terminal and to caption files.

The partial line is rewritten in place while someone speaks; finals scroll above it. A file plays
at real-time pace (`--realtime`, the default) or in virtual real time (`--fast`: the same captions
and latencies, no waiting). `--json-events` prints one JSON object per caption or event instead.

For a live stream: `--serve` starts the server in-process and captions through it as the publisher of a
caption channel, so OBS shows them with one Browser Source (`/overlay`); `--obs` sends finals to OBS as
native closed captions; `--text-file`, `--srt`, `--vtt` are written while the stream runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from rtaudio.errors import ConfigError, DeviceError
from rtaudio.frames import Caption, Stability
from rtaudio.onnx_session import DEVICES
from rtaudio.server.client import CaptionEvent
from rtaudio.server.client_command import CaptionPrinter
from rtaudio.stt.caption_files import CueFormat, GrowingCueFile, RollingTextFile
from rtaudio.stt.caption_outputs import CaptionOutputs, ObsThread
from rtaudio.stt.latency_budget import BudgetEvent
from rtaudio.stt.pacing import RealTimePacer, TimedOutput, VirtualClock, play
from rtaudio.stt.streaming import SAMPLE_RATE_HZ, StreamEvent, StreamingConfig, StreamingRecognizer
from rtaudio.stt.vad import SpeechEnded, SpeechStarted

HELP = "live captions from the microphone or a file (partials rewritten in place, finals scrolling)"
DEFAULT_SERVE = "127.0.0.1:8765"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", type=Path, help="audio or video file to caption (omit with --mic)")
    p.add_argument("--mic", action="store_true", help="caption the default microphone (Ctrl-C stops)")
    p.add_argument("--device", default=None, help="input device name or index for --mic")
    p.add_argument("--onnx-device", choices=DEVICES, default="auto",
                   help="where Whisper runs: auto = a CUDA GPU if onnxruntime-gpu is installed")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true", help="play a file at real-time pace (default)")
    pace.add_argument("--fast", action="store_true",
                      help="virtual real time: same captions and latencies as --realtime, without waiting")
    p.add_argument("--vtt", type=Path, help="also write WebVTT cues (live-captioning timing rules), growing as "
                                             "the stream goes")
    p.add_argument("--srt", type=Path, help="also write SubRip cues, growing as the stream goes")
    p.add_argument("--text-file", type=Path, help="keep the current caption (last 2 lines) in this file, replaced "
                                                  "atomically (OBS Text source, 'read from file')")
    p.add_argument("--serve", nargs="?", const=DEFAULT_SERVE, metavar="HOST:PORT",
                   help=f"caption through an in-process server and publish to its OBS overlay page "
                        f"(default {DEFAULT_SERVE}; prints the Browser Source URL)")
    p.add_argument("--channel", default="main", help="caption channel published with --serve (default: main)")
    p.add_argument("--token", default=os.environ.get("RTAUDIO_TOKEN"),
                   help="with --serve: require this token from clients ($RTAUDIO_TOKEN)")
    p.add_argument("--obs", metavar="URL", help="send finals to OBS as native closed captions, e.g. ws://127.0.0.1:4455")
    p.add_argument("--obs-password", default=os.environ.get("OBS_WEBSOCKET_PASSWORD"),
                   help="obs-websocket password ($OBS_WEBSOCKET_PASSWORD)")
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
    if args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    view = TerminalView(sys.stdout, live=sys.stdout.isatty()) if not args.json_events else None
    outputs = _outputs(args)
    try:
        if args.serve:
            _caption_through_server(args, view, outputs)
        else:
            _caption_locally(args, view, outputs)
    except BrokenPipeError:  # `rtaudio caption ... | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
    finally:
        if view is not None:
            view.close()
        outputs.close()
    return 0


def _outputs(args: argparse.Namespace) -> CaptionOutputs:
    from rtaudio.obs import ObsConfig

    obs = ObsThread(ObsConfig(args.obs, args.obs_password)) if args.obs else None
    files = [GrowingCueFile(path, fmt) for path, fmt in ((args.vtt, CueFormat.VTT), (args.srt, CueFormat.SRT))
             if path is not None]
    text_file = RollingTextFile(args.text_file) if args.text_file is not None else None
    return CaptionOutputs(files, text_file, obs)


def _show(view: TerminalView | None, item: TimedOutput) -> None:
    if view is not None:
        view.show(item)
        return
    for e in item.events:
        print(json.dumps(event_json(e, item.time_s)))
    for c in item.captions:
        print(json.dumps(caption_json(c, item.time_s)), flush=True)


def _caption_locally(args: argparse.Namespace, view: TerminalView | None, outputs: CaptionOutputs) -> None:
    from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer

    recognizer = WhisperRecognizer.load(args.model, RecognizerConfig(threads=args.threads, spin=False,
                                                                     device=args.onnx_device))
    clock: Any = VirtualClock() if args.fast else RealTimePacer()
    stream = StreamingRecognizer(recognizer, StreamingConfig(partial_interval_ms=args.interval_ms), clock)
    stream.warm_up()
    if args.mic:
        items = _mic_outputs(stream, args.device)
    else:
        from rtaudio.io.files import read_audio

        audio, _ = read_audio(args.file, target_rate_hz=SAMPLE_RATE_HZ)
        items = play(stream, audio, clock)
    try:
        for item in items:
            _show(view, item)
            for c in item.captions:
                outputs.push(c)
    except KeyboardInterrupt:
        stream.input_finished()
        for c in stream.decode():
            outputs.push(c)
            if view is not None:
                view.show(TimedOutput(0.0, 0.0, [c], []))


def _serve_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--serve takes HOST:PORT, got {value!r}")
    return host, int(port)


def overlay_url(server_url: str, channel: str, token: str | None) -> str:
    """The Browser Source URL for OBS."""
    from urllib.parse import urlencode

    query = {k: v for k, v in (("channel", channel if channel != "main" else None), ("token", token)) if v}
    return f"{server_url}/overlay" + (f"?{urlencode(query)}" if query else "")


def _caption_through_server(args: argparse.Namespace, view: TerminalView | None, outputs: CaptionOutputs) -> None:
    """Start the server in-process; stream the source to it as the publisher of `args.channel`."""
    from rtaudio.server.background import BackgroundServer
    from rtaudio.server.client_command import caption_file, caption_mic
    from rtaudio.server.config import ServerConfig, check_channel

    host, port = _serve_address(args.serve)
    channel = check_channel(args.channel)
    config = ServerConfig(host=host, port=port, token=args.token or None, models=(args.model,),
                          recognizer_threads=args.threads, preload_voice=False)
    session = {"model": args.model, "channel": channel, "partial_interval_ms": max(100, args.interval_ms)}
    sink = _ServerCaptions(view, outputs)
    srv = BackgroundServer(config)
    try:
        srv.__enter__()  # loads the model, then listens
    except OSError as e:  # the port is taken, or the address is not this machine's
        srv.stop()
        raise ConfigError(f"cannot serve on {host}:{port}: {e.strerror or e}") from e
    try:
        print(f"OBS Browser Source URL: {overlay_url(srv.url, channel, config.token)}", file=sys.stderr, flush=True)
        ws_url = srv.ws_url + "/v1/stream"
        if args.mic:
            asyncio.run(caption_mic(ws_url, config.token, args.device, sink, session))
        else:
            asyncio.run(caption_file(ws_url, config.token, str(args.file), args.fast, sink, session))
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


class _ServerCaptions(CaptionPrinter):
    """Caption events from the server session -> the terminal view (or JSON lines) and the outputs."""

    def __init__(self, view: TerminalView | None, outputs: CaptionOutputs) -> None:
        super().__init__(json_lines=view is None)
        self.view, self.outputs = view, outputs
        self._t0 = time.monotonic()

    def show(self, event: Any) -> None:
        if isinstance(event, CaptionEvent):
            _show(self.view, TimedOutput(time.monotonic() - self._t0, 0.0, [event.caption], []))
            self.outputs.push(event.caption)
