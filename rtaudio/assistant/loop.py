"""The voice loop as a sans-I/O object: microphone samples in, speaker samples out, events in between.

    loop.push_mic(samples)        -> events (UserSpeechStarted, Partial, TurnEnded, BargeIn, ...)
    loop.push_reply_audio(x, txt) the runner's TTS output for the current reply (any chunk size)
    loop.pull_speaker(n)          -> n samples to play now (silence when nothing to say)

All audio is 16 kHz mono float32. The runner (threads, devices, responder, TTS) lives in `runner.py`.
`push_mic` is `hear` (echo cancelling and buffering: cheap) then `think` (the recognizer's passes: tens to
hundreds of ms). A runner calls them on a listener thread so a Whisper pass never holds up the sound card:
the loop's state is guarded by a lock that `think` takes only to apply results, never during a pass, so
`pull_speaker` on the audio thread never waits for the recognizer.

Listening: the microphone goes through the echo canceller (reference = what `pull_speaker` handed out)
and the streaming recognizer. The end of the user's turn is decided on text as well as silence
(`TurnDetector`): a short wait after a finished sentence, a longer one after "and" or "um".
Barge-in: when the user starts speaking while the assistant talks, playback pauses at once (within one
`pull_speaker` call); if the partial transcript then holds real words (not "yeah", "mhm", a cough) the
reply is dropped and the turn recorded as interrupted, with only the text that was actually played;
otherwise playback resumes where it stopped.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rtaudio.assistant.echo import EchoCanceller, EchoCancellerConfig
from rtaudio.assistant.responders import Message
from rtaudio.assistant.turns import BargeInPolicy, TurnConfig, TurnDetector
from rtaudio.clock import Clock, SystemClock
from rtaudio.frames import Caption
from rtaudio.stt.streaming import StreamingConfig, StreamingRecognizer
from rtaudio.stt.vad import SpeechEnded, SpeechStarted, VadConfig

SAMPLE_RATE_HZ = 16000
# Greedy finals: the pass run 64 ms into a pause becomes the turn's text at once; a beam-5 final pass (the
# captioning default) would start only at the endpoint and delay every answer by its decode
# (`python -m bench.voice_loop`: voice-to-voice median 540 ms greedy, 740 ms with beam-5 finals).
LISTENING = StreamingConfig(vad=VadConfig(min_speech_ms=96, min_silence_ms=160, speech_pad_ms=96), pause_pass_ms=64,
                            final_beam_size=1)
"""The recognizer settings for a conversation: a pass runs 64 ms into a pause and the VAD endpoint comes
after 160 ms of silence (captions wait 480 ms), so the user's text and a prepared reply (`TurnLikely`) are
ready before the turn detector's silence wait is over; short bursts (a 96 ms "no") still count as speech."""


@dataclass(frozen=True)
class UserSpeechStarted:
    stream_s: float


@dataclass(frozen=True)
class Partial:
    text: str


@dataclass(frozen=True)
class TurnLikely:
    """The user paused after `text` and has probably finished: prepare reply `reply_id` now, play it only
    on the `TurnEnded` that confirms it (speculation hides the responder's and TTS's first-chunk time)."""

    text: str
    reply_id: int
    history: tuple[Message, ...]
    """What the responder sees: the conversation so far plus this user turn."""


@dataclass(frozen=True)
class TurnCancelled:
    """The prepared reply `reply_id` is void: the user went on speaking, or said something else."""

    reply_id: int


@dataclass(frozen=True)
class TurnEnded:
    """The user finished: answer `text`. `speech_end_s` is stream time of the end of their speech."""

    text: str
    speech_end_s: float
    decided_s: float
    reply_id: int
    history: tuple[Message, ...] = ()
    """What the responder sees: the conversation so far, ending with this user turn."""
    prepared: bool = False
    """Reply `reply_id` was already started on the `TurnLikely` with the same text: do not start it again."""


@dataclass(frozen=True)
class BargeIn:
    heard_text: str
    """What of the interrupted reply was actually played."""


