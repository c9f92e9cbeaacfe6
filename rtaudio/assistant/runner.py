"""Threads around the sans-I/O `VoiceLoop`: the responder and TTS of a reply run on a worker thread.

The worker streams responder deltas into the sentence splitter, synthesizes each sentence as soon as it is
complete (the first clause is spoken while the rest is still being generated), resamples to 16 kHz and
hands chunks to the loop. A barge-in sets the worker's cancel event; anything it still produces for that
reply is ignored by the loop (stale reply id).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from rtaudio.assistant.loop import BargeIn, LoopEvent, TurnEnded, VoiceLoop
from rtaudio.assistant.responders import Responder
from rtaudio.dsp.resample import Resampler
from rtaudio.log import get_logger
from rtaudio.tts.config import SynthesisConfig
from rtaudio.tts.splitter import SentenceSplitter
from rtaudio.tts.voice import PiperVoice

log = get_logger("assistant")


class AssistantRunner:
    def __init__(self, loop: VoiceLoop, responder: Responder, voice: PiperVoice,
                 synthesis: SynthesisConfig | None = None,
                 on_first_token: Callable[[int], None] | None = None) -> None:
        self.loop = loop
        self.responder = responder
        self.voice = voice
        self.synthesis = synthesis or SynthesisConfig()
        self.on_first_token = on_first_token
        self._cancel: threading.Event | None = None
        self._worker: threading.Thread | None = None
        self.errors: list[Exception] = []

    def handle(self, events: list[LoopEvent]) -> None:
        for ev in events:
            if isinstance(ev, TurnEnded):
                self._start(ev.reply_id)
            elif isinstance(ev, BargeIn) and self._cancel is not None:
                self._cancel.set()

    def _start(self, reply_id: int) -> None:
        if self._cancel is not None:
            self._cancel.set()
        cancel = threading.Event()
        self._cancel = cancel
        history = list(self.loop.history)
        self._worker = threading.Thread(target=self._reply, args=(reply_id, history, cancel), daemon=True)
        self._worker.start()

    def _reply(self, reply_id: int, history: list, cancel: threading.Event) -> None:  # type: ignore[type-arg]
        splitter = SentenceSplitter()
        first = True
        try:
            for delta in self.responder.respond(history, cancel):
                if first and self.on_first_token:
                    self.on_first_token(reply_id)
                first = False
                for sentence in splitter.push(delta.text):
                    self._speak(reply_id, sentence, cancel)
            for sentence in splitter.flush():
                self._speak(reply_id, sentence, cancel)
        except Exception as e:  # a responder failure ends this reply, never the loop
            log.error("reply failed: %s", e)
            self.errors.append(e)
        finally:
            self.loop.finish_reply(reply_id)

    def _speak(self, reply_id: int, sentence: str, cancel: threading.Event) -> None:
        resampler = Resampler(self.voice.sample_rate, 16000)
        for chunk in self.voice.stream(sentence, self.synthesis):
            if cancel.is_set():
                return
            out = resampler.push(chunk)
            if len(out):
                self.loop.push_reply_audio(reply_id, out)
        self.loop.push_reply_audio(reply_id, resampler.flush())
        self.loop.end_sentence(reply_id, sentence)

    def join(self, timeout_s: float = 30.0) -> None:
        if self._worker is not None:
            self._worker.join(timeout_s)
