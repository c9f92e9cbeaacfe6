"""Speech requests of a session: synthesize on a TTS worker, chunk by chunk, as the client keeps up.

Requests are answered one at a time in arrival order (so binary audio frames are unambiguous).
Each chunk is fetched only once the outbox is below its high-water mark: a slow reader slows its own
synthesis instead of growing server memory. Cancel takes effect before the next chunk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rtaudio.dsp.resample import Resampler
from rtaudio.errors import RtAudioError
from rtaudio.log import get_logger, log_event
from rtaudio.server.config import SessionConfig
from rtaudio.server.events import Speak, SpeechDone

if TYPE_CHECKING:
    from rtaudio.server.session import Session

log = get_logger("rtaudio.server.speech")

MAX_WAITING_REQUESTS = 16  # per session: more is refused (over_capacity, non-fatal), so the queue stays bounded


@dataclass
class SpeechJob:
    request: Speak
    config: SessionConfig | None
    cancelled: bool = False


class SpeechQueue:
    """Speech requests of one session, in order; `cancel` reaches queued and running ones."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[SpeechJob] = asyncio.Queue()
        self._waiting: list[SpeechJob] = []
        self.running: SpeechJob | None = None

    @property
    def busy(self) -> bool:
        return bool(self._waiting) or self.running is not None

    @property
    def full(self) -> bool:
        return len(self._waiting) >= MAX_WAITING_REQUESTS

    def put(self, job: SpeechJob) -> None:
        self._waiting.append(job)
        self._queue.put_nowait(job)

    async def get(self) -> SpeechJob:
        job = await self._queue.get()
        self._waiting.remove(job)
        return job

    def cancel(self, request_id: str | None) -> None:
        """Cancel one request (or all when None) before its next chunk."""
        jobs = self._waiting + ([self.running] if self.running is not None else [])
        for job in jobs:
            if request_id is None or job.request.request_id == request_id:
                job.cancelled = True


def _next_chunk(it: Iterator[np.ndarray]) -> np.ndarray | None:
    return next(it, None)


async def run_speech_job(job: SpeechJob, session: Session) -> None:
    """Stream one request's audio through the session's wire."""
    wire, req = session.wire, job.request
    config = job.config or session.config or SessionConfig()
    t0 = session.clock.now_ns()
    chunks, samples, first_ms = 0, 0, 0.0
    try:
        voice_name = req.voice or config.tts_voice
        session.hub.check_voice(voice_name)
        voice = await session.pools.run_tts(session.hub.voice, voice_name)
        out_rate = config.tts_sample_rate_hz or voice.sample_rate
        resampler = Resampler(voice.sample_rate, out_rate) if out_rate != voice.sample_rate else None
        from rtaudio.tts.config import SynthesisConfig

        it = await session.pools.run_tts(voice.stream, req.text, SynthesisConfig(speed=req.speed))
        wire.send_speech_started(req.request_id, out_rate, config.tts_encoding)
        session.pump()
        while not job.cancelled:
            await session.outbox.wait_below_high_water()
            chunk = await session.pools.run_tts(_next_chunk, it)
            last = chunk is None
            if last:
                chunk = resampler.flush() if resampler is not None else None
            elif resampler is not None and chunk is not None:
                chunk = resampler.push(chunk)
            if chunk is not None and len(chunk) and not job.cancelled:
                if chunks == 0:
                    first_ms = (session.clock.now_ns() - t0) / 1e6
                    session.metrics.latency.observe(first_ms / 1000, "tts_first_chunk")
                wire.send_speech_audio(req.request_id, chunk, config.tts_encoding)
                chunks += 1
                samples += len(chunk)
                session.pump()
            if last:
                break
        if job.cancelled:
            wire.send_speech_cancelled(req.request_id)
        else:
            session.metrics.tts_seconds.inc(samples / out_rate)
            wire.send_speech_done(SpeechDone(req.request_id, samples / out_rate, chunks, first_ms))
    except RtAudioError as e:
        session.metrics.errors.inc(1, e.code)
        wire.client_error(e, request_id=req.request_id)
    except Exception as e:  # a synthesis bug fails this request, not the session or the server
        log_event(log, logging.ERROR, "speech request failed", session=session.session_id, error=repr(e))
        session.metrics.errors.inc(1, "internal_error")
        wire.send_error(e, fatal=False, request_id=req.request_id)
    finally:
        session.pump()
