"""obs-websocket v5 caption sender against a loopback server speaking the documented handshake."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

import pytest
import websockets

from rtaudio.errors import ConfigError
from rtaudio.obs import ObsCaptionSender, ObsConfig, ObsSession, auth_string

PASSWORD = "hunter2"


class FakeObs:
    """Implements op 0/1/2/6/7 of obs-websocket 5 with password authentication, records captions."""

    def __init__(self, password: str = PASSWORD) -> None:
        self.password = password
        self.captions: list[str] = []
        self.server: websockets.Server | None = None
        self.port = 0

    async def handler(self, ws: websockets.ServerConnection) -> None:
        salt, challenge = "c2FsdA==", "Y2hhbGxlbmdl"
        await ws.send(json.dumps({"op": 0, "d": {"obsWebSocketVersion": "5.5.0", "rpcVersion": 1,
                                                 "authentication": {"challenge": challenge, "salt": salt}}}))
        ident = json.loads(await ws.recv())
        secret = base64.b64encode(hashlib.sha256((self.password + salt).encode()).digest()).decode()
        want = base64.b64encode(hashlib.sha256((secret + challenge).encode()).digest()).decode()
        if ident["op"] != 1 or ident["d"].get("authentication") != want:
            await ws.close(4009, "Authentication failed.")
            return
        await ws.send(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))
        async for raw in ws:
            msg = json.loads(raw)
            assert msg["op"] == 6
            d = msg["d"]
            ok = d["requestType"] == "SendStreamCaption"
            if ok:
                self.captions.append(d["requestData"]["captionText"])
            await ws.send(json.dumps({"op": 7, "d": {"requestType": d["requestType"], "requestId": d["requestId"],
                                                     "requestStatus": {"result": ok, "code": 100 if ok else 204}}}))

    async def start(self, port: int = 0) -> None:
        self.server = await websockets.serve(self.handler, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server
        self.server.close()
        await self.server.wait_closed()


async def wait_for(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(poll(), timeout)


def test_auth_string_matches_protocol_example() -> None:
    # Worked by hand from the obs-websocket 5 protocol description.
    secret = base64.b64encode(hashlib.sha256(b"pw" + b"salt").digest()).decode()
    expected = base64.b64encode(hashlib.sha256((secret + "chal").encode()).digest()).decode()
    assert auth_string("pw", "salt", "chal") == expected


def test_sans_io_session_identifies_then_sends() -> None:
    s = ObsSession(None)
    s.receive(json.dumps({"op": 0, "d": {"rpcVersion": 1}}))
    (ident,) = s.data_to_send()
    assert json.loads(ident) == {"op": 1, "d": {"rpcVersion": 1, "eventSubscriptions": 0}}
    s.receive(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))
    rid = s.send_caption("hello world")
    req = json.loads(s.data_to_send()[0])
    assert req["d"] == {"requestType": "SendStreamCaption", "requestId": rid, "requestData": {"captionText": "hello world"}}


def test_config_rejects_non_websocket_url() -> None:
    with pytest.raises(ConfigError):
        ObsConfig(url="http://127.0.0.1:4455")


def test_captions_once_in_order_and_survive_obs_restart() -> None:
    async def main() -> None:
        obs = FakeObs()
        await obs.start()
        port = obs.port
        sender = ObsCaptionSender(ObsConfig(url=f"ws://127.0.0.1:{port}", password=PASSWORD, reconnect_delay_s=0.1))
        sender.start()
        for t in ["first caption", "second caption", "third caption"]:
            sender.submit(t)
        await wait_for(lambda: len(obs.captions) == 3 and len(sender.sent) == 3)  # received and acknowledged
        await obs.stop()  # OBS quits
        sender.submit("sent while OBS was away")
        sender.submit("and another")
        await asyncio.sleep(0.3)
        restarted = FakeObs()
        await restarted.start(port)
        await wait_for(lambda: len(restarted.captions) == 2)
        sender.submit("after restart")
        await wait_for(lambda: len(restarted.captions) == 3 and len(sender.sent) == 6)
        await sender.stop()
        await restarted.stop()
        assert obs.captions == ["first caption", "second caption", "third caption"]
        assert restarted.captions == ["sent while OBS was away", "and another", "after restart"]
        assert sender.sent == obs.captions + restarted.captions

    asyncio.run(main())


def test_wrong_password_stops_with_auth_failure() -> None:
    async def main() -> None:
        obs = FakeObs()
        await obs.start()
        sender = ObsCaptionSender(ObsConfig(url=f"ws://127.0.0.1:{obs.port}", password="wrong", reconnect_delay_s=0.1))
        sender.start()
        sender.submit("nope")
        await wait_for(lambda: sender.auth_failed)
        await sender.stop()
        await obs.stop()
        assert obs.captions == []

    asyncio.run(main())
