"""Bounded lag for a live stream: when audio outruns compute, thin out partials instead of falling behind.

Two measures feed it (seconds on the injected clock): the age of the oldest audio not yet processed
when a decode starts (the backlog), and the output lag of each partial (decode end - arrival of the
newest audio it used). Policy:
- the partial cadence is never shorter than the moving average of a pass (x1.5 while degraded);
- a partial is skipped outright while the backlog exceeds the budget (VAD and finals still run);
- `degraded` is entered when the average lag exceeds the budget and left below half of it; the
  stream then also trims its window sooner (cheaper passes). Each switch is a `BudgetEvent`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from rtaudio.log import get_logger, log_event

log = get_logger("stt.budget")


@dataclass(frozen=True)
class BudgetEvent:
    """The stream fell behind (`degraded`) and thins out partials, or caught up again."""

    degraded: bool
    lag_s: float
    """Moving average of the output lag when the switch happened."""
    interval_ms: int
    """The partial cadence from now on."""
    skipped_partials: int
    """Partials skipped so far in this stream."""


class LatencyBudget:
    """Pure bookkeeping of pass times and lag; the stream asks it when a partial may run."""

    def __init__(self, max_lag_s: float, interval_s: float) -> None:
        self.max_lag_s = max_lag_s
        self.base_interval_s = interval_s
        self.reset()

    def reset(self) -> None:
        self.degraded = False
        self.pass_s = 0.0
        """Moving average of a partial pass' compute time."""
        self.lag_avg_s = 0.0
        self.skipped = 0
        self._events: list[BudgetEvent] = []

    @property
    def interval_s(self) -> float:
        """The partial cadence: the configured one, stretched to what a pass costs."""
        return max(self.base_interval_s, (1.5 if self.degraded else 1.0) * self.pass_s)

    def allow_partial(self, backlog_s: float) -> bool:
        """False (and counted) while audio has waited longer than the budget: catch up first."""
        if backlog_s <= self.max_lag_s:
            return True
        self.skipped += 1
        self.observe_lag(backlog_s)
        return False

    def observe_pass(self, compute_s: float) -> None:
        self.pass_s = compute_s if self.pass_s == 0 else 0.7 * self.pass_s + 0.3 * compute_s

    def observe_lag(self, lag_s: float) -> None:
        self.lag_avg_s = lag_s if self.lag_avg_s == 0 else 0.7 * self.lag_avg_s + 0.3 * lag_s
        if self.lag_avg_s > self.max_lag_s and not self.degraded:
            self._switch(True)
        elif self.lag_avg_s < self.max_lag_s / 2 and self.degraded:
            self._switch(False)

    def _switch(self, degraded: bool) -> None:
        self.degraded = degraded
        ev = BudgetEvent(degraded, round(self.lag_avg_s, 3), int(round(1000 * self.interval_s)), self.skipped)
        self._events.append(ev)
        log_event(log, logging.WARNING if degraded else logging.INFO,
                  "falling behind: thinning partials" if degraded else "caught up", lag_s=ev.lag_s,
                  interval_ms=ev.interval_ms, skipped_partials=ev.skipped_partials)

    def events(self) -> list[BudgetEvent]:
        out, self._events = self._events, []
        return out
