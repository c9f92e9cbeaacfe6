"""Send final captions to OBS as native closed captions (obs-websocket v5, `SendStreamCaption`).

`ObsSession` is the sans-I/O protocol (messages in, messages out); `ObsCaptionSender` is the asyncio glue
that connects, authenticates, sends each caption exactly once and in order, and reconnects by itself when
OBS restarts. Captions queued while OBS is away are sent after it comes back (bounded queue, oldest dropped).

Protocol (obs-websocket 5.x): server Hello (op 0, maybe with an auth challenge) -> client Identify (op 1)
-> server Identified (op 2); then Request (op 6) / RequestResponse (op 7).
auth = base64(sha256(base64(sha256(password + salt)) + challenge)).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from rtaudio.errors import AuthError, ConfigError, ProtocolError
from rtaudio.log import get_logger

log = get_logger("obs")

OP_HELLO, OP_IDENTIFY, OP_IDENTIFIED, OP_REQUEST, OP_REQUEST_RESPONSE = 0, 1, 2, 6, 7
CLOSE_AUTH_FAILED = 4009


def auth_string(password: str, salt: str, challenge: str) -> str:
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest()).decode()
    return base64.b64encode(hashlib.sha256((secret + challenge).encode()).digest()).decode()


@dataclass(frozen=True)
class ObsConfig:
    url: str = "ws://127.0.0.1:4455"
    password: str | None = None
    reconnect_delay_s: float = 1.0
    max_queued_captions: int = 100

    def __post_init__(self) -> None:
        if not self.url.startswith(("ws://", "wss://")):
            raise ConfigError(f"OBS url must start with ws:// or wss://, got {self.url!r}")
        if self.reconnect_delay_s <= 0 or self.max_queued_captions < 1:
            raise ConfigError("reconnect_delay_s must be > 0 and max_queued_captions >= 1")


class ObsSession:
    """One connection's protocol state, without I/O."""

    def __init__(self, password: str | None) -> None:
        self.password = password
        self.identified = False
        self._outgoing: list[str] = []
        self._ids = itertools.count(1)
        self.pending: dict[str, str] = {}  # requestId -> caption text
        self.acked: list[str] = []

    def receive(self, text: str) -> None:
        try:
            msg = json.loads(text)
            op, d = msg["op"], msg.get("d", {})
        except (ValueError, KeyError, TypeError) as e:
            raise ProtocolError(f"bad message from OBS: {text[:80]!r}") from e
        if op == OP_HELLO:
            ident: dict[str, Any] = {"rpcVersion": 1, "eventSubscriptions": 0}
            auth = d.get("authentication")
            if auth:
                if not self.password:
                    raise AuthError("OBS asks for a password; pass --obs-password")
                ident["authentication"] = auth_string(self.password, auth["salt"], auth["challenge"])
            self._outgoing.append(json.dumps({"op": OP_IDENTIFY, "d": ident}))
        elif op == OP_IDENTIFIED:
            self.identified = True
        elif op == OP_REQUEST_RESPONSE:
            rid = d.get("requestId")
            if rid in self.pending:
                status = d.get("requestStatus", {})
                text_sent = self.pending.pop(rid)
                if status.get("result"):
                    self.acked.append(text_sent)
                else:
                    log.warning("OBS refused caption: %s", status.get("comment", status.get("code")))

    def send_caption(self, text: str) -> str:
        if not self.identified:
            raise ProtocolError("not identified with OBS yet")
        rid = f"cap-{next(self._ids)}"
        self.pending[rid] = text
        self._outgoing.append(json.dumps({"op": OP_REQUEST, "d": {
            "requestType": "SendStreamCaption", "requestId": rid, "requestData": {"captionText": text}}}))
        return rid

    def data_to_send(self) -> list[str]:
        out, self._outgoing = self._outgoing, []
        return out


class ObsCaptionSender:
    """Keeps a connection to OBS and sends queued captions in order, each once."""

    def __init__(self, config: ObsConfig) -> None:
        self.config = config
        self._queue: deque[str] = deque(maxlen=config.max_queued_captions)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent: list[str] = []
        self.connected = asyncio.Event()
        self.auth_failed = False

    def submit(self, text: str) -> None:
        """Queue a final caption (never blocks the caller's loop)."""
        if text.strip():
            self._queue.append(text.strip())
            self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        import websockets

        while True:
            try:
                async with websockets.connect(self.config.url, max_size=1 << 20) as ws:
                    await self._serve(ws)
            except AuthError as e:
                self.auth_failed = True
                log.error("%s", e)
                return
            except (OSError, websockets.ConnectionClosed, ProtocolError, asyncio.TimeoutError) as e:
                if isinstance(e, websockets.ConnectionClosed) and e.rcvd and e.rcvd.code == CLOSE_AUTH_FAILED:
                    self.auth_failed = True
                    log.error("OBS refused the password")
                    return
                log.info("OBS connection lost (%s); retrying", e)
            self.connected.clear()
            await asyncio.sleep(self.config.reconnect_delay_s)

    async def _serve(self, ws: Any) -> None:
        session = ObsSession(self.config.password)
        while not session.identified:
            session.receive(await asyncio.wait_for(ws.recv(), 10))
            for out in session.data_to_send():
                await ws.send(out)
        self.connected.set()
        reader = asyncio.ensure_future(self._read(ws, session))
        try:
            while True:
                while self._queue:
                    text = self._queue[0]
                    session.send_caption(text)
                    for out in session.data_to_send():
                        await ws.send(out)
                    acked_before = len(session.acked)
                    while len(session.acked) == acked_before and session.pending:
                        if reader.done():
                            reader.result()
                        await asyncio.sleep(0.005)
                    self._queue.popleft()  # only now: unacknowledged captions survive a reconnect
                    self.sent.append(text)
                self._wakeup.clear()
                waiter = asyncio.ensure_future(self._wakeup.wait())
                done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    waiter.cancel()
                    reader.result()
        finally:
            reader.cancel()

    @staticmethod
    async def _read(ws: Any, session: ObsSession) -> None:
        async for message in ws:
            session.receive(message)
