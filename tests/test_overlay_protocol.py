"""Caption broadcast: the `captions.subscribe` mode of the native protocol, bytes in / bytes out, and the
channel bookkeeping of `CaptionBroadcast` (no sockets, no models)."""

from __future__ import annotations

import json

import pytest

from rtaudio.clock import FakeClock
from rtaudio.errors import ConfigError
from rtaudio.frames import Caption, Stability
from rtaudio.server.broadcast import REPLAY_FINALS, CaptionBroadcast
from rtaudio.server.config import ServerLimits, SessionConfig
from rtaudio.server.events import CaptionTiming, ClientMistake, Subscribe
from rtaudio.server.protocol import SessionProtocol, State

WALL = 1_700_000_000.0


def make() -> SessionProtocol:
    return SessionProtocol(ServerLimits(), FakeClock(), wall_clock=lambda: WALL)


def sent_json(p: SessionProtocol) -> list[dict]:
    return [json.loads(m) for m in p.data_to_send() if isinstance(m, str)]


def caption(text: str, final: bool, segment_id: int = 0) -> Caption:
    return Caption(text=text, start_sample=0, end_sample=16000, segment_id=segment_id,
                   stability=Stability.FINAL if final else Stability.PARTIAL)


def test_subscribe_is_acknowledged_and_emits_the_channel() -> None:
    p = make()
    p.receive_message(json.dumps({"type": "captions.subscribe", "channel": "stream-1"}))
    assert p.events_received() == [Subscribe("stream-1")]
    assert sent_json(p) == [{"type": "captions.subscribed", "channel": "stream-1", "server_time_ms": WALL * 1000}]
    assert p.state is State.SUBSCRIBED
    p.send_caption(caption("hello there", final=True), CaptionTiming(1.0, 120.0))
    (msg,) = sent_json(p)
    assert (msg["type"], msg["text"], msg["is_final"]) == ("caption", "hello there", True)


@pytest.mark.parametrize("channel", [None, "", "has space", "a/b", "x" * 65, 7])
def test_bad_channel_names_are_config_errors(channel: object) -> None:
    p = make()
    p.receive_message(json.dumps({"type": "captions.subscribe", "channel": channel}))
    (mistake,) = p.events_received()
    assert isinstance(mistake, ClientMistake) and not mistake.fatal
    (msg,) = sent_json(p)
    assert (msg["type"], msg["code"], msg["fatal"]) == ("error", "bad_config", False)
    assert p.state is State.AWAITING_START  # the client may retry


@pytest.mark.parametrize("message", [
    b"\x00\x00",
    json.dumps({"type": "session.start"}),
    json.dumps({"type": "tts.speak", "text": "hi"}),
    json.dumps({"type": "audio.end"}),
    json.dumps({"type": "captions.subscribe", "channel": "other"}),
])
def test_a_subscriber_is_read_only(message: str | bytes) -> None:
    p = make()
    p.receive_message(json.dumps({"type": "captions.subscribe", "channel": "main"}))
    p.events_received(), p.data_to_send()
    p.receive_message(message)
    (mistake,) = p.events_received()
    assert isinstance(mistake, ClientMistake)
    (msg,) = sent_json(p)
    assert (msg["type"], msg["code"]) == ("error", "protocol_error")
    assert p.state is State.SUBSCRIBED and p.close_code is None


def test_ping_keeps_a_subscriber_alive() -> None:
    p = make()
    p.receive_message(json.dumps({"type": "captions.subscribe", "channel": "main"}))
    p.data_to_send()
    p.receive_message(json.dumps({"type": "ping", "id": "k"}))
    assert sent_json(p) == [{"type": "pong", "id": "k", "server_time_ms": WALL * 1000}]


def test_subscribe_after_session_start_is_refused() -> None:
    p = make()
    p.receive_message(json.dumps({"type": "session.start"}))
    p.events_received()
    p.receive_message(json.dumps({"type": "captions.subscribe", "channel": "main"}))
    assert isinstance(p.events_received()[0], ClientMistake)
    assert sent_json(p)[-1]["code"] == "protocol_error"


def test_session_config_channel_is_validated_and_echoed() -> None:
    cfg = SessionConfig.from_json({"channel": "main"})
    assert cfg.channel == "main" and cfg.to_json()["channel"] == "main"
    with pytest.raises(ConfigError, match="channel"):
        SessionConfig.from_json({"channel": "no spaces"})
    with pytest.raises(ConfigError, match="wrong type"):
        SessionConfig.from_json({"channel": 3})


class Viewer:
    """A subscriber that keeps what it was delivered (the real one is a server Session)."""

    def __init__(self) -> None:
        self.got: list[str] = []

    def deliver_caption(self, c: Caption, timing: CaptionTiming) -> None:
        self.got.append(("F:" if c.is_final else "P:") + c.text)


def test_broadcast_one_publisher_many_viewers_and_replay() -> None:
    b, t = CaptionBroadcast(), CaptionTiming(0.0, 0.0)
    owner, intruder = object(), object()
    b.claim("main", owner)
    with pytest.raises(ConfigError, match="already has a publisher"):
        b.claim("main", intruder)
    early = Viewer()
    assert b.subscribe("main", early) == []
    for i in range(REPLAY_FINALS + 2):
        b.publish("main", caption(f"partial {i}", final=False, segment_id=i), t)
        b.publish("main", caption(f"final {i}", final=True, segment_id=i), t)
    b.publish("main", caption("", final=True), t)  # an empty final is not worth replaying
    b.publish("main", caption("now speaking", final=False), t)
    assert early.got[:2] == ["P:partial 0", "F:final 0"] and early.got[-1] == "P:now speaking"
    late = Viewer()
    replay = [c.text for c, _ in b.subscribe("main", late)]
    assert replay == [f"final {i}" for i in range(2, REPLAY_FINALS + 2)] + ["now speaking"]
    b.publish("other", caption("elsewhere", final=True), t)  # no such channel: nobody gets it
    assert "F:elsewhere" not in early.got
    b.leave(owner)  # the publisher's dangling partial goes with it; a new publisher may claim
    assert [c.text for c, _ in b.subscribe("main", Viewer())][-1] == f"final {REPLAY_FINALS + 1}"
    b.claim("main", intruder)
    b.leave(early), b.leave(late)
    assert b.stats() == {"main": 1}
