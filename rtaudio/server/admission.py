"""Admission control: refuse a new caption session when admitting it would break the running ones' budgets.

Capacity is measured, not guessed. Every decode step reports the CPU seconds its worker thread
spent (`ThreadCpuClock`) and the seconds of audio it captioned; over the last `window_audio_s` of
audio of all sessions that gives `cost`, the CPU seconds one live session needs per second of
audio (it speaks and pauses like the sessions that ran). The machine supplies `capacity` CPU
seconds per second: min(decode workers, CPU cores) unless configured. A session asking to start
(`session.start`, `session.update`, or a Deepgram connection) is admitted when both hold:
  - load:    (running + 1) x cost <= headroom x capacity;
  - budgets: no running session is degraded to `refuse_at_rung` or further (it already pays for
    its latency budget with quality; another session would push it down the ladder).
Before `min_audio_s` of audio has been measured, `prior_cost` stands in for `cost`. A refusal is
the error `over_capacity` (fatal, close 1013) with the figures in its message; see PROTOCOL.md.
Limits of the measure: thread CPU time misses onnxruntime's intra-op pool threads (recognizer
threads > 1) and does not see other programs taking the cores; the budgets rule covers both, since
sessions that do not get their CPU step down the ladder and then block admission.
"""

from __future__ import annotations

import collections
import logging
import math
import os
from dataclasses import dataclass

from rtaudio.errors import CapacityError, ConfigError
from rtaudio.log import get_logger, log_event
from rtaudio.stt.latency_budget import Rung

log = get_logger("rtaudio.server.admission")


@dataclass(frozen=True)
class AdmissionConfig:
    """When the server takes one more live caption session."""

    enabled: bool = True
    headroom: float = 0.8
    """Share of the capacity that sessions may use; the rest absorbs bursts (two finals at once)."""
    capacity_cpus: float | None = None
    """CPU seconds per second available to decode workers; None: min(decode_workers, CPU cores)."""
    prior_cost: float = 0.3
    """CPU seconds per audio second of one session until enough has been measured (tiny.en with
    partials every 500 ms on one core of a 2020s x86 machine is 0.2-0.3)."""
    window_audio_s: float = 120.0
    """The cost is measured over this much recent audio (all sessions together)."""
    min_audio_s: float = 5.0
    """Measured cost is trusted once this much audio has been captioned."""
    refuse_at_rung: int | None = int(Rung.SHORT_WINDOW)
    """Refuse while a running session is at this rung of the degradation ladder or further (None: never)."""

    def __post_init__(self) -> None:
        if not 0 < self.headroom <= 1:
            raise ConfigError("admission headroom must be in (0, 1]")
        if self.capacity_cpus is not None and self.capacity_cpus <= 0:
            raise ConfigError("admission capacity_cpus must be > 0")
        if self.prior_cost <= 0 or self.window_audio_s <= 0 or self.min_audio_s < 0:
            raise ConfigError("admission prior_cost and window_audio_s must be > 0, min_audio_s >= 0")
        if self.refuse_at_rung is not None and not 1 <= self.refuse_at_rung <= max(Rung):
            raise ConfigError(f"refuse_at_rung must be a rung in [1, {int(max(Rung))}] or None")


@dataclass
class SessionLoad:
    """What admission knows of one admitted session (updated by the session on the event loop)."""

    session_id: str
    rung: int = 0


class AdmissionControl:
    """Measures the cost of a live session and decides admissions. Event-loop only (no locks)."""

    def __init__(self, config: AdmissionConfig, decode_workers: int, cpus: int | None = None) -> None:
        self.config = config
        self.capacity = config.capacity_cpus or float(min(decode_workers, cpus or os.cpu_count() or 1))
        self._steps: collections.deque[tuple[float, float]] = collections.deque()  # (audio s, cpu s)
        self._audio_s = 0.0
        self._cpu_s = 0.0
        self.sessions: dict[str, SessionLoad] = {}
        self.refused = 0

    # -- measuring ------------------------------------------------------------------------------------
    def observe(self, audio_s: float, cpu_s: float) -> None:
        """One decode step of any session: `cpu_s` CPU seconds for `audio_s` seconds of audio."""
        if audio_s <= 0:
            return
        self._steps.append((audio_s, cpu_s))
        self._audio_s += audio_s
        self._cpu_s += cpu_s
        while len(self._steps) > 1 and self._audio_s - self._steps[0][0] >= self.config.window_audio_s:
            a, c = self._steps.popleft()
            self._audio_s -= a
            self._cpu_s -= c

    @property
    def measured(self) -> bool:
        return self._audio_s >= self.config.min_audio_s

    @property
    def cost(self) -> float:
        """CPU seconds per audio second of one session (measured, else the prior)."""
        return max(0.0, self._cpu_s) / self._audio_s if self.measured else self.config.prior_cost

    @property
    def capacity_sessions(self) -> int:
        """How many live sessions the measured cost allows."""
        return math.floor(self.config.headroom * self.capacity / max(self.cost, 1e-6) + 1e-9)

    # -- deciding -------------------------------------------------------------------------------------
    def refusal(self) -> str | None:
        """Why one more session cannot start now (None: it can)."""
        if not self.config.enabled:
            return None
        running = len(self.sessions)
        cfg = self.config
        if cfg.refuse_at_rung is not None:
            behind = [s for s in self.sessions.values() if s.rung >= cfg.refuse_at_rung]
            if behind:
                worst = max(s.rung for s in behind)
                return (f"server at capacity: {len(behind)} of {running} running session(s) already degraded to "
                        f"rung {Rung(worst).label} ({worst}) to keep their latency budget; retry later")
        need = (running + 1) * self.cost
        if need > cfg.headroom * self.capacity + 1e-9:
            source = "measured" if self.measured else "assumed (nothing measured yet)"
            return (f"server at capacity: {running} live session(s) at {self.cost:.2f} CPU-s per audio-s each "
                    f"({source}); one more needs {need:.2f} of {cfg.headroom * self.capacity:.2f} CPU-s/s "
                    f"({cfg.headroom:.0%} of {self.capacity:g} CPUs): at most {self.capacity_sessions} sessions; "
                    "retry later")
        return None

    def admit(self, session_id: str) -> SessionLoad:
        """Register a starting session, or raise CapacityError (code over_capacity) saying why not."""
        if session_id in self.sessions:
            return self.sessions[session_id]
        why = self.refusal()
        if why is not None:
            self.refused += 1
            log_event(log, logging.WARNING, "session refused", session=session_id, reason=why)
            raise CapacityError(why)
        load = SessionLoad(session_id)
        self.sessions[session_id] = load
        return load

    def release(self, session_id: str) -> None:
        self.sessions.pop(session_id, None)
