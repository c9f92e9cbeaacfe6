"""Voice-to-voice latency of the assistant loop: a simulated user speaks real recordings at real-time pace.

Each trial plays one recording from ../shared/speech/dev into the loop as the microphone, 20 ms at a time,
paced by the wall clock, while the speaker side is pulled at the same pace (as a sound card would). The
offline echo responder answers. Measured per turn: end of the user's speech (last voiced 20 ms block of
the recording) -> end-of-turn decision -> first responder token -> first reply sample out of the speaker.
The sum of stage medians is what users compare across assistants.

    python -m bench.voice_loop --trials 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from rtaudio.assistant.loop import LISTENING, LoopEvent, Partial, TurnEnded, VoiceLoop
from rtaudio.assistant.responders import EchoResponder
from rtaudio.assistant.runner import AssistantRunner
from rtaudio.assistant.turns import TurnConfig
from rtaudio.stt.recognizer import WhisperRecognizer
from rtaudio.stt.streaming import StreamingRecognizer
from rtaudio.tts.voice import PiperVoice

REPO = Path(__file__).resolve().parents[1]
SPEECH = Path(os.environ.get("RTAUDIO_SPEECH_DIR", REPO.parent / "shared" / "speech")) / "dev"
STEP = 320


def trial(rec: WhisperRecognizer, voice: PiperVoice, audio: np.ndarray, turns_cfg: TurnConfig,
          show_trace: bool = False) -> dict | None:
    loop = VoiceLoop(StreamingRecognizer(rec, LISTENING), turns_cfg)
    first_token: dict[int, float] = {}
    runner = AssistantRunner(loop, EchoResponder(), voice, on_first_token=lambda rid: first_token.setdefault(rid, time.monotonic()))
    turns: list[tuple[TurnEnded, float]] = []
    trace: list[tuple[float, LoopEvent]] = []

    def on_events(evs: list[LoopEvent]) -> None:
        now = time.monotonic()
        trace.extend((now, ev) for ev in evs)
        turns.extend((ev, now) for ev in evs if isinstance(ev, TurnEnded))

    runner.start_listening(on_events)
    rms = np.sqrt(np.mean(audio[: len(audio) // STEP * STEP].reshape(-1, STEP) ** 2, axis=1))
    speech_end = (int(np.nonzero(rms > 0.02)[0][-1]) + 1) * STEP
    mic = np.concatenate([np.zeros(8000, np.float32), audio, np.zeros(16000 * 4, np.float32)])
    speech_end += 8000
    t0 = time.monotonic()
    reply_at = None
    final: tuple[TurnEnded, float] | None = None
    for i in range(0, len(mic), STEP):
        due = t0 + i / 16000
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        out = runner.pull_speaker(STEP)  # as a sound card would: play, then hand over the mic block
        if final is not None and np.any(out):
            reply_at = time.monotonic()
            break
        runner.feed_mic(mic[i:i + STEP])
        if final is None:  # the turn decided after the user's last word (earlier ones cut in mid-sentence)
            final = next((t for t in turns if t[0].decided_s * 16000 >= speech_end), None)
    runner.stop()
    end_wall = t0 + speech_end / 16000
    if show_trace:
        for at, ev in trace:
            if not isinstance(ev, Partial):
                print(f"    {at - end_wall:+7.3f} s  {str(ev)[:150]}")
    if final is None or reply_at is None:
        return None
    turn, turn_at = final
    token = first_token.get(turn.reply_id, turn_at)
    return {"end_of_turn_s": turn_at - end_wall, "first_token_s": token - end_wall,
            "voice_to_voice_s": reply_at - end_wall, "text": turn.text,
            "cut_ins": sum(t.decided_s * 16000 < speech_end for t, _ in turns)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--complete-silence-ms", type=float, default=TurnConfig.complete_silence_ms,
                    help="turn detector's wait after a finished sentence (default: %(default)s)")
    ap.add_argument("--trace", action="store_true", help="print each trial's loop events (times from end of speech)")
    ap.add_argument("--files", nargs="*", help="only these recordings (names in ../shared/speech/dev)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "voice_loop.json")
    args = ap.parse_args()
    rec, voice = WhisperRecognizer.load("whisper-tiny.en"), PiperVoice.load("piper-joe")
    voice.warm_up()
    files = sorted(p for p in SPEECH.glob("*.flac") if p.name.startswith(("librispeech_", "ljspeech_LJ00")))
    files = files[:: max(1, len(files) // args.trials)][: args.trials]
    if args.files:
        files = [SPEECH / name for name in args.files]
    turns_cfg = TurnConfig(complete_silence_ms=args.complete_silence_ms,
                           default_silence_ms=max(args.complete_silence_ms, TurnConfig.default_silence_ms))
    rows = []
    print(f"{'file':<36} {'end of turn':>11} {'1st token':>9} {'voice-to-voice':>14} {'cut-ins':>7}")
    for f in files:
        audio, _ = sf.read(f, dtype="float32")
        r = trial(rec, voice, audio, turns_cfg, args.trace)
        if r is None:
            print(f"{f.name:<36} no reply")
            continue
        rows.append({"file": f.name, **r})
        print(f"{f.name:<36} {r['end_of_turn_s']:11.3f} {r['first_token_s']:9.3f} {r['voice_to_voice_s']:14.3f}"
              f" {r['cut_ins']:7d}")
    if not rows:
        print("no turn was answered")
        return 1
    v2v = [r["voice_to_voice_s"] for r in rows]
    eot = [r["end_of_turn_s"] for r in rows]
    summary = {"trials": len(rows), "of": len(files), "voice_to_voice_p50_s": float(np.median(v2v)),
               "voice_to_voice_p95_s": float(np.percentile(v2v, 95)), "end_of_turn_p50_s": float(np.median(eot)),
               "cut_in_trials": sum(r["cut_ins"] > 0 for r in rows),
               "complete_silence_ms": args.complete_silence_ms,
               "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    print(f"voice-to-voice: median {summary['voice_to_voice_p50_s'] * 1000:.0f} ms, "
          f"p95 {summary['voice_to_voice_p95_s'] * 1000:.0f} ms ({len(rows)}/{len(files)} turns answered); "
          f"end-of-turn decision median {summary['end_of_turn_p50_s'] * 1000:.0f} ms; "
          f"{summary['cut_in_trials']} trials had a turn end in a mid-sentence pause")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "trials": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
