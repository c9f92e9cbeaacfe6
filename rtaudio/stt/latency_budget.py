"""Latency budgets of a live stream, enforced: a degradation ladder instead of accumulating lag.

`LatencyBudgetConfig` holds the targets (partial caption <= 600 ms after its audio arrived, final
<= 1.5 s after the end of speech, first TTS audio <= 150 ms, audio callback work <= 50 % of its
period) and the ladder's settings. `LatencyBudget` is pure bookkeeping over the injected clock's
measures, fed by the stream:
- the output lag of each partial (decode end - arrival of the newest audio it used) and of each
  endpoint final (decode end - arrival of the end of speech), each as a ratio to its budget;
- the backlog when a decode starts (age of the oldest unprocessed audio): a partial is skipped
  outright while it exceeds `max_lag_s` (VAD and finals still run) - the backstop.

The ladder, in this order (`Rung`); one step down when the moving average of the lag ratio exceeds
1 and the current rung has been held for `hold_passes` observations; one step up after
`recover_passes` observations in a row below `recover_fraction` (hysteresis, so it does not flap):
  1 FEWER_PARTIALS  the partial cadence is multiplied by `interval_factor`;
  2 GREEDY_SHORT    greedy everywhere (final re-pass beam 1) and the token budget x `token_factor`;
  3 SHORT_WINDOW    the window is cut at committed words `window_factor` sooner; no context audio;
  4 SMALLER_MODEL   the stream decodes with the fallback recognizer (only when one is configured).
Each step is a `BudgetEvent`. The partial cadence also never goes below the measured pass time.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from rtaudio.errors import ConfigError
from rtaudio.log import get_logger, log_event

log = get_logger("stt.budget")


class Rung(enum.IntEnum):
    """The degradation ladder, cheapest loss of quality first."""

    FULL = 0
    FEWER_PARTIALS = 1
    GREEDY_SHORT = 2
    SHORT_WINDOW = 3
    SMALLER_MODEL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class LatencyBudgetConfig:
    """Latency targets (end to end and per stage) and how the ladder moves. Defaults are the engine's
    promises on a machine that keeps up; `rtaudio bench latency` reports against them."""

    partial_ms: int = 600
    """A partial caption is due this long after the newest audio it shows arrived."""
    final_ms: int = 1500
    """A final caption at a VAD endpoint is due this long after the end of speech arrived (includes
    the VAD's silence wait, `vad.min_silence_ms`)."""
    tts_first_audio_ms: int = 150
    """Speech request to its first audio chunk."""
    callback_fraction: float = 0.5
    """Work done when a block of audio arrives (copy + resample: what an audio callback may do) may
    take at most this fraction of the block's duration."""
    pass_ms: int = 400
    """One Whisper pass (log-mel + encoder + decoder + word alignment): the per-stage target that
    leaves room for the queue and the send within `partial_ms`."""
    hold_passes: int = 3
    """Lag observations at a rung before the next step down (lets a step take effect first)."""
    recover_fraction: float = 0.5
    """Step back up only while the averaged lag stays below this fraction of its budget..."""
    recover_passes: int = 8
    """... for this many observations in a row."""
    interval_factor: float = 2.0
    """Rung 1: partial cadence multiplier."""
    token_factor: float = 0.75
    """Rung 2: token budget multiplier (shorter decoding; loops are cut sooner)."""
    window_factor: float = 0.5
    """Rung 3: `trim_window_ms` multiplier (shorter windows encode and decode faster)."""
    fallback_model: str | None = None
    """Rung 4: a smaller recognizer model to switch to (None: the ladder stops at rung 3)."""

    def __post_init__(self) -> None:
        if min(self.partial_ms, self.final_ms, self.tts_first_audio_ms, self.pass_ms) <= 0:
            raise ConfigError("latency budgets (partial_ms, final_ms, tts_first_audio_ms, pass_ms) must be > 0")
        if not 0 < self.callback_fraction <= 1 or not 0 < self.recover_fraction < 1:
            raise ConfigError("callback_fraction must be in (0, 1], recover_fraction in (0, 1)")
        if self.hold_passes < 1 or self.recover_passes < 1:
            raise ConfigError("hold_passes and recover_passes must be >= 1")
        if self.interval_factor < 1 or not 0 < self.token_factor <= 1 or not 0 < self.window_factor <= 1:
            raise ConfigError("need interval_factor >= 1, token_factor and window_factor in (0, 1]")

    def stage_budgets_ms(self, block_ms: float | None = None) -> dict[str, float]:
        """Per-stage targets by stage name (rtaudio.latency); `block_ms` sizes the callback budget."""
        out = {"partial": float(self.partial_ms), "final": float(self.final_ms),
               "tts_first_chunk": float(self.tts_first_audio_ms), "pass": float(self.pass_ms)}
        if block_ms is not None:
            out["accept"] = self.callback_fraction * block_ms
        return out


@dataclass(frozen=True)
class BudgetEvent:
    """The stream stepped down the ladder (`degraded`, it fell behind) or back up (it caught up)."""

    degraded: bool
    """True while any rung above FULL is in force."""
    lag_s: float
    """Averaged lag when the step happened, in seconds of the partial budget (ratio x partial_ms)."""
    interval_ms: int
    """The partial cadence from now on."""
    skipped_partials: int
    """Partials skipped so far in this stream."""
    level: int = 0
    """The rung now in force (`Rung`)."""
    rung: str = "full"
    """Its name: full, fewer_partials, greedy_short, short_window, smaller_model."""
    budget_ms: int = 0
    """The partial budget the lag was measured against."""


class LatencyBudget:
    """Pure bookkeeping of pass times and lag; the stream asks it when a partial may run and what rung is in force."""

    def __init__(self, config: LatencyBudgetConfig, interval_s: float, max_lag_s: float,
                 max_rung: Rung = Rung.SHORT_WINDOW) -> None:
        self.config = config
        self.base_interval_s = interval_s
        self.max_lag_s = max_lag_s
        self.max_rung = max_rung
        self.reset()

    def reset(self) -> None:
        self.rung = Rung.FULL
        self.pass_s = 0.0
        """Moving average of a partial pass' compute time."""
        self.ratio_avg = 0.0
        """Moving average of lag / budget."""
        self.skipped = 0
        self._since_step = 0
        self._calm = 0
        self._events: list[BudgetEvent] = []

    @property
    def degraded(self) -> bool:
        return self.rung > Rung.FULL

    @property
    def lag_avg_s(self) -> float:
        return self.ratio_avg * self.config.partial_ms / 1000

    @property
    def interval_s(self) -> float:
        """The partial cadence: the configured one (x `interval_factor` from rung 1), stretched to what a pass costs."""
        base = self.base_interval_s * (self.config.interval_factor if self.degraded else 1.0)
        return max(base, (1.5 if self.degraded else 1.0) * self.pass_s)

    def allow_partial(self, backlog_s: float, live: bool = True) -> bool:
        """False (and counted) while audio has waited longer than `max_lag_s`: catch up first. The
        backlog counts as lag only for `live` input (not for a file pushed faster than real time)."""
        if backlog_s <= self.max_lag_s:
            return True
        self.skipped += 1
        if live:
            self.observe_lag(backlog_s)
        return False

    def observe_pass(self, compute_s: float) -> None:
        self.pass_s = compute_s if self.pass_s == 0 else 0.7 * self.pass_s + 0.3 * compute_s

    def observe_lag(self, lag_s: float, budget_s: float | None = None) -> None:
        """One lag measure against its budget (default: the partial budget); may move one rung."""
        ratio = lag_s / (budget_s if budget_s is not None else self.config.partial_ms / 1000)
        self.ratio_avg = 0.7 * self.ratio_avg + 0.3 * ratio  # from 0: one slow outlier alone does not step
        self._since_step += 1
        cfg = self.config
        if self.ratio_avg > 1.0:
            self._calm = 0
            held = 1 if self.rung == Rung.FULL else cfg.hold_passes  # the first step needs no wait
            if self.rung < self.max_rung and self._since_step >= held:
                self._step(Rung(self.rung + 1))
        elif self.ratio_avg < cfg.recover_fraction:
            self._calm += 1
            if self.rung > Rung.FULL and self._calm >= cfg.recover_passes:
                self._step(Rung(self.rung - 1))
        else:
            self._calm = 0

    def _step(self, rung: Rung) -> None:
        down = rung > self.rung
        self.rung = rung
        self._since_step = 0
        self._calm = 0
        ev = BudgetEvent(self.degraded, round(self.lag_avg_s, 3), int(round(1000 * self.interval_s)), self.skipped,
                         int(rung), rung.label, self.config.partial_ms)
        self._events.append(ev)
        log_event(log, logging.WARNING if down else logging.INFO,
                  "over latency budget: stepping down" if down else "within budget: stepping up",
                  rung=ev.rung, lag_s=ev.lag_s, interval_ms=ev.interval_ms, skipped_partials=ev.skipped_partials)

    def events(self) -> list[BudgetEvent]:
        out, self._events = self._events, []
        return out
