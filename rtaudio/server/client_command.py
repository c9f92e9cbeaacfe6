"""`rtaudio client`: talk to a running server.

    rtaudio client FILE [--fast]          stream a recording at real-time pace, print live captions
    rtaudio client --mic                  caption the microphone until Ctrl-C
    rtaudio client say "Hello." -o x.wav  synthesize speech on the server, save it
    rtaudio client assistant FILE -o reply.wav   talk to the voice assistant with a recording, save its replies
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import numpy as np

from rtaudio.errors import ConfigError
from rtaudio.server.client import CaptionEvent, ServerEvent, StreamClient

HELP = "stream a FILE or --mic to a server for live captions, or `say TEXT -o out.wav`"
DEFAULT_URL = "ws://127.0.0.1:8765/v1/stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("args", nargs="*", metavar="FILE | say TEXT | assistant FILE",
                        help="an audio file to caption, `say` followed by the text to speak, or `assistant` and a "
                             "recording to talk to the voice assistant with")
    parser.add_argument("--mic", action="store_true", help="caption the default microphone")
    parser.add_argument("--device", help="input device (name or index) for --mic")
    parser.add_argument("-o", "--output", help="where `say` or `assistant` writes its audio (wav)")
    parser.add_argument("--url", default=os.environ.get("RTAUDIO_URL", DEFAULT_URL),
                        help=f"server websocket URL (default {DEFAULT_URL}, or $RTAUDIO_URL)")
    parser.add_argument("--token", default=os.environ.get("RTAUDIO_TOKEN"), help="auth token ($RTAUDIO_TOKEN)")
    parser.add_argument("--fast", action="store_true", help="send the file as fast as the server takes it")
    parser.add_argument("--json", action="store_true", help="print every server event as a JSON line")


class CaptionPrinter:
    """Partials overwrite one terminal line; finals are printed for good."""

    def __init__(self, json_lines: bool) -> None:
        self.json_lines = json_lines
        self.live = sys.stdout.isatty() and not json_lines
        self.partial_latencies: list[float] = []

    def show(self, event: Any) -> None:
        if self.json_lines and isinstance(event, ServerEvent):
            import json

            print(json.dumps(event.data), flush=True)
        if not isinstance(event, CaptionEvent):
            return
        c = event.caption
        if not c.is_final and event.latency_ms is not None:
            self.partial_latencies.append(event.latency_ms)
        if self.json_lines:
            return
        stamp = f"[{c.start_s:7.2f}-{c.end_s:7.2f}]"
        if c.is_final:
            if c.text:
                print(("\r\x1b[2K" if self.live else "") + f"{stamp} {c.text}", flush=True)
        elif self.live:
            print(f"\r\x1b[2K{stamp} {c.text[-100:]} …", end="", flush=True)

    def summary(self) -> str:
        if not self.partial_latencies:
            return "no partial captions"
        p50, p95 = np.percentile(self.partial_latencies, [50, 95])
        return f"partial caption latency p50 {p50:.0f} ms, p95 {p95:.0f} ms ({len(self.partial_latencies)} partials)"


async def caption_file(url: str, token: str | None, path: str, fast: bool, printer: CaptionPrinter,
                       config: dict[str, Any] | None = None) -> None:
    """Stream a recording; `config`: more session settings (e.g. a broadcast `channel`)."""
    from rtaudio.io.files import read_audio

    audio, rate = read_audio(path)
    async with await StreamClient.connect(url, {**(config or {}), "audio": {"sample_rate_hz": rate}},
                                          token=token) as client:
        sender = asyncio.create_task(_send_then_end(client, audio, fast))
        async for event in client:
            printer.show(event)
            if isinstance(event, ServerEvent) and event.type == "audio.ended":
                break
            if isinstance(event, ServerEvent) and event.type == "error":
                print(f"server: {event.data['code']}: {event.data['message']}", file=sys.stderr)
        await sender


async def _send_then_end(client: StreamClient, audio: np.ndarray, fast: bool) -> None:
    await client.stream_audio(audio, chunk_ms=20 if not fast else 500, realtime=not fast)
    await client.end_audio()


async def caption_mic(url: str, token: str | None, device: str | None, printer: CaptionPrinter,
                      config: dict[str, Any] | None = None) -> None:
    """The sound-card callback only copies into a preallocated ring; a task sends what it holds every 20 ms."""
    from rtaudio.errors import DeviceError
    from rtaudio.ring import RingBuffer

    try:
        import sounddevice as sd
    except OSError as e:  # PortAudio missing
        raise DeviceError(f"no audio input available (PortAudio: {e})") from e
    rate = 16000
    ring = RingBuffer(rate * 10)

    def callback(indata: np.ndarray, frames: int, _time: Any, _status: Any) -> None:
        ring.write(indata[:, 0])

    dev: Any = int(device) if device and device.isdigit() else device
    try:
        mic = sd.InputStream(samplerate=rate, channels=1, dtype="float32", blocksize=320, device=dev,
                             callback=callback)
    except Exception as e:  # sounddevice raises PortAudioError / ValueError for bad devices
        raise DeviceError(f"cannot open the microphone: {e}") from e
    async with await StreamClient.connect(url, {**(config or {}), "audio": {"sample_rate_hz": rate}},
                                          token=token) as client:

        async def pump() -> None:
            while True:
                await asyncio.sleep(0.02)
                block, _ = ring.read(ring.available())
                if len(block):
                    await client.send_audio(block)

        sender = asyncio.create_task(pump())
        with mic:
            try:
                async for event in client:
                    printer.show(event)
            finally:
                sender.cancel()
                if ring.overruns:
                    print(f"microphone overruns: {ring.overrun_samples} samples lost", file=sys.stderr)


async def say(url: str, token: str | None, text: str, output: str) -> str:
    from rtaudio.io.files import write_audio

    async with await StreamClient.connect(url, {}, token=token) as client:
        samples, rate, arrivals = await client.say(text)
    write_audio(output, samples, rate)
    first = arrivals[0] * 1000 if arrivals else float("nan")
    return (f"wrote {output}: {len(samples) / max(rate, 1):.2f} s at {rate} Hz in {len(arrivals)} chunks, "
            f"first chunk after {first:.0f} ms")


async def assistant(url: str, token: str | None, path: str, output: str | None, fast: bool) -> str:
    """Talk to `/v1/assistant` with a recording (real-time pace, 4x with --fast); print the conversation."""
    from rtaudio.io.files import read_audio, write_audio
    from rtaudio.server.assistant_client import AssistantClient

    if url.rstrip("/").endswith("/v1/stream"):
        url = url.rstrip("/")[: -len("/v1/stream")] + "/v1/assistant"
    audio, rate = read_audio(path)
    async with await AssistantClient.connect(url, {"audio": {"sample_rate_hz": rate}}, token=token) as client:
        result = await client.converse(audio, speed=4.0 if fast else 1.0)
    for event in result.events:
        d = event.data
        if event.type == "assistant.turn":
            print(f"you:       {d['text']}")
        elif event.type == "assistant.reply":
            print(f"assistant: {d['text']}")
        elif event.type == "assistant.barge_in":
            print(f"(interrupted after: {d['heard_text']!r})")
        elif event.type == "assistant.timings" and d["first_audio_ms"] is not None:
            print(f"           end of turn {d['end_of_turn_ms']:.0f} ms, first token {d['first_token_ms']:.0f} ms, "
                  f"first audio {d['first_audio_ms']:.0f} ms after your speech ended")
        elif event.type == "error":
            print(f"server: {d['code']}: {d['message']}", file=sys.stderr)
    if output:
        write_audio(output, result.reply_audio, client.output_rate_hz)
        return f"wrote {output}: {len(result.reply_audio) / client.output_rate_hz:.2f} s of replies"
    return f"{len(result.turns)} turn(s)"


def run(args: argparse.Namespace) -> int:
    printer = CaptionPrinter(args.json)
    if args.args and args.args[0] == "assistant":
        if len(args.args) != 2:
            raise ConfigError("usage: rtaudio client assistant FILE [-o replies.wav] [--fast]")
        print(asyncio.run(assistant(args.url, args.token, args.args[1], args.output, args.fast)), file=sys.stderr)
        return 0
    if args.args and args.args[0] == "say":
        text = " ".join(args.args[1:])
        if not text.strip() or not args.output:
            raise ConfigError('usage: rtaudio client say "TEXT" -o out.wav')
        print(asyncio.run(say(args.url, args.token, text, args.output)), file=sys.stderr)
        return 0
    if args.mic == bool(args.args):
        raise ConfigError("give either a FILE, --mic, or `say TEXT -o out.wav`")
    try:
        if args.mic:
            asyncio.run(caption_mic(args.url, args.token, args.device, printer))
        else:
            if len(args.args) != 1:
                raise ConfigError("give one FILE")
            asyncio.run(caption_file(args.url, args.token, args.args[0], args.fast, printer))
    except KeyboardInterrupt:
        pass
    if printer.live:
        print()
    print(printer.summary(), file=sys.stderr)
    return 0
