"""One connection's engine run: audio ring -> recognizer steps on workers -> captions; speech requests -> audio.

The session is driven by `ClientEvent`s from its wire protocol and renders results through the same
wire. Ordering: flush / clear / end apply after the audio received before them; speech cancel acts at
once (control outranks data). Policies (see PROTOCOL.md "Back-pressure"):
- inbound audio is lossless: when the ring is full the connection stops reading (TCP back-pressure);
- a partial caption that cannot be sent because the client reads slowly is replaced by the next one
  (counted in rtaudio_dropped_total{kind="partial"}); finals and events are never dropped;
- speech synthesis pauses while the client is behind; a client too far behind is closed (1008).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rtaudio.clock import Clock, ThreadCpuClock
from rtaudio.dsp.resample import Resampler
from rtaudio.errors import CapacityError, ConfigError, RtAudioError
from rtaudio.frames import Caption
from rtaudio.log import get_logger, log_event
from rtaudio.server.admission import AdmissionControl, SessionLoad
from rtaudio.server.broadcast import CaptionBroadcast
from rtaudio.server.config import ServerLimits, SessionConfig
from rtaudio.server.engine import STREAM_RATE_HZ, CaptionStream, ModelHub, WorkerPools
from rtaudio.server.events import (
    AudioIn,
    CancelSpeech,
    CaptionTiming,
    ClearAudio,
    ClientEvent,
    ClientMistake,
    EndOfAudio,
    Flush,
    SessionInfo,
    Speak,
    StartSession,
    Subscribe,
    VadEvent,
)
from rtaudio.server.metrics import ServerMetrics
from rtaudio.server.outbox import Outbox, pump
from rtaudio.server.ring import AudioRing
from rtaudio.server.speech import MAX_WAITING_REQUESTS, SpeechJob, SpeechQueue, run_speech_job
from rtaudio.server.wire import CLOSE_GOING_AWAY, Wire
from rtaudio.stt.latency_budget import BudgetEvent

log = get_logger("rtaudio.server.session")

MAX_STEP_MS = 1000  # audio fed per worker step, so sessions take turns on the workers
LIVE_BACKLOG_MS = 600  # a backlog this short is fed whole: a partial then shows the newest audio (latency budget)


@dataclass
class _Op:
    kind: str  # "flush" | "clear" | "end" | "restart"
    at: int  # ring position (input samples) after which it applies
    config: SessionConfig | None = None
    reason: str = ""
    close_after: bool = False


@dataclass
class _StepResult:
    items: list[tuple[Caption | VadEvent | BudgetEvent, int]] = field(default_factory=list)  # item, input decoded
    compute_s: float = 0.0
    audio_samples: int = 0
    queue_s: float = 0.0
    cpu_s: float = 0.0  # the worker thread's CPU time (admission's cost measure)
    stages: list[tuple[str, float]] = field(default_factory=list)  # (rtaudio.latency stage, seconds)
    done_ns: int = 0


class Session:
    def __init__(self, session_id: str, endpoint: str, wire: Wire, hub: ModelHub, pools: WorkerPools,
                 metrics: ServerMetrics, limits: ServerLimits, clock: Clock,
                 broadcast: CaptionBroadcast | None = None, admission: AdmissionControl | None = None) -> None:
        self.session_id, self.endpoint = session_id, endpoint
        self.broadcast = broadcast
        self.admission = admission
        self.load: SessionLoad | None = None  # set once admitted
        self._cpu_clock = ThreadCpuClock()
        self._rung = 0  # degradation rung of the stream (BudgetEvent.level)
        self.wire, self.hub, self.pools, self.metrics, self.limits, self.clock = wire, hub, pools, metrics, limits, clock
        self.outbox = Outbox(limits.outbound_high_water_bytes, limits.outbound_max_bytes)
        self.outbox.on_drain(self._send_pending_partial)
        self.config: SessionConfig | None = None
        self.stream: CaptionStream | None = None
        self.ring: AudioRing | None = None
        self._resampler: Resampler | None = None
        self._fed = 0  # input samples fed to the stream
        self._ops: collections.deque[_Op] = collections.deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._pending_partial: tuple[Caption, int] | None = None
        self._speech = SpeechQueue()
        self._tasks: list[asyncio.Task[None]] = []
        self._ended = asyncio.Event()
        self.close_requested = asyncio.Event()
        self._ring_high = 0
        self.closed = False

    # -- driven by the connection --------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._decode_loop(), name=f"decode-{self.session_id}"),
                       asyncio.create_task(self._speech_loop(), name=f"speech-{self.session_id}")]
        self.wire.start()
        self.handle(self.wire.events_received())

    def handle(self, events: list[ClientEvent]) -> None:
        """Apply events from the wire (synchronous; compute is scheduled, not done here)."""
        for ev in events:
            if isinstance(ev, AudioIn):
                self._on_audio(ev)
            elif isinstance(ev, StartSession):
                self._on_start(ev.config)
            elif isinstance(ev, Flush):
                self._enqueue(_Op("flush", self._pos(), reason=ev.reason))
            elif isinstance(ev, ClearAudio):
                self._enqueue(_Op("clear", self._pos()))
            elif isinstance(ev, EndOfAudio):
                self._enqueue(_Op("end", self._pos(), close_after=ev.close_after))
            elif isinstance(ev, Speak) and self._speech.full:
                self.wire.client_error(CapacityError(f"more than {MAX_WAITING_REQUESTS} speech requests waiting"),
                                       request_id=ev.request_id)
            elif isinstance(ev, Speak):
                self._speech.put(SpeechJob(ev, self.config))
            elif isinstance(ev, CancelSpeech):
                self._speech.cancel(ev.request_id)
            elif isinstance(ev, Subscribe):
                self._on_subscribe(ev.channel)
            elif isinstance(ev, ClientMistake):
                self.metrics.errors.inc(1, ev.error.code)
        self.pump()

    def pump(self) -> None:
        """Move what the wire wants to send into the outbox; close a client that reads far too slowly."""
        pump(self.wire, self.outbox, self.metrics, self.close_requested)

    @property
    def busy(self) -> bool:
        """Work remains for this client (audio to caption, operations, speech): it is not idle."""
        pending_audio = self.ring is not None and self.stream is not None and self._fed < self.ring.written
        return bool(self._ops) or pending_audio or self._speech.busy or self.outbox.queued_bytes > 0

    async def wait_for_room(self) -> None:
        """Back-pressure for the reader: returns once the inbound ring can take another message."""
        await self._room.wait()

    async def flush_finals(self, timeout_s: float) -> None:
        """End the audio now and wait (up to `timeout_s`) until the last final caption is queued."""
        if self.stream is None or self._ended.is_set() or self.closed:
            return
        if not any(op.kind == "end" for op in self._ops):
            self._enqueue(_Op("end", self._pos()))
        try:
            await asyncio.wait_for(self._ended.wait(), timeout_s)
        except asyncio.TimeoutError:
            log_event(log, logging.WARNING, "final flush timed out", session=self.session_id)

    async def shutdown(self, grace_s: float) -> None:
        """Server shutdown: flush finals, then close with 1001 once they are sent."""
        await self.flush_finals(grace_s)
        self.wire.close(CLOSE_GOING_AWAY, "server shutting down")
        self.pump()

    async def finish(self, grace_s: float = 0.0) -> None:
        """Stop the session's tasks (after flushing finals for up to `grace_s`); idempotent."""
        if grace_s > 0:
            await self.flush_finals(grace_s)
        if self.broadcast is not None:
            self.broadcast.leave(self)
        if self.admission is not None:
            self.admission.release(self.session_id)
        for stage in ("partial", "final", "pass"):
            self.metrics.session_latency.remove(self.session_id, stage)
        self.metrics.session_rung.remove(self.session_id)
        self.closed = True
        self._speech.cancel(None)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- audio and ordered operations ------------------------------------------------------------------
    def _pos(self) -> int:
        return self.ring.written if self.ring is not None else 0

    def _enqueue(self, op: _Op) -> None:
        self._ops.append(op)
        self._wake.set()

    def _admit(self) -> bool:
        """Admission control at the first start: False (and the client told, fatally) when refused."""
        if self.admission is None or self.load is not None:
            return True
        try:
            self.load = self.admission.admit(self.session_id)
        except CapacityError as e:
            self.metrics.sessions_refused.inc(1, "latency_budget")
            self.wire.fail(e)
            return False
        return True

    def _on_start(self, config: SessionConfig) -> None:
        if self.config is None and not self._admit():
            return
        if self.config is not None and config.channel != self.config.channel:
            self.wire.client_error(ConfigError("the channel cannot change during a session"))
            return
        if self.config is None and config.channel is not None:
            try:
                self._require_broadcast().claim(config.channel, self)
            except RtAudioError as e:
                self.wire.send_start_failed(e)
                return
        if self.config is not None:  # a settings update on a running session
            if (config.input_encoding, config.input_sample_rate_hz, config.input_channels) != (
                    self.config.input_encoding, self.config.input_sample_rate_hz, self.config.input_channels):
                self.wire.client_error(ConfigError("the audio format cannot change during a session"))
                return
            self._enqueue(_Op("restart", self._pos(), config=config))
            return
        rate = config.input_sample_rate_hz
        max_msg_samples = self.limits.max_message_bytes // config.input_frame_bytes
        self.ring = AudioRing(rate * self.limits.ring_capacity_ms // 1000 + max_msg_samples)
        self._ring_high = rate * self.limits.ring_capacity_ms // 1000
        self._resampler = Resampler(rate, STREAM_RATE_HZ) if rate != STREAM_RATE_HZ else None
        self.config = config
        self._enqueue(_Op("restart", 0, config=config))

    def _on_audio(self, ev: AudioIn) -> None:
        if self.ring is None:
            return  # the start failed; the client was told
        self.ring.write(ev.samples, self.clock.now_ns())
        if self.ring.available > self._ring_high:
            self._room.clear()
        self._wake.set()

    # -- the decode loop (one worker step in flight per session) ----------------------------------
    async def _decode_loop(self) -> None:
        try:
            await self._decode_until_ended()
        finally:
            self._ended.set()  # no more captions will come (the end, or the session failed)

    async def _decode_until_ended(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.ring is not None or self._ops:
                op = self._ops[0] if self._ops else None
                target = op.at if op is not None else self._pos()
                if self.stream is not None and self._fed < target and (op is None or op.kind != "clear"):
                    arrivals = self.ring.arrivals_since(self._fed) if self.ring is not None else []
                    res = await self._run_step(self._feed_step, target, arrivals)
                    if res is None:
                        return
                    self._publish(res)
                    continue
                if op is None:
                    break
                self._ops.popleft()
                if not await self._apply(op) or op.kind == "end":
                    return

    async def _run_step(self, fn: Callable[..., _StepResult], *args: Any) -> _StepResult | None:
        """Run one step on a decode worker; None if it failed (the session is then closed)."""
        submitted = self.clock.now_ns()
        try:
            return await self.pools.run_decode(fn, submitted, *args)
        except Exception as e:
            if not isinstance(e, RtAudioError):
                log.error("decode step failed", exc_info=True)
            self._fatal(e)
            return None
        finally:
            if self.ring is not None and self.ring.available <= self._ring_high:
                self._room.set()

    def _fatal(self, error: BaseException) -> None:
        self.metrics.errors.inc(1, getattr(error, "code", "internal_error"))
        self.wire.fail(error)
        self.pump()

    def _feed_step(self, submitted_ns: int, target: int, arrivals: list[tuple[int, int]]) -> _StepResult:
        """Worker thread: feed up to MAX_STEP_MS of ring audio (in partial-cadence chunks) and decode.
        `arrivals`: the ring's (end sample, arrival ns) past `_fed`, so lag counts from the socket."""
        assert self.ring is not None and self.stream is not None and self.config is not None
        start, cpu0 = self.clock.now_ns(), self._cpu_clock.now_ns()
        res = _StepResult(queue_s=(start - submitted_ns) / 1e9)
        ends = [end for end, _ in arrivals]
        if arrivals:
            res.stages.append(("ring_wait", max(0, start - arrivals[0][1]) / 1e9))
        rate = self.config.input_sample_rate_hz
        chunk = max(1, rate // 10)  # 100 ms: VAD and partial passes see the audio as a live stream would
        budget = min(target - self._fed, rate * MAX_STEP_MS // 1000)
        if budget <= rate * LIVE_BACKLOG_MS // 1000:
            chunk = budget  # a live client's backlog (what came during the last step): the pass hears all of it
        resample_ns = 0
        while budget > 0:
            x = self.ring.read(min(chunk, budget))
            budget -= len(x)
            t0 = self.clock.now_ns()
            y = self._resampler.push(x) if self._resampler is not None else x
            resample_ns += self.clock.now_ns() - t0
            i = bisect.bisect_left(ends, self._fed + len(x))
            self.stream.accept_waveform(y, STREAM_RATE_HZ, arrivals[i][1] if i < len(arrivals) else None)
            self._fed += len(x)
            res.audio_samples += len(x)
            while self.stream.is_ready():
                res.items += [(item, self._fed) for item in self.stream.decode()]
        if self._resampler is not None:
            res.stages.append(("resample", resample_ns / 1e9))
        res.stages += self.stream.stage_times()
        res.done_ns = self.clock.now_ns()
        res.compute_s = (res.done_ns - start) / 1e9
        res.cpu_s = (self._cpu_clock.now_ns() - cpu0) / 1e9
        return res

    def _final_step(self, submitted_ns: int, op: _Op) -> _StepResult:
        """Worker thread: apply flush / clear / end / restart to the stream."""
        kind, config = op.kind, op.config
        start = self.clock.now_ns()
        res = _StepResult(queue_s=(start - submitted_ns) / 1e9)
        if kind == "clear" and self.ring is not None and op.at > self._fed:
            self.ring.read(op.at - self._fed)  # dropped, never captioned
            self._fed = op.at
        if self.stream is not None:
            if kind == "end":
                if self._resampler is not None:
                    self.stream.accept_waveform(self._resampler.flush(), STREAM_RATE_HZ)
                self.stream.input_finished()
                res.items += [(item, self._fed) for item in self.stream.finalize()]
            elif kind == "clear":
                self.stream.reset()
            else:  # flush, or restart of a running stream
                res.items += [(item, self._fed) for item in self.stream.finalize()]
            res.stages += self.stream.stage_times()
        if kind == "restart" and config is not None:
            first_id = self.stream.next_segment_id if self.stream is not None else 0
            self.stream = self.hub.open_stream(config, self._stream_offset(), first_id)
        res.compute_s = (self.clock.now_ns() - start) / 1e9
        return res

    def _stream_offset(self) -> int:
        rate = self.config.input_sample_rate_hz if self.config else STREAM_RATE_HZ
        return self._fed * STREAM_RATE_HZ // rate

    async def _apply(self, op: _Op) -> bool:
        """Apply an ordered operation; False if the session failed."""
        if op.kind == "restart" and op.config is not None:
            try:
                self.hub.check(op.config)
            except RtAudioError as e:
                self._start_failed(e)
                return True
        res = await self._run_step(self._final_step, op)
        if res is None:
            return False
        self._publish(res)
        if op.kind == "restart" and op.config is not None:
            self.config = op.config
            limits = {"max_message_bytes": self.limits.max_message_bytes,
                      "max_messages_per_s": self.limits.max_messages_per_s,
                      "idle_timeout_s": self.limits.idle_timeout_s}
            self.wire.send_session_started(SessionInfo(self.session_id, op.config, limits))
        elif op.kind == "flush":
            self.wire.send_flushed(op.reason)
        elif op.kind == "clear":
            self.wire.send_cleared()
        elif op.kind == "end":
            rate = self.config.input_sample_rate_hz if self.config else STREAM_RATE_HZ
            self.wire.send_audio_ended(self._fed / rate)
            if op.close_after:
                self.wire.close(1000, "done")
            self._ended.set()
        self.pump()
        return True

    def _start_failed(self, error: RtAudioError) -> None:
        if self.stream is None:  # the first start: forget the buffered audio, the client may retry
            if self.broadcast is not None:
                self.broadcast.leave(self)
            self.ring, self.config, self._fed = None, None, 0
            self._ops.clear()
        self.metrics.errors.inc(1, error.code)
        self.wire.send_start_failed(error)
        self.pump()

    # -- rendering ------------------------------------------------------------------------------------
    def _publish(self, res: _StepResult) -> None:
        rate = self.config.input_sample_rate_hz if self.config else STREAM_RATE_HZ
        self.metrics.latency.observe(res.queue_s, "queue")
        if res.audio_samples:
            audio_s = res.audio_samples / rate
            self.metrics.audio_seconds.inc(audio_s)
            self.metrics.decode_seconds.inc(res.compute_s)
            self.metrics.latency.observe(res.compute_s, "decode")
            self.metrics.rtf.set(res.compute_s / audio_s)
            if self.admission is not None:
                self.admission.observe(audio_s, res.cpu_s)
                self.metrics.admission_cost.set(self.admission.cost)
                self.metrics.admission_capacity.set(self.admission.capacity_sessions)
        self._record_stages(res)
        for item, decoded in res.items:
            if isinstance(item, BudgetEvent):
                self._on_budget(item)
            elif isinstance(item, VadEvent):
                self.wire.send_vad(item)
            elif item.is_final or not self.outbox.congested:
                if item.is_final and self._pending_partial and self._pending_partial[0].segment_id == item.segment_id:
                    self._pending_partial = None
                    self.metrics.drops.inc(1, "partial")
                self._send_caption(item, decoded)
            elif self.config is None or self.config.partials:
                if self._pending_partial is not None:
                    self.metrics.drops.inc(1, "partial")
                self._pending_partial = (item, decoded)
        self.pump()

    def _send_caption(self, caption: Caption, decoded: int) -> None:
        if not caption.is_final and self.config is not None and not self.config.partials:
            return
        rate = self.config.input_sample_rate_hz if self.config else STREAM_RATE_HZ
        arrival = self.ring.arrival_ns(decoded) if self.ring is not None else None
        latency_ms = (self.clock.now_ns() - arrival) / 1e6 if arrival is not None else 0.0
        timing = CaptionTiming(decoded / rate, latency_ms)
        self.wire.send_caption(caption, timing)
        if self.broadcast is not None and self.config is not None and self.config.channel is not None:
            self.broadcast.publish(self.config.channel, caption, timing)
        stage = "final" if caption.is_final else "partial"
        self.metrics.captions.inc(1, caption.stability.value)
        self.metrics.latency.observe(latency_ms / 1000, stage)
        self.metrics.session_latency.observe(latency_ms / 1000, self.session_id, stage)

    def _record_stages(self, res: _StepResult) -> None:
        """Stage times of a step into the global (and, for passes, per-session) histograms."""
        for stage, seconds in res.stages:
            if stage in ("partial", "final"):
                continue  # the stream's own view; the server measures these up to the send (_send_caption)
            self.metrics.latency.observe(seconds, stage)
            if stage == "pass":
                self.metrics.session_latency.observe(seconds, self.session_id, stage)
        if res.done_ns and any(isinstance(item, Caption) for item, _ in res.items):
            self.metrics.latency.observe((self.clock.now_ns() - res.done_ns) / 1e9, "send")

    def _on_budget(self, event: BudgetEvent) -> None:
        """The stream stepped on its degradation ladder: tell the client, admission and metrics."""
        direction = "down" if event.level > self._rung else "up"
        self._rung = event.level
        if self.load is not None:
            self.load.rung = event.level
        self.metrics.session_rung.set(event.level, self.session_id)
        self.metrics.budget_steps.inc(1, direction, event.rung)
        self.wire.send_budget(event)

    def _send_pending_partial(self) -> None:
        if self._pending_partial is not None:
            caption, decoded = self._pending_partial
            self._pending_partial = None
            self._send_caption(caption, decoded)
            self.pump()

    # -- caption broadcast ---------------------------------------------------------------------------
    def _require_broadcast(self) -> CaptionBroadcast:
        if self.broadcast is None:
            raise ConfigError("this server does not broadcast captions")
        return self.broadcast

    def _on_subscribe(self, channel: str) -> None:
        try:
            replay = self._require_broadcast().subscribe(channel, self)
        except RtAudioError as e:
            self.wire.client_error(e)
            return
        for caption, timing in replay:
            self.wire.send_caption(caption, timing)

    def deliver_caption(self, caption: Caption, timing: CaptionTiming) -> None:
        """A caption of the channel this session views; partials give way when this viewer reads slowly."""
        if self.closed or self.wire.close_code is not None:
            return
        if not caption.is_final and self.outbox.congested:
            self.metrics.drops.inc(1, "partial")
            return
        self.wire.send_caption(caption, timing)
        self.pump()

    # -- speech ------------------------------------------------------------------------------------
    async def _speech_loop(self) -> None:
        while True:
            job = await self._speech.get()
            if job.cancelled:
                self.wire.send_speech_cancelled(job.request.request_id)
                self.pump()
                continue
            self._speech.running = job
            try:
                await run_speech_job(job, self)
            finally:
                self._speech.running = None