@dataclass(frozen=True)
class PlaybackPaused:
    stream_s: float


@dataclass(frozen=True)
class PlaybackResumed:
    stream_s: float


LoopEvent = (UserSpeechStarted | Partial | TurnLikely | TurnCancelled | TurnEnded | BargeIn | PlaybackPaused
             | PlaybackResumed)


@dataclass(frozen=True)
class SpeakerBlock:
    """What one `pull_speaker_block` call played, for a transport that forwards the reply (a websocket)."""

    reply_id: int | None = None
    """The reply being spoken in this block (confirmed, not paused); None: the assistant is quiet."""
    audible: bool = False
    """The reply's playback has begun: the block belongs to it (an underrun inside it is silence)."""
    started: bool = False
    """The reply's first sample is the block's first sample."""
    finished: bool = False
    """The reply was played out in this block (its last samples, if any, are in it)."""
    sentences: tuple[str, ...] = ()
    """Sentences of the reply whose playback began by the end of this block, in order, each once."""


@dataclass
class _Reply:
    chunks: deque[np.ndarray] = field(default_factory=deque)
    offset: int = 0  # samples of chunks[0] already played
    pushed: int = 0  # samples pushed so far
    played: int = 0  # samples played so far
    sentences: list[tuple[str, int, int]] = field(default_factory=list)  # (text, first sample, end sample)
    finished: bool = False  # the runner has pushed all audio
    announced: int = 0  # sentences reported by pull_speaker_block

    def heard_text(self) -> str:
        """Sentences played in full, plus the share of words of one cut short (by its played fraction)."""
        words: list[str] = []
        for text, start, end in self.sentences:
            if end <= self.played:
                words += text.split()
            elif start < self.played:
                parts = text.split()
                words += parts[: int(len(parts) * (self.played - start) / max(end - start, 1))]
        return " ".join(words)


