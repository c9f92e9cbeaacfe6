"""`rtaudio assistant`: talk to the engine through the local microphone and speaker."""

from __future__ import annotations

import argparse
import time

from rtaudio.clock import SystemClock

HELP = "voice assistant on the local microphone and speaker (offline echo responder or an OpenAI-compatible LLM)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--responder", choices=["echo", "openai"], default="echo",
                   help="echo: offline rules (default); openai: any OpenAI-compatible chat server")
    p.add_argument("--base-url", default="http://127.0.0.1:8080/v1", help="chat server (llama.cpp, Ollama, vLLM)")
    p.add_argument("--llm-model", default="local")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY")
    p.add_argument("--model", default="whisper-tiny.en", help="speech recognition model")
    p.add_argument("--voice", default="piper-joe")
    p.add_argument("--input-device", default=None)
    p.add_argument("--output-device", default=None)


def run(args: argparse.Namespace) -> int:
    from rtaudio.assistant.loop import LISTENING, BargeIn, LoopEvent, Partial, TurnEnded, VoiceLoop
    from rtaudio.assistant.responders import EchoResponder, OpenAIChatConfig, OpenAIChatResponder, Responder
    from rtaudio.assistant.runner import AssistantRunner
    from rtaudio.io.devices import Microphone, Speaker
    from rtaudio.stt.recognizer import WhisperRecognizer
    from rtaudio.stt.streaming import StreamingRecognizer
    from rtaudio.tts.voice import PiperVoice

    responder: Responder = EchoResponder() if args.responder == "echo" else OpenAIChatResponder(
        OpenAIChatConfig(base_url=args.base_url, model=args.llm_model, api_key_env=args.api_key_env))
    stream = StreamingRecognizer(WhisperRecognizer.load(args.model), LISTENING)
    loop = VoiceLoop(stream, clock=SystemClock())
    runner = AssistantRunner(loop, responder, PiperVoice.load(args.voice))
    def show(events: list[LoopEvent]) -> None:  # on the listener thread
        for ev in events:
            if isinstance(ev, Partial):
                print(f"\r\033[K> {ev.text}", end="", flush=True)
            elif isinstance(ev, TurnEnded):
                print(f"\r\033[Kyou: {ev.text}")
            elif isinstance(ev, BargeIn):
                print("\n(interrupted)")

    # The sound-card loop only moves audio; the recognizer runs on the runner's listener thread.
    runner.start_listening(show)
    try:
        with Microphone(16000, args.input_device) as mic, Speaker(16000, args.output_device) as speaker:
            print("listening (Ctrl-C to stop)")
            while runner.listening:
                block = mic.read()
                if block is None or not len(block.samples):
                    time.sleep(0.005)  # the callback fills the ring every 20 ms
                    continue
                speaker.write(runner.pull_speaker(len(block.samples)))
                runner.feed_mic(block.samples)
    finally:
        runner.stop()
    print(f"stopped: {runner.errors[-1] if runner.errors else 'listening ended'}")
    return 1
