"""Latency budgets: the degradation ladder (pure), stage records, and a real recognizer made slow.

The stream tests run the real Whisper tiny.en and Silero VAD on real speech in pure virtual time
(`VirtualClock` over a frozen source): compute costs nothing, audio arrives at real-time pace, and a
`DelayedRecognizer` adds a fixed time to every pass. So the lag, the ladder's steps and their order
depend only on the injected delay, never on how busy the test machine is.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rtaudio.errors import ConfigError, ModelNotFetchedError
from rtaudio.frames import Caption
from rtaudio.io.files import read_audio
from rtaudio.latency import DelayedRecognizer, StageRecorder, format_summary, summarize
from rtaudio.stt.latency_budget import BudgetEvent, LatencyBudget, LatencyBudgetConfig, Rung
from rtaudio.stt.pacing import VirtualClock
from rtaudio.stt.streaming import StreamingConfig, StreamingRecognizer

CFG = LatencyBudgetConfig(partial_ms=600, hold_passes=3, recover_fraction=0.5, recover_passes=4)


def _budget(max_rung: Rung = Rung.SHORT_WINDOW) -> LatencyBudget:
    return LatencyBudget(CFG, interval_s=0.25, max_lag_s=1.0, max_rung=max_rung)


# ------------------------------------------------------------------------------------- pure ladder
def test_ladder_steps_down_in_order_with_a_hold_and_stops_at_its_last_rung() -> None:
    b = _budget()
    b.observe_lag(0.3)
    b.observe_lag(1.5)  # one slow pass alone is not a trend
    assert b.rung is Rung.FULL and b.events() == []
    levels = []
    for _ in range(12):
        b.observe_lag(1.5)
        levels += [e.level for e in b.events()]
    assert levels == [1, 2, 3]  # FEWER_PARTIALS, GREEDY_SHORT, SHORT_WINDOW; no fallback model: stops
    assert b.rung is Rung.SHORT_WINDOW and b.degraded
    b2 = _budget(Rung.SMALLER_MODEL)
    steps = []
    for _ in range(3 * CFG.hold_passes + 2):
        b2.observe_lag(1.5)
        steps += b2.events()
    assert [e.rung for e in steps] == ["fewer_partials", "greedy_short", "short_window", "smaller_model"]
    assert all(e.degraded and e.budget_ms == 600 and e.lag_s > 0.6 for e in steps)


def test_ladder_recovers_in_reverse_order_with_hysteresis() -> None:
    b = _budget()
    for _ in range(10):
        b.observe_lag(2.0)
    b.events()
    assert b.rung is Rung.SHORT_WINDOW
    for _ in range(30):  # between half and the whole budget: neither down nor up
        b.observe_lag(0.45)
    assert b.rung is Rung.SHORT_WINDOW and b.events() == []
    levels = []
    for _ in range(40):
        b.observe_lag(0.05)
        levels += [e.level for e in b.events()]
    assert levels == [2, 1, 0]
    assert not b.degraded
    # a calm streak interrupted by one slow pass starts again
    for _ in range(3):
        b.observe_lag(2.0)
    b.events()
    assert b.rung is Rung.FEWER_PARTIALS


def test_cadence_stretches_to_the_pass_time_and_doubles_when_degraded() -> None:
    b = _budget()
    assert b.interval_s == 0.25
    for _ in range(10):
        b.observe_pass(0.6)
    assert 0.55 < b.interval_s <= 0.6
    b.observe_lag(5.0)
    assert b.rung is Rung.FEWER_PARTIALS
    assert b.interval_s == pytest.approx(max(0.25 * CFG.interval_factor, 1.5 * b.pass_s))
    (ev,) = b.events()
    assert ev.interval_ms == round(1000 * b.interval_s)


def test_backlog_skips_partials_and_only_live_backlog_counts_as_lag() -> None:
    b = _budget()
    assert b.allow_partial(0.5)
    assert not b.allow_partial(3.0, live=False) and not b.allow_partial(3.0, live=False)
    assert b.skipped == 2 and not b.degraded  # a file pushed fast: its backlog is the sender's
    assert not b.allow_partial(3.0)
    assert b.degraded
    b.reset()
    assert b.skipped == 0 and not b.degraded and b.rung is Rung.FULL


def test_final_lag_is_measured_against_its_own_budget() -> None:
    b = _budget()
    for _ in range(10):
        b.observe_lag(1.2, budget_s=CFG.final_ms / 1000)  # 1.2 s < 1.5 s: within budget
    assert not b.degraded
    for _ in range(3):
        b.observe_lag(2.5, budget_s=CFG.final_ms / 1000)
    assert b.degraded


@pytest.mark.parametrize("kwargs", [{"partial_ms": 0}, {"callback_fraction": 0}, {"recover_fraction": 1.0},
                                    {"hold_passes": 0}, {"interval_factor": 0.5}, {"token_factor": 0},
                                    {"window_factor": 1.5}])
def test_bad_budget_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        LatencyBudgetConfig(**kwargs)  # type: ignore[arg-type]


def test_stage_budgets_include_the_callback_share() -> None:
    budgets = LatencyBudgetConfig().stage_budgets_ms(block_ms=20)
    assert budgets == {"partial": 600, "final": 1500, "tts_first_chunk": 150, "pass": 400, "accept": 10}


def test_stage_recorder_percentiles_and_drain() -> None:
    rec = StageRecorder(keep=1000)
    rng = np.random.default_rng(0)
    xs = rng.exponential(0.2, 500)
    for x in xs:
        rec.record("pass", float(x))
    rec.record("vad", 0.001)
    assert len(rec.drain()) == 501 and rec.drain() == []
    (vad, pas) = sorted(rec.summary({"pass": 400}), key=lambda s: s.stage != "vad")
    assert pas.count == 500 and pas.p50_ms == pytest.approx(1000 * np.percentile(xs, 50))
    assert pas.p99_ms == pytest.approx(1000 * np.percentile(xs, 99))
    assert pas.within_budget is (pas.p95_ms <= 400) and vad.within_budget is None
    assert [s.stage for s in rec.summary()] == ["vad", "pass"]  # pipeline order
    table = format_summary(rec.summary({"pass": 1.0}))
    assert "NO" in table.splitlines()[2] and "pass" in table
    assert math.isnan(summarize("x", []).p50_ms)


# ------------------------------------------------------------------------------------- real models
@pytest.fixture(scope="module")
def recognizer():  # type: ignore[no-untyped-def]
    from rtaudio.stt.recognizer import WhisperRecognizer

    try:
        r = WhisperRecognizer.load("whisper-tiny.en")
    except ModelNotFetchedError as e:
        pytest.skip(f"whisper-tiny.en is not fetched ({e}); run `rtaudio models fetch whisper-tiny.en`")
    r.transcribe_window(np.zeros(16000, np.float32))
    return r


def _run_with_delay(stream: StreamingRecognizer, clock: VirtualClock, audio: np.ndarray,
                    delays: list[tuple[float, DelayedRecognizer, float]]) -> tuple[list[Caption], list[tuple[float, BudgetEvent]], list[tuple[float, float]]]:
    """Feed 100 ms chunks arriving at real-time pace (their arrival time is passed in); from stream
    second `t` on, `wrapped.delay_s = d` for each (t, wrapped, d). Returns captions, (audio s, budget
    event) and (audio s, partial lag s)."""
    captions: list[Caption] = []
    steps: list[tuple[float, BudgetEvent]] = []
    lags: list[tuple[float, float]] = []
    chunk = 1600
    for pos in range(0, len(audio), chunk):
        t = (pos + chunk) / 16000
        for start, wrapped, d in delays:
            if t >= start:
                wrapped.delay_s = d
        arrival = int(t * 1e9)
        clock.wait_until_ns(arrival)  # idle until the audio is there, unless compute is behind
        stream.accept_waveform(audio[pos: pos + chunk], arrival_ns=arrival)
        while stream.is_ready():
            got = stream.decode()
            captions += got
            steps += [(t, e) for e in stream.events() if isinstance(e, BudgetEvent)]
            if any(not c.is_final for c in got):
                lags.append((t, stream.lag_s))
    stream.input_finished()
    captions += stream.decode()
    return captions, steps, lags


@pytest.mark.slow
def test_slow_passes_step_down_in_order_keep_lag_bounded_and_recover(recognizer, speech_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """13 s of 1-second passes in 30 s of continuous speech: the stream steps down 1, 2, 3, 4 (the
    fallback model is slow too), its lag stays bounded, and once the delay is gone it climbs back
    3, 2, 1, 0 without ever flapping. (A quick ladder - hold 2, recover after 2 - keeps the test short.)"""
    from rtaudio.stt.vad import SileroVadModel

    audio, _ = read_audio(speech_dir / "long_ljspeech_LJ001-0001_to_0017.flac", target_rate_hz=16000)
    audio = audio[: 16000 * 30]
    clock = VirtualClock(lambda: 0)  # pure virtual time: only the injected delay costs time
    primary = DelayedRecognizer(recognizer, clock)
    fallback = DelayedRecognizer(recognizer, clock)
    quick = LatencyBudgetConfig(partial_ms=600, hold_passes=2, recover_passes=2)
    config = StreamingConfig(partial_interval_ms=500, budget=quick)
    stream = StreamingRecognizer(primary, config, clock, SileroVadModel.load(), fallback_recognizer=fallback)
    slow_from, slow_to = 2.0, 15.0
    captions, steps, lags = _run_with_delay(stream, clock, audio, [(0.0, primary, 0.0), (slow_from, primary, 1.0),
                                                                   (slow_from, fallback, 0.9), (slow_to, primary, 0.0),
                                                                   (slow_to, fallback, 0.0)])
    levels = [e.level for _, e in steps]
    assert levels == [1, 2, 3, 4, 3, 2, 1, 0], steps
    assert all(slow_from <= t <= slow_to for t, _ in steps[:4]), "stepped down while nothing was slow"
    assert all(t > slow_to for t, _ in steps[4:]), "stepped up while the passes were still slow"
    assert fallback.passes > 0, "the last rung did not switch to the fallback recognizer"
    assert stream.rung is Rung.FULL
    # bounded: a pass takes 1 s and the cadence stretches to 1.5 passes, so the newest audio a partial
    # shows is never more than ~2.5 s old, and it does not grow over the slow stretch
    slow_lags = [lag for t, lag in lags if slow_from <= t <= slow_to + 2]
    assert max(slow_lags) < 2.6, slow_lags
    assert max(lag for t, lag in lags if t > slow_to + 2) < 0.05
    finals = " ".join(c.text for c in captions if c.is_final and c.text).split()
    assert len(finals) > 60, "text was lost while degraded"
    stages = set(stream.stages.stages)
    assert {"accept", "vad", "encoder", "decoder", "align", "pass", "stabilizer", "partial"} <= stages
    pass_ms = stream.stages.summary()[[s.stage for s in stream.stages.summary()].index("pass")].max_ms
    assert pass_ms >= 1000, "the injected delay is part of the pass time"
