"""Admission control and budget reporting: the capacity arithmetic (pure), then the real server on
loopback refusing a session it cannot serve, and telling a slowed-down session that it degraded."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rtaudio.clock import FakeClock
from rtaudio.errors import CapacityError, ConfigError
from rtaudio.io.files import read_audio
from rtaudio.latency import DelayedRecognizer
from rtaudio.server.admission import AdmissionConfig, AdmissionControl
from rtaudio.server.background import BackgroundServer
from rtaudio.server.client import CaptionEvent, StreamClient
from rtaudio.server.config import ServerConfig, ServerLimits
from rtaudio.server.engine import ModelHub
from rtaudio.server.protocol import SessionProtocol
from rtaudio.stt.latency_budget import BudgetEvent, Rung
from rtaudio.stt.pacing import RealTimePacer


# ------------------------------------------------------------------------------------------ pure
def test_prior_then_measured_cost_decide_admission() -> None:
    adm = AdmissionControl(AdmissionConfig(headroom=0.8, prior_cost=0.5, min_audio_s=5.0, window_audio_s=20.0),
                           decode_workers=4, cpus=2)
    assert adm.capacity == 2.0 and adm.cost == 0.5 and adm.capacity_sessions == 3
    for i in range(3):
        adm.admit(f"s{i}")
    with pytest.raises(CapacityError) as e:
        adm.admit("s3")
    assert "assumed" in str(e.value) and "at most 3 sessions" in str(e.value) and adm.refused == 1
    for _ in range(10):  # measured: 0.2 CPU-s per audio-s -> 8 sessions fit in 1.6
        adm.observe(1.0, 0.2)
    assert adm.measured and adm.cost == pytest.approx(0.2) and adm.capacity_sessions == 8
    adm.admit("s3")
    for _ in range(30):  # the window slides: only the last 20 s of audio count
        adm.observe(1.0, 0.8)
    assert adm.cost == pytest.approx(0.8)
    with pytest.raises(CapacityError, match="measured"):
        adm.admit("s4")
    adm.release("s0")
    adm.release("s1")
    adm.release("s2")
    assert adm.refusal() is None  # one running at 0.8: a second needs 1.6 of 1.6


def test_a_session_degraded_far_down_the_ladder_blocks_admission() -> None:
    adm = AdmissionControl(AdmissionConfig(refuse_at_rung=int(Rung.SHORT_WINDOW)), decode_workers=8, cpus=8)
    load = adm.admit("a")
    load.rung = int(Rung.GREEDY_SHORT)
    assert adm.refusal() is None
    load.rung = int(Rung.SHORT_WINDOW)
    assert "degraded to rung short_window" in (adm.refusal() or "")
    assert AdmissionControl(AdmissionConfig(enabled=False, prior_cost=100), 1, 1).refusal() is None


@pytest.mark.parametrize("kwargs", [{"headroom": 0}, {"capacity_cpus": -1}, {"prior_cost": 0}, {"refuse_at_rung": 9}])
def test_bad_admission_config(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        AdmissionConfig(**kwargs)


def test_budget_event_bytes_out() -> None:
    wire = SessionProtocol(ServerLimits(), FakeClock(), wall_clock=lambda: 1.5)
    wire.send_budget(BudgetEvent(True, 0.8125, 1000, 3, 2, "greedy_short", 600))
    (msg,) = wire.data_to_send()
    assert json.loads(msg) == {"type": "budget", "degraded": True, "level": 2, "rung": "greedy_short", "lag_ms": 812.5,
                               "budget_ms": 600, "partial_interval_ms": 1000, "skipped_partials": 3,
                               "server_time_ms": 1500.0}


# ------------------------------------------------------------------------------------------ loopback
def _metrics(srv: BackgroundServer) -> str:
    return urllib.request.urlopen(srv.url + "/metrics", timeout=10).read().decode()


async def _until_idle(srv: BackgroundServer) -> None:
    """Wait until the server noticed closed clients and released their admission slots."""
    for _ in range(200):
        if json.loads(urllib.request.urlopen(srv.url + "/healthz", timeout=10).read())["sessions"] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("sessions did not close")


@pytest.fixture(scope="module")
def one_session_server() -> Iterator[BackgroundServer]:
    """Capacity for exactly one session before anything is measured: 0.5 x 1 CPU / 0.3 per session."""
    admission = AdmissionConfig(capacity_cpus=1.0, headroom=0.5, prior_cost=0.3, min_audio_s=1000.0)
    with BackgroundServer(ServerConfig(port=0, decode_workers=1, preload_voice=False, admission=admission)) as srv:
        yield srv


@pytest.mark.slow
def test_server_refuses_a_session_it_cannot_serve_and_admits_after_one_leaves(
        one_session_server: BackgroundServer) -> None:
    srv = one_session_server
    url = srv.ws_url + "/v1/stream"

    async def run() -> tuple[str, str]:
        first = await StreamClient.connect(url, {"partials": True})
        try:
            await StreamClient.connect(url, {})
            refused = "not refused"
        except CapacityError as e:
            refused = str(e)
        await first.close()
        await _until_idle(srv)
        third = await StreamClient.connect(url, {})
        started = third.session["type"]
        await third.close()
        await _until_idle(srv)
        return refused, started

    refused, started = asyncio.run(run())
    assert refused.startswith("server at capacity: 1 live session(s) at 0.30 CPU-s per audio-s"), refused
    assert "at most 1 sessions" in refused
    assert started == "session.started", started
    assert 'rtaudio_sessions_refused_total{reason="latency_budget"} 1' in _metrics(srv)
    # the raw protocol: a fatal error event with the stable code, then close 1013 (try again later)
    import websockets

    async def raw() -> tuple[dict[str, Any], int | None]:
        async with await StreamClient.connect(url, {}):
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"type": "session.start"}))
                error = json.loads(await ws.recv())
                try:
                    await ws.recv()
                except websockets.ConnectionClosed as closed:
                    return error, closed.rcvd.code if closed.rcvd else None
        return error, None

    error, code = asyncio.run(raw())
    assert error["type"] == "error" and error["code"] == "over_capacity" and error["fatal"] is True
    assert code == 1013


class SlowHub(ModelHub):
    """The real models; every Whisper pass also sleeps `delay_s` (a machine that cannot keep up)."""

    delay_s = 0.8

    def recognizer(self, name: str) -> Any:
        return DelayedRecognizer(super().recognizer(name), RealTimePacer(), self.delay_s)


@pytest.mark.slow
def test_slow_server_sends_budget_events_and_keeps_lag_bounded(speech_dir: Path) -> None:
    audio, rate = read_audio(speech_dir / "jfk_inaugural_ask_not.flac", target_rate_hz=16000)
    config = ServerConfig(port=0, decode_workers=1, preload_voice=False)
    with BackgroundServer(config, hub=SlowHub(config, RealTimePacer())) as srv:

        async def run() -> tuple[list[CaptionEvent], list[dict[str, Any]], float]:
            async with await StreamClient.connect(srv.ws_url + "/v1/stream",
                                                  {"audio": {"sample_rate_hz": rate}}) as client:
                captions, budget, _, delay = await client.stream_and_collect(audio, timeout_s=60)
                return captions, budget, delay

        captions, budget, final_after_s = asyncio.run(run())
        metrics = _metrics(srv)
    assert budget and budget[0]["degraded"] and budget[0]["level"] == 1 and budget[0]["rung"] == "fewer_partials"
    assert all(abs(a["level"] - b["level"]) == 1 for a, b in zip(budget, budget[1:], strict=False))
    partial_ms = [c.latency_ms for c in captions if not c.caption.is_final and c.latency_ms is not None]
    assert partial_ms and max(partial_ms) < 3500, partial_ms  # ~0.8 s passes at a stretched cadence: bounded
    assert final_after_s < 5.0
    finals = " ".join(c.caption.text for c in captions if c.caption.is_final).lower()
    assert "country" in finals
    assert 'rtaudio_budget_steps_total{direction="down",rung="fewer_partials"}' in metrics
    assert 'rtaudio_stage_latency_seconds_count{stage="encoder"}' in metrics
    assert 'rtaudio_stage_latency_seconds_count{stage="ring_wait"}' in metrics
    cost = re.search(r"^rtaudio_admission_session_cost (\S+)$", metrics, re.M)
    assert cost and 0 < float(cost.group(1)) < 5  # measured CPU-s per audio-s of this session
