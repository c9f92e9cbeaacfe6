"""One `/v1/assistant` connection: the voice loop served over a websocket, paced by the client's microphone.

Full-duplex lockstep. Every binary mic frame of n samples (16 kHz after resampling) is queued for the
listener and answered at once with n samples pulled from the loop's speaker: sent as one binary frame
when they belong to a reply that is playing, nothing while the assistant is quiet. The reply is thereby
played at the client's microphone clock, and what the loop counts as played (barge-in's "heard text")
is what the client was sent at that point of its mic stream. All times on the wire are seconds of that
mic stream (16 kHz samples received, plus the silence the server adds after `audio.end`).

Threads: the listener's work (echo cancelling, VAD, Whisper passes: `VoiceLoop.hear` + `think`) runs as
steps on the server's shared decode workers, one step in flight per session, like caption sessions; the
runner's worker thread streams the responder into TTS for each reply. The event loop only decodes PCM,
resamples, pulls the speaker and renders events. Failures stay in the session: a responder error is a
non-fatal `error` event (the turn ends without audio), a listener error closes this session (1011).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from rtaudio.assistant.loop import (
    LISTENING,
    BargeIn,
    LoopEvent,
    Partial,
    PlaybackPaused,
    PlaybackResumed,
    SpeakerBlock,
    TurnEnded,
    UserSpeechStarted,
    VoiceLoop,
)
from rtaudio.assistant.responders import EchoResponder, OpenAIChatConfig, OpenAIChatResponder, Responder
from rtaudio.assistant.runner import AssistantRunner
from rtaudio.clock import Clock, ThreadCpuClock
from rtaudio.dsp.resample import Resampler
from rtaudio.errors import CapacityError, RtAudioError, UnknownModelError
from rtaudio.log import get_logger, log_event
from rtaudio.server.admission import AdmissionControl
from rtaudio.server.assistant_config import AssistantConfig
from rtaudio.server.assistant_protocol import AssistantProtocol, stream_seconds
from rtaudio.server.config import AssistantServiceConfig, ServerLimits
from rtaudio.server.engine import STREAM_RATE_HZ, ModelHub, WorkerPools
from rtaudio.server.events import AudioIn, ClientEvent, ClientMistake, EndOfAudio, StartAssistant
from rtaudio.server.metrics import ServerMetrics
from rtaudio.server.outbox import Outbox, pump
from rtaudio.stt.streaming import StreamingRecognizer
from rtaudio.tts.config import SynthesisConfig
from rtaudio.tts.voice import PiperVoice

log = get_logger("rtaudio.server.assistant")

DRAIN_BLOCK = 320  # 20 ms of silence per step after audio.end
DRAIN_MAX_S = 120.0  # the most the server plays on its own after audio.end
MAX_HELD_BLOCKS = 500  # reply blocks waiting for their turn event (10 s at 20 ms)


class ResponderFailed(RtAudioError):
    """A turn could not be answered (the details are in the server log, not sent to the client)."""

    code = "responder_error"


def make_responder(service: AssistantServiceConfig) -> Responder:
    if service.responder == "openai":
        return OpenAIChatResponder(OpenAIChatConfig(base_url=service.llm_base_url, model=service.llm_model,
                                                    api_key_env=service.llm_api_key_env))
    return EchoResponder()


@dataclass
class _Turn:
    """The user turn being answered; positions are 16 kHz samples of the mic stream."""

    reply_id: int
    speech_end: int
    decided: int
    resampler: Resampler | None
    first_audio: int | None = None
    audio_samples: int = 0
    spoken: list[str] = field(default_factory=list)


class AssistantSession:
    def __init__(self, session_id: str, endpoint: str, wire: AssistantProtocol, hub: ModelHub, pools: WorkerPools,
                 metrics: ServerMetrics, limits: ServerLimits, clock: Clock, service: AssistantServiceConfig,
                 admission: AdmissionControl | None = None) -> None:
        self.session_id, self.endpoint = session_id, endpoint
        self.wire, self.hub, self.pools, self.metrics, self.limits, self.clock = wire, hub, pools, metrics, limits, clock
        self.service = service
        self.admission = admission
        self.outbox = Outbox(limits.outbound_high_water_bytes, limits.outbound_max_bytes)
        self.close_requested = asyncio.Event()
        self.closed = False
        self.config: AssistantConfig | None = None
        self.loop: VoiceLoop | None = None
        self.runner: AssistantRunner | None = None
        self._admitted = False
        self._starting = False
        self._early: list[np.ndarray] = []  # mic audio (input rate) that came while the models were loading
        self._in_resampler: Resampler | None = None
        self._received = 0  # input samples received
        self._pos = 0  # mic stream position, 16 kHz samples (= speaker samples pulled)
        self._mic: collections.deque[np.ndarray] = collections.deque()  # 16 kHz, for the next listener step
        self._mic_samples = 0
        self._backlog = STREAM_RATE_HZ * limits.ring_capacity_ms // 1000
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self._stepping = False
        self._draining = False
        self._tasks: list[asyncio.Task[None]] = []
        self._turn: _Turn | None = None
        self._rendered_id = 0  # the newest reply whose TurnEnded was sent
        self._held: list[tuple[np.ndarray, SpeakerBlock, int]] = []
        self._first_token: dict[int, int] = {}  # reply id -> mic position when its first token came (worker thread)
        self._errors_seen = 0
        self._runner_lock = threading.Lock()
        self._runner_stopped = False
        self._cpu_clock = ThreadCpuClock()

    # -- driven by the connection (the same surface as `Session`) ------------------------------------------
    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._listen_loop(), name=f"assistant-{self.session_id}"))
        self.wire.start()
        self.handle(self.wire.events_received())

    def handle(self, events: list[ClientEvent]) -> None:
        for ev in events:
            if isinstance(ev, AudioIn):
                self._on_audio(ev.samples)
            elif isinstance(ev, StartAssistant):
                self._on_start(ev.config)
            elif isinstance(ev, EndOfAudio):
                self._tasks.append(asyncio.create_task(self._drain(), name=f"assistant-drain-{self.session_id}"))
            elif isinstance(ev, ClientMistake):
                self.metrics.errors.inc(1, ev.error.code)
        self.pump()

    def pump(self) -> None:
        """Move what the wire wants to send into the outbox; close a client that reads far too slowly."""
        pump(self.wire, self.outbox, self.metrics, self.close_requested)

    @property
    def busy(self) -> bool:
        return bool(self._mic) or self._stepping or self._draining or self._starting or self.outbox.queued_bytes > 0

    async def wait_for_room(self) -> None:
        """Back-pressure: the reader waits while the listener is more than `ring_capacity_ms` behind."""
        await self._room.wait()

    async def shutdown(self, grace_s: float) -> None:
        self.wire.close(1001, "server shutting down")
        self.pump()

    async def finish(self, grace_s: float = 0.0) -> None:
        """Stop the listener, the reply in progress and the runner's threads; idempotent."""
        if self.closed:
            return
        self.closed = True
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.runner is not None:
            await asyncio.to_thread(self._stop_runner)
        if self.admission is not None and self._admitted:
            self.admission.release(self.session_id)

    def _stop_runner(self) -> None:
        with self._runner_lock:  # a listener step still running will not start a reply after this
            self._runner_stopped = True
        assert self.runner is not None
        self.runner.stop(5.0)

    # -- start ------------------------------------------------------------------------------------------
    def _on_start(self, requested: AssistantConfig) -> None:
        config = requested.resolved(self.hub.default_model, self.hub.config.voices[0])
        try:
            if config.model not in self.hub.config.models:
                raise UnknownModelError(f"model {config.model!r} is not served here; served: "
                                        f"{', '.join(self.hub.config.models)}")
            self.hub.check_voice(cast(str, config.voice))
        except RtAudioError as e:
            self.metrics.errors.inc(1, e.code)
            self.wire.send_start_failed(e)
            return
        if self.admission is not None and not self._admitted:
            try:
                self.admission.admit(self.session_id)
                self._admitted = True
            except CapacityError as e:
                self.metrics.sessions_refused.inc(1, "latency_budget")
                self.wire.fail(e)
                return
        self._starting = True
        self._tasks.append(asyncio.create_task(self._open(config), name=f"assistant-open-{self.session_id}"))

    def _build(self, config: AssistantConfig) -> tuple[VoiceLoop, AssistantRunner]:
        """Decode worker: the shared models (loaded on first use), this session's stream, loop and runner."""
        recognizer = self.hub.recognizer(cast(str, config.model))
        voice = cast(PiperVoice, self.hub.voice(cast(str, config.voice)))
        stream = StreamingRecognizer(recognizer, LISTENING, clock=self.clock, vad_model=self.hub.vad_model())
        loop = VoiceLoop(stream, config.turn, clock=self.clock)
        runner = AssistantRunner(loop, make_responder(self.service), voice, SynthesisConfig(),
                                 on_first_token=self._on_first_token)
        return loop, runner

    async def _open(self, config: AssistantConfig) -> None:
        try:
            loop, runner = await self.pools.run_decode(self._build, config)
        except RtAudioError as e:
            self._starting, self._early = False, []
            self.metrics.errors.inc(1, e.code)
            self.wire.send_start_failed(e)
            self._room.set()
            self.pump()
            return
        except Exception as e:
            log.error("assistant session start failed", exc_info=True)
            self._starting = False
            self._fatal(e)
            return
        self.config, self.loop, self.runner = config, loop, runner
        rate = config.input_sample_rate_hz
        self._in_resampler = Resampler(rate, STREAM_RATE_HZ) if rate != STREAM_RATE_HZ else None
        limits = {"max_message_bytes": self.limits.max_message_bytes,
                  "max_messages_per_s": self.limits.max_messages_per_s, "idle_timeout_s": self.limits.idle_timeout_s}
        self.wire.send_assistant_started(self.session_id, config, self.service.responder, limits)
        self._starting = False
        early, self._early = self._early, []
        for x in early:
            self._on_audio(x)
        self._room.set()
        log_event(log, logging.INFO, "assistant session started", session=self.session_id, model=config.model,
                  responder=self.service.responder)
        self.pump()

    def _fatal(self, error: BaseException) -> None:
        self.metrics.errors.inc(1, getattr(error, "code", "internal_error"))
        self.wire.fail(error)
        self.pump()

    # -- microphone in, speaker out (event loop) ----------------------------------------------------------
    def _on_audio(self, x: np.ndarray) -> None:
        if self.loop is None or self.config is None:
            if self._starting:
                self._early.append(x)
                if sum(len(e) for e in self._early) > self._backlog:
                    self._room.clear()
            return
        y = self._in_resampler.push(x) if self._in_resampler is not None else x
        self._received += len(x)
        target = self._received * STREAM_RATE_HZ // self.config.input_sample_rate_hz
        self._feed(y, target - self._pos)

    def _feed(self, mic: np.ndarray, n: int) -> None:
        """Queue `mic` (16 kHz) for the listener; answer with `n` speaker samples (lockstep)."""
        if len(mic):
            self._mic.append(mic)
            self._mic_samples += len(mic)
            self._wake.set()
        if n > 0:
            self._pull(n)
        if self._mic_samples > self._backlog:
            self._room.clear()
        self._report_errors()

    def _pull(self, n: int) -> None:
        assert self.loop is not None
        out, block = self.loop.pull_speaker_block(n)
        start = self._pos
        self._pos += n
        if block.reply_id is None:
            return
        if block.reply_id > self._rendered_id:  # its TurnEnded is still on its way from the listener step
            self._held.append((out, block, start))
            del self._held[:-MAX_HELD_BLOCKS]
            return
        self._play(out, block, start)

    def _play(self, out: np.ndarray, block: SpeakerBlock, start: int) -> None:
        turn = self._turn
        if turn is None or turn.reply_id != block.reply_id or self.config is None:
            return
        if block.started:
            turn.first_audio = start
            self.wire.send_event("assistant.speaking", reply_id=turn.reply_id, stream_s=stream_seconds(start))
            self._send_timings(turn)
        for text in block.sentences:
            turn.spoken.append(text)
            self.wire.send_event("assistant.reply", reply_id=turn.reply_id, text=text,
                                 stream_s=stream_seconds(start))
        if block.audible:
            turn.audio_samples += len(out)
            audio = turn.resampler.push(out) if turn.resampler is not None else out
            if block.finished and turn.resampler is not None:
                audio = np.concatenate([audio, turn.resampler.flush()])
            if len(audio):
                self.wire.send_reply_audio(audio, self.config.output_encoding)
        if block.finished:
            self._end_turn(turn, interrupted=False, heard=" ".join(turn.spoken), at=start + len(out))

    def _end_turn(self, turn: _Turn, interrupted: bool, heard: str, at: int) -> None:
        if turn.first_audio is None:
            self._send_timings(turn)  # no audio came (the responder failed, or the user barged in first)
        self.wire.send_event("assistant.done", reply_id=turn.reply_id, interrupted=interrupted, text=heard,
                             audio_s=stream_seconds(turn.audio_samples), stream_s=stream_seconds(at))
        self.metrics.assistant_turns.inc(1, "interrupted" if interrupted else "answered" if turn.audio_samples
                                         else "silent")
        self._turn = None

    def _send_timings(self, turn: _Turn) -> None:
        first_token = self._first_token.get(turn.reply_id)

        def ms(at: int | None) -> float | None:
            return None if at is None else round((at - turn.speech_end) / (STREAM_RATE_HZ / 1000), 1)

        def s(at: int | None) -> float | None:
            return None if at is None else stream_seconds(at)

        self.wire.send_event("assistant.timings", reply_id=turn.reply_id, speech_end_s=s(turn.speech_end),
                             decided_s=s(turn.decided), first_token_s=s(first_token), first_audio_s=s(turn.first_audio),
                             end_of_turn_ms=ms(turn.decided), first_token_ms=ms(first_token),
                             first_audio_ms=ms(turn.first_audio))
        for stage, at in (("end_of_turn", turn.decided), ("first_token", first_token),
                          ("first_audio", turn.first_audio)):
            if at is not None:
                self.metrics.assistant_latency.observe(max(0.0, (at - turn.speech_end) / STREAM_RATE_HZ), stage)

    def _on_first_token(self, reply_id: int) -> None:
        """Runner worker thread: the responder's first token of reply `reply_id` came now."""
        self._first_token[reply_id] = self._pos

    def _report_errors(self) -> None:
        """Responder/TTS failures of the runner's worker become non-fatal error events of this session."""
        if self.runner is None or len(self.runner.errors) <= self._errors_seen:
            return
        for e in self.runner.errors[self._errors_seen:]:
            log_event(log, logging.WARNING, "assistant reply failed", session=self.session_id, error=repr(e))
            self.metrics.errors.inc(1, ResponderFailed.code)
            self.wire.send_error(ResponderFailed("the assistant could not answer this turn"), fatal=False)
        self._errors_seen = len(self.runner.errors)

    # -- the listener (decode workers) ---------------------------------------------------------------------
    async def _listen_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._mic and not self.closed:
                x = np.concatenate(list(self._mic))
                self._mic.clear()
                self._mic_samples = 0
                self._stepping = True
                try:
                    events, cpu_s = await self.pools.run_decode(self._listen_step, x)
                except Exception as e:
                    if not isinstance(e, RtAudioError):
                        log.error("assistant listener failed", exc_info=True)
                    self._fatal(e)
                    return
                finally:
                    self._stepping = False
                if self.admission is not None:
                    self.admission.observe(len(x) / STREAM_RATE_HZ, cpu_s)
                self._render(events)
                self._report_errors()
                if self._mic_samples <= self._backlog:
                    self._room.set()
                self.pump()

    def _listen_step(self, x: np.ndarray) -> tuple[list[LoopEvent], float]:
        """Decode worker: echo-cancel and recognize `x`, start/cancel replies as the loop says."""
        assert self.loop is not None and self.runner is not None
        cpu0 = self._cpu_clock.now_ns()
        self.loop.hear(x)
        events = self.loop.think()
        with self._runner_lock:
            if not self._runner_stopped:
                self.runner.handle(events)
        return events, (self._cpu_clock.now_ns() - cpu0) / 1e9

    def _render(self, events: list[LoopEvent]) -> None:
        for ev in events:
            if isinstance(ev, UserSpeechStarted):
                self.wire.send_event("user.speech_started", stream_s=round(ev.stream_s, 3))
            elif isinstance(ev, Partial):
                if not self.outbox.congested:
                    self.wire.send_event("user.partial", text=ev.text)
            elif isinstance(ev, TurnEnded):
                self._on_turn(ev)
            elif isinstance(ev, BargeIn):
                self._held.clear()
                if self._turn is not None:
                    self.wire.send_event("assistant.barge_in", reply_id=self._turn.reply_id, heard_text=ev.heard_text,
                                         stream_s=stream_seconds(self._pos))
                    self._end_turn(self._turn, interrupted=True, heard=ev.heard_text, at=self._pos)
            elif isinstance(ev, PlaybackPaused):
                self.wire.send_event("assistant.paused", stream_s=round(ev.stream_s, 3))
            elif isinstance(ev, PlaybackResumed):
                self.wire.send_event("assistant.resumed", stream_s=round(ev.stream_s, 3))

    def _on_turn(self, ev: TurnEnded) -> None:
        assert self.config is not None
        if self._turn is not None:  # not expected: the loop starts a turn only once the last reply is over
            self._end_turn(self._turn, interrupted=False, heard=" ".join(self._turn.spoken), at=self._pos)
        out_rate = self.config.output_rate_hz
        turn = _Turn(ev.reply_id, round(ev.speech_end_s * STREAM_RATE_HZ), self._pos,
                     Resampler(STREAM_RATE_HZ, out_rate) if out_rate != STREAM_RATE_HZ else None)
        self._turn, self._rendered_id = turn, ev.reply_id
        for stale in [k for k in list(self._first_token) if k < ev.reply_id]:  # list(): the runner thread adds keys
            self._first_token.pop(stale, None)
        self.wire.send_event("assistant.turn", reply_id=ev.reply_id, text=ev.text, prepared=ev.prepared,
                             speech_end_s=stream_seconds(turn.speech_end), decided_s=stream_seconds(turn.decided),
                             listener_lag_ms=round(max(0.0, turn.decided / STREAM_RATE_HZ - ev.decided_s) * 1000, 1))
        held, self._held = self._held, []
        for out, block, start in held:
            if block.reply_id == ev.reply_id:
                self._play(out, block, start)

    # -- audio.end: the server's own clock plays the conversation out ---------------------------------------
    async def _drain(self) -> None:
        """Add real-time silence as the mic until the last turn is answered (or DRAIN_MAX_S), then audio.ended."""
        assert self.config is not None and self.loop is not None
        self._draining = True
        try:
            if self._in_resampler is not None:
                self._feed(self._in_resampler.flush(), 0)
            ended, t0 = self._pos, self.clock.now_ns()
            settle = STREAM_RATE_HZ * (self.config.turn.continuation_silence_ms + 1000) // 1000
            while not self.closed and self._pos - ended < DRAIN_MAX_S * STREAM_RATE_HZ:
                quiet = (self._pos - ended >= settle and not self.loop.reply_active and not self.loop.user_text
                         and not self._mic and not self._stepping and self._turn is None)
                if quiet:
                    break
                due = (self.clock.now_ns() - t0) * STREAM_RATE_HZ // 1_000_000_000 - (self._pos - ended)
                while due >= DRAIN_BLOCK:
                    self._feed(np.zeros(DRAIN_BLOCK, np.float32), DRAIN_BLOCK)
                    due -= DRAIN_BLOCK
                self.pump()
                await asyncio.sleep(DRAIN_BLOCK / STREAM_RATE_HZ)
            self.wire.send_audio_ended(self._received / self.config.input_sample_rate_hz)
            self.pump()
        finally:
            self._draining = False
