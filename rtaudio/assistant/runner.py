"""Threads around the sans-I/O `VoiceLoop`: a listener thread runs the recognizer, a worker thread each reply.

The audio side (a sound-card loop, a websocket reader) only calls `feed_mic` (a copy into a queue) and
`pull_speaker`: neither waits for a Whisper pass, so playback never stutters and barge-in stays prompt.
The listener thread echo-cancels and recognizes what was fed and hands the loop's events to `handle`
(and to the caller's callback). `handle` can also be driven directly with `VoiceLoop.push_mic` results.

The worker streams responder deltas into the sentence splitter, synthesizes each sentence as soon as it is
complete (the first clause is spoken while the rest is still being generated), resamples to 16 kHz and
hands chunks to the loop. A barge-in sets the worker's cancel event; anything it still produces for that
reply is ignored by the loop (stale reply id).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from rtaudio.assistant.loop import BargeIn, LoopEvent, TurnCancelled, TurnEnded, TurnLikely, VoiceLoop
from rtaudio.assistant.responders import Message, Responder
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
        self._reply_id = 0  # the reply the current worker produces
        self.errors: list[Exception] = []
        self._mic: deque[np.ndarray] = deque()
        self._mic_ready = threading.Event()
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    # -- listening on a thread ---------------------------------------------------------------------
    def start_listening(self, on_events: Callable[[list[LoopEvent]], None] | None = None) -> None:
        """Start the listener thread; `on_events` gets each batch of loop events (on that thread)."""
        if self._listener is not None:
            return
        self._stop.clear()
        self._listener = threading.Thread(target=self._listen, args=(on_events,), name="assistant-listener",
                                          daemon=True)
        self._listener.start()

    @property
    def listening(self) -> bool:
        """The listener thread runs (False before `start_listening`, after `stop` or a recognizer failure)."""
        return self._listener is not None and self._listener.is_alive()

    def feed_mic(self, samples: np.ndarray) -> None:
        """Microphone samples (16 kHz mono float32) for the listener thread; returns at once."""
        self._mic.append(np.array(samples, dtype=np.float32))
        self._mic_ready.set()

    def pull_speaker(self, n: int) -> np.ndarray:
        """The next `n` samples to play (silence when the assistant is quiet); never waits for the recognizer."""
        return self.loop.pull_speaker(n)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop listening and cancel the reply in progress."""
        self._stop.set()
        self._mic_ready.set()
        if self._cancel is not None:
            self._cancel.set()
        if self._listener is not None:
            self._listener.join(timeout_s)
            self._listener = None
        self.join(timeout_s)

    def _listen(self, on_events: Callable[[list[LoopEvent]], None] | None) -> None:
        while not self._stop.is_set():
            self._mic_ready.wait(0.02)
            self._mic_ready.clear()
            chunks = []
            while self._mic:
                chunks.append(self._mic.popleft())
            if chunks:
                self.loop.hear(np.concatenate(chunks))
            try:
                events = self.loop.think()
            except Exception as e:  # a recognizer failure ends listening (it would recur every pass)
                log.error("listening failed: %s", e)
                self.errors.append(e)
                return
            if events:
                self.handle(events)
                if on_events is not None:
                    on_events(events)

    def handle(self, events: list[LoopEvent]) -> None:
        """Start, confirm or cancel replies as the loop's events say."""
        for ev in events:
            if isinstance(ev, TurnLikely) or (isinstance(ev, TurnEnded) and not ev.prepared):
                self._start(ev.reply_id, list(ev.history))
            elif self._cancel is not None and (isinstance(ev, BargeIn) or
                                               (isinstance(ev, TurnCancelled) and ev.reply_id == self._reply_id)):
                self._cancel.set()

    def _start(self, reply_id: int, history: list[Message]) -> None:
        if self._cancel is not None:
            self._cancel.set()
        cancel = threading.Event()
        self._cancel, self._reply_id = cancel, reply_id
        self._worker = threading.Thread(target=self._reply, args=(reply_id, history, cancel), daemon=True)
        self._worker.start()

    def _reply(self, reply_id: int, history: list[Message], cancel: threading.Event) -> None:
        splitter = SentenceSplitter()
        first = True
        try:
            for delta in self.responder.respond(history, cancel):
                if cancel.is_set():
                    return
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
