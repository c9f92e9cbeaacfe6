"""`rtaudio demo`: start the server and its page, then caption a recording streamed through it live.

The recording is made once with our own voice (piper-joe) and cached as `<cache>/demo/demo.wav`;
its text is written here. Captions print in the terminal as they arrive; the page at the printed URL
can caption the same recording ("Caption the demo recording") or the microphone, and speak text.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rtaudio.modelstore import cache_root
from rtaudio.server.client_command import CaptionPrinter
from rtaudio.server.commands import add_server_arguments, serve, server_config

HELP = "start the server with its browser page and caption a demo recording streamed through it"

DEMO_TEXT = (
    "Welcome to the real time audio engine. Everything you hear is captioned while it is spoken. "
    "Partial captions appear a fraction of a second after the words, and they settle into final lines "
    "when the speaker pauses. The same server streams synthetic speech back, one small chunk at a time, "
    "so a voice can answer before its sentence is finished. Open the page in your browser to try your "
    "own microphone."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser)
    parser.add_argument("--once", action="store_true", help="exit after the recording has been captioned")
    parser.add_argument("--fast", action="store_true", help="send the recording as fast as the server takes it")


def demo_recording(voice_name: str = "piper-joe") -> Path:
    """The cached demo recording; synthesized with our own voice on first use."""
    path = cache_root() / "demo" / "demo.wav"
    if not path.exists():
        from rtaudio.io.files import write_audio
        from rtaudio.modelstore import ensure_model
        from rtaudio.tts.config import SynthesisConfig
        from rtaudio.tts.voice import PiperVoice

        print("making the demo recording with the piper-joe voice (first run only)...", file=sys.stderr)
        ensure_model(voice_name)
        voice = PiperVoice.load(voice_name)
        audio = voice.synthesize(DEMO_TEXT, SynthesisConfig(seed=0, sentence_pause_ms=450))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.wav")
        write_audio(tmp, audio, voice.sample_rate)
        tmp.replace(path)
    return path


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rtaudio.server.client_command import caption_file

    recording = demo_recording()
    config = replace(server_config(args), demo_audio=str(recording))
    printer = CaptionPrinter(json_lines=False)

    async def show(url: str) -> None:
        token = f"?token={config.token}" if config.token else ""
        print(f"rtaudio demo: page {url}/{token}   (Ctrl-C stops)", flush=True)
        print(f"captioning {recording.name} streamed through {url.replace('http', 'ws', 1)}/v1/stream:", flush=True)
        ws_url = url.replace("http", "ws", 1) + "/v1/stream"
        await caption_file(ws_url, config.token, str(recording), args.fast, printer)
        if printer.live:
            print()
        print(printer.summary(), flush=True)
        if not args.once:
            print("still serving the page; Ctrl-C stops", flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve(config, while_serving=show))
    return 0