def _key(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


class VoiceLoop:
    def __init__(self, stream: StreamingRecognizer, turns: TurnConfig | None = None,
                 echo: EchoCancellerConfig | None = None, clock: Clock | None = None) -> None:
        self.stream = stream
        self.turns = TurnDetector(turns)
        self.barge = BargeInPolicy(turns)
        self.aec = EchoCanceller(echo or EchoCancellerConfig(max_delay_ms=250.0))
        self.clock = clock or SystemClock()
        self.history: list[Message] = []
        self._reply: _Reply | None = None
        self._paused = False
        self._user_text: list[str] = []  # finals of the current user turn
        self._partial = ""
        self._in_speech = False
        self._speech_end: float | None = None
        self._heard = 0  # mic samples received
        self._reply_id = 0
        self._echo_words: set[str] = set()  # words of the reply being (or last) played
        self._last_played_s = -1e9  # mic time when the speaker last played something
        self._lock = threading.RLock()  # state shared by the listening and the speaking side
        self._pending: _Reply | None = None  # a reply prepared on TurnLikely, not yet confirmed
        self._pending_text = ""
        self._end_pad_s = stream.config.vad.speech_pad_ms / 1000

    # -- listening ------------------------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        return self._reply is not None and not self._paused

    def push_mic(self, samples: np.ndarray) -> list[LoopEvent]:
        """Hear and think in one call (single-threaded use: tests, simple loops)."""
        self.hear(samples)
        return self.think()

    def hear(self, samples: np.ndarray) -> None:
        """Echo-cancel `samples` and buffer them for the recognizer: cheap, never runs a model pass."""
        with self._lock:
            clean = self.aec.process(np.asarray(samples, dtype=np.float32))
            self._heard += len(clean)
            if self.aec.delay_samples is None and self._heard - self._last_played_s * SAMPLE_RATE_HZ <= self.aec.max_delay:
                clean = np.zeros_like(clean)  # echo of what just played, path not measured yet (first 0.5 s ever)
        self.stream.accept_waveform(clean)

    def think(self) -> list[LoopEvent]:
        """Run the recognizer's due passes on what was heard (no lock held), then update the turn state.

        Call `hear` and `think` from the same thread: the recognizer stream is not shared."""
        results: list[tuple[list[object], list[Caption]]] = []
        while self.stream.is_ready():
            captions = self.stream.decode()
            results.append((list(self.stream.events()), captions))
        events: list[LoopEvent] = []
        with self._lock:
            for stream_events, captions in results:
                for ev in stream_events:
                    events += self._on_vad(ev)
                for cap in captions:
                    events += self._on_caption(cap)
            events += self._check_turn()
        return events

    def _on_vad(self, ev: object) -> list[LoopEvent]:
        now_s = self._heard / SAMPLE_RATE_HZ
        if isinstance(ev, SpeechStarted):
            self._in_speech = True
            self._speech_end = None
            out: list[LoopEvent] = [UserSpeechStarted(ev.start_sample / SAMPLE_RATE_HZ)]
            out += self._cancel_pending()
            if self._reply is not None and not self._paused:
                self._paused = True
                out.append(PlaybackPaused(now_s))
            return out
        if isinstance(ev, SpeechEnded):
            self._in_speech = False
            self._speech_end = ev.end_sample / SAMPLE_RATE_HZ - self._end_pad_s  # the last voiced frame
        return []

    def _on_caption(self, cap: Caption) -> list[LoopEvent]:
        if cap.is_final:
            if cap.text.strip():
                self._user_text.append(cap.text.strip())
            self._partial = ""
        else:
            self._partial = cap.text.strip()
        text = self.user_text
        out: list[LoopEvent] = [Partial(text)] if text else []
        if self._reply is not None and self._paused and self.barge.is_interruption(self._without_echo(text)):
            out.append(self._interrupt())
        return out

    def _without_echo(self, text: str) -> str:
        """The words of `text` that are not words of the assistant's own reply (residual echo)."""
        return " ".join(w for w in text.split() if _key(w) not in self._echo_words)

    def _is_self_echo(self, text: str) -> bool:
        """Most words are the assistant's own, heard while or just after it spoke: not a user turn."""
        words = [_key(w) for w in text.split() if _key(w)]
        recent = self.speaking or self._heard / SAMPLE_RATE_HZ - self._last_played_s < 1.5
        return recent and bool(words) and sum(w in self._echo_words for w in words) >= 0.6 * len(words)

    @property
    def user_text(self) -> str:
        return " ".join([*self._user_text, self._partial]).strip()

    def _check_turn(self) -> list[LoopEvent]:
        now_s = self._heard / SAMPLE_RATE_HZ
        out: list[LoopEvent] = []
        if self._in_speech or self._speech_end is None:
            return out
        text = self.user_text
        if self._reply is not None and self._paused:
            if not self.barge.is_interruption(text):  # a backchannel or a cough: carry on talking
                self._paused = False
                self._user_text, self._partial, self._speech_end = [], "", None
                out.append(PlaybackResumed(now_s))
            return out
        silence_ms = (now_s - self._speech_end) * 1000
        if not self.turns.is_end_of_turn(text, silence_ms):
            return self._speculate(text)
        if self._is_self_echo(text):
            self._user_text, self._partial, self._speech_end = [], "", None
            return self._cancel_pending()
        prepared = self._pending is not None and self._pending_text == text
        if not prepared:
            out += self._cancel_pending()
            self._reply_id += 1
        self._echo_words = set()
        self.history.append(Message("user", text))
        out.append(TurnEnded(text, self._speech_end, now_s, self._reply_id, tuple(self.history), prepared))
        self._user_text, self._partial, self._speech_end = [], "", None
        self._reply = self._pending if prepared else _Reply()
        self._pending, self._pending_text = None, ""
        return out

    def _speculate(self, text: str) -> list[LoopEvent]:
        """After the VAD endpoint, start preparing the reply to `text` unless the user is likely to go on."""
        if self._pending is not None and self._pending_text == text:
            return []
        out = self._cancel_pending()
        if self._reply is not None or self.turns.expects_more(text) or self._is_self_echo(text):
            return out
        self._reply_id += 1
        self._pending, self._pending_text = _Reply(), text
        return [*out, TurnLikely(text, self._reply_id, (*self.history, Message("user", text)))]

    def _cancel_pending(self) -> list[LoopEvent]:
        if self._pending is None:
            return []
        self._pending, self._pending_text = None, ""
        return [TurnCancelled(self._reply_id)]

    def _interrupt(self) -> BargeIn:
        assert self._reply is not None
        heard = self._reply.heard_text()
        if heard or not self.history or self.history[-1].role != "user":
            self.history.append(Message("assistant", heard, interrupted=True))
        else:  # not a word of the reply played: the user was not done, their turn goes on
            self._user_text.insert(0, self.history.pop().content)
            self._echo_words = set()  # and nothing of it can come back as echo
        self._reply = None
        self._paused = False
        return BargeIn(heard)

    # -- speaking -------------------------------------------------------------------------------
    @property
    def reply_active(self) -> bool:
        """True from a TurnEnded until the reply is played out or interrupted: the runner feeds it."""
        return self._reply is not None

    def push_reply_audio(self, reply_id: int, audio: np.ndarray) -> None:
        """Audio for reply `reply_id` (stale replies, e.g. after a barge-in, are ignored)."""
        with self._lock:
            reply = self._reply_for(reply_id)
            if reply is not None and len(audio):
                reply.chunks.append(np.asarray(audio, dtype=np.float32))
                reply.pushed += len(audio)

    def end_sentence(self, reply_id: int, text: str) -> None:
        """The audio pushed since the previous sentence speaks `text` (so barge-in knows what was heard)."""
        with self._lock:
            reply = self._reply_for(reply_id)
            if reply is not None:
                start = reply.sentences[-1][2] if reply.sentences else 0
                reply.sentences.append((text, start, reply.pushed))
                self._echo_words |= {_key(w) for w in text.split()}

    def finish_reply(self, reply_id: int) -> None:
        """All audio of reply `reply_id` has been pushed."""
        with self._lock:
            reply = self._reply_for(reply_id)
            if reply is not None:
                reply.finished = True

    def _reply_for(self, reply_id: int) -> _Reply | None:
        """The live reply with this id (playing or prepared); None for a stale one (barged in, cancelled)."""
        if reply_id != self._reply_id:
            return None
        return self._pending if self._pending is not None else self._reply

    def pull_speaker_block(self, n: int) -> tuple[np.ndarray, SpeakerBlock]:
        """`pull_speaker(n)` plus what the block holds: which reply, whether it starts or ends, sentences begun."""
        with self._lock:
            reply, reply_id = self._reply, self._reply_id
            live = reply is not None and not self._paused
            played_before = reply.played if reply is not None else 0
            out = self.pull_speaker(n)
            if reply is None or not live:
                return out, SpeakerBlock()
            finished = self._reply is not reply
            sentences: list[str] = []
            while reply.announced < len(reply.sentences) and (finished or reply.sentences[reply.announced][1] < reply.played):
                sentences.append(reply.sentences[reply.announced][0])
                reply.announced += 1
            return out, SpeakerBlock(reply_id, reply.played > 0, played_before == 0 and reply.played > 0, finished,
                                     tuple(sentences))

    def pull_speaker(self, n: int) -> np.ndarray:
        with self._lock:
            out = np.zeros(n, dtype=np.float32)
            reply = self._reply
            if reply is not None and not self._paused:
                filled = 0
                while filled < n and reply.chunks:
                    chunk = reply.chunks[0]
                    take = min(n - filled, len(chunk) - reply.offset)
                    out[filled: filled + take] = chunk[reply.offset: reply.offset + take]
                    filled += take
                    reply.offset += take
                    if reply.offset >= len(chunk):
                        reply.chunks.popleft()
                        reply.offset = 0
                reply.played += filled
                if filled:
                    self._last_played_s = self._heard / SAMPLE_RATE_HZ
                if reply.finished and not reply.chunks:
                    self.history.append(Message("assistant", " ".join(t for t, _, _ in reply.sentences)))
                    self._reply = None
            self.aec.push_reference(out)
            return out
