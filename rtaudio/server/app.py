"""The server: one asyncio listener for HTTP and websockets, routing, auth, capacity and shutdown.

Websocket endpoints (each a sans-I/O wire protocol driving a `Session`):
    /v1/stream    native rtaudio protocol (PROTOCOL.md)
    /v1/realtime  OpenAI Realtime-style transcription session
    /v1/listen    Deepgram-style live transcription
    /v1/assistant voice assistant conversation (AssistantSession, assistant_protocol.py)
HTTP endpoints: GET / (browser page), /overlay (OBS caption overlay), /static/*, /healthz, /metrics;
POST /v1/audio/speech, /v1/audio/transcriptions (OpenAI-style).
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import secrets
import ssl
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from websockets.http11 import Request

from rtaudio.clock import Clock, SystemClock
from rtaudio.errors import AuthError, CapacityError, MessageTooLargeError, ProtocolError, RtAudioError
from rtaudio.log import get_logger, log_event
from rtaudio.native_memory import release_free_memory
from rtaudio.server.admission import AdmissionControl
from rtaudio.server.assistant_protocol import AssistantProtocol
from rtaudio.server.assistant_session import AssistantSession
from rtaudio.server.broadcast import CaptionBroadcast
from rtaudio.server.config import ServerConfig, SessionConfig
from rtaudio.server.connection import ConnectionGone, IdleTimeout, WebSocket, make_protocol
from rtaudio.server.deepgram import DeepgramProtocol
from rtaudio.server.engine import ModelHub, WorkerPools
from rtaudio.server.http import (
    ChunkedDecoder,
    HttpRequest,
    HttpResponse,
    error_response,
    json_response,
    origin_allowed,
    parse_head,
    static_file,
)
from rtaudio.server.metrics import ServerMetrics
from rtaudio.server.openai_http import OpenAIAudioEndpoints
from rtaudio.server.protocol import PROTOCOL_NAME, SessionProtocol
from rtaudio.server.realtime import RealtimeProtocol
from rtaudio.server.session import Session
from rtaudio.server.wire import CLOSE_GOING_AWAY, Wire
from rtaudio.stt.batch_stream import BatchStreamConfig

log = get_logger("rtaudio.server")

AnySession = Session | AssistantSession

STATIC_DIR = Path(__file__).parent / "static"
PAGES = {"/": "index.html", "/overlay": "overlay.html"}
HEAD_TIMEOUT_S = 10.0
MEMORY_TRIM_S = 30.0
SUBPROTOCOLS = (PROTOCOL_NAME, "realtime", "token")
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}

WireFactory = Callable[[HttpRequest, Any], Wire]

WEBSOCKET_ROUTES: dict[str, Callable[..., Wire]] = {
    "/v1/stream": lambda req, limits, clock, defaults: SessionProtocol(limits, clock, defaults=defaults),
    "/v1/realtime": lambda req, limits, clock, defaults: RealtimeProtocol(limits, clock, query=req.query,
                                                                         defaults=defaults),
    "/v1/listen": lambda req, limits, clock, defaults: DeepgramProtocol(limits, clock, query=req.query,
                                                                       defaults=defaults),
    "/v1/assistant": lambda req, limits, clock, defaults: AssistantProtocol(limits, clock),
}


def offered_token(req: HttpRequest) -> str | None:
    """The token a client presented: Authorization (Bearer/Token), ?token=, or a websocket subprotocol."""
    auth = req.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    if req.query.get("token"):
        return req.query["token"]
    offered = [p.strip() for p in req.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    for i, p in enumerate(offered):
        if p.startswith("openai-insecure-api-key."):
            return p[len("openai-insecure-api-key."):]
        if p.startswith("rtaudio.token."):
            return p[len("rtaudio.token."):]
        if p == "token" and i + 1 < len(offered):
            return offered[i + 1]
    return None


def select_subprotocol(offered: Sequence[str]) -> str | None:
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    return None


class Server:
    def __init__(self, config: ServerConfig, hub: ModelHub | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.hub = hub or ModelHub(config, self.clock)
        self.pools = WorkerPools(config.decode_workers, config.tts_workers)
        self.metrics = ServerMetrics()
        self.sessions: dict[str, AnySession] = {}
        self.broadcast = CaptionBroadcast()
        # The CPU cost model does not describe the batched (GPU) backend: there --max-sessions is the limit.
        admission = replace(config.admission, enabled=False) if self.hub.batched else config.admission
        self.admission = AdmissionControl(admission, config.decode_workers)
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._closing = False
        self._connections: set[asyncio.Task[None]] = set()
        self._api_requests = 0  # POST /v1/* in progress
        self._trimmer: asyncio.Task[None] | None = None
        self.http = OpenAIAudioEndpoints(self.hub, self.pools, self.metrics, config.limits)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the default models (on a worker) and start listening."""
        await self.pools.run_decode(self.hub.preload)
        ctx = None
        if self.config.tls_certfile and self.config.tls_keyfile:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.config.tls_certfile, self.config.tls_keyfile)
        self._server = await asyncio.start_server(self._on_connection, self.config.host, self.config.port,
                                                  ssl=ctx, limit=64 * 1024, reuse_port=self.config.processes > 1)
        self._trimmer = asyncio.create_task(self._release_memory_forever())
        log_event(log, logging.INFO, "listening", url=self.url)

    async def _release_memory_forever(self) -> None:
        """Every MEMORY_TRIM_S, hand freed native memory back (see rtaudio.native_memory)."""
        while True:
            await asyncio.sleep(MEMORY_TRIM_S)
            release_free_memory()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_certfile else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    async def serve_forever(self) -> None:
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def shutdown(self) -> None:
        """Stop accepting, let every session flush its final captions (up to the grace time), close."""
        self._closing = True
        if self._trimmer is not None:
            self._trimmer.cancel()
        if self._server is not None:
            self._server.close()
        grace = self.config.shutdown_grace_s
        await asyncio.gather(*(s.shutdown(grace) for s in list(self.sessions.values())), return_exceptions=True)
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=grace + 3.0)
        self.pools.shutdown()
        self.hub.close()

    # -- connections ------------------------------------------------------------------------------------
    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
                req = parse_head(head)
            except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
                return
            except (asyncio.LimitOverrunError, ValueError, RtAudioError) as e:
                await self._respond(writer, error_response(400, "protocol_error", f"bad HTTP request: {e}"))
                return
            if req.is_websocket:
                await self._websocket(req, reader, writer)
            else:
                await self._http(req, reader, writer)
        except Exception:
            log.error("connection handler failed", exc_info=True)
        finally:
            writer.close()
            if task is not None:
                self._connections.discard(task)

    def _origin_allowed(self, req: HttpRequest) -> bool:
        """Browsers send Origin: allow the server's own page and the configured origins only."""
        return origin_allowed(req.headers.get("origin"), req.headers.get("host", ""), self.config.allowed_origins,
                              self.config.host)

    def _authorized(self, req: HttpRequest) -> bool:
        if self.config.token is None:
            return True
        token = offered_token(req) or ""
        return hmac.compare_digest(token.encode(), self.config.token.encode())

    async def _respond(self, writer: asyncio.StreamWriter, response: HttpResponse, path: str = "") -> None:
        self.metrics.http_requests.inc(1, path or "other", str(response.status))
        try:
            writer.write(response.serialize())
            await writer.drain()
        except (ConnectionError, OSError):
            pass

    # -- websockets ---------------------------------------------------------------------------------------
    async def _websocket(self, req: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The wire protocol enforces max_message_bytes with an error event; websockets itself only
        # cuts off (1009, no event) messages over twice that, so they are never buffered whole.
        protocol = make_protocol(2 * self.config.limits.max_message_bytes, select_subprotocol)
        ws = WebSocket(reader, writer, protocol)
        protocol.receive_data(req.raw_head)
        request = next((e for e in protocol.events_received() if isinstance(e, Request)), None)
        factory = WEBSOCKET_ROUTES.get(req.path)
        refusal: tuple[int, RtAudioError] | None = None
        if factory is None:
            refusal = (404, ProtocolError(f"no websocket endpoint at {req.path}; try {', '.join(WEBSOCKET_ROUTES)}"))
        elif not self._authorized(req):
            refusal = (401, AuthError("missing or wrong token"))
        elif not self._origin_allowed(req):
            refusal = (403, AuthError(f"origin {req.headers.get('origin')!r} not allowed (see --allow-origin)"))
        elif self._closing:
            refusal = (503, CapacityError("server is shutting down"))
        elif len(self.sessions) >= self.config.limits.max_sessions:
            refusal = (503, CapacityError(f"server full ({self.config.limits.max_sessions} sessions)"))
        if request is None or refusal is not None:
            status, err = refusal or (400, ProtocolError("bad websocket handshake"))
            self.metrics.sessions_refused.inc(1, err.code)
            response = protocol.reject(status, f"{err.code}: {err}\n")
            protocol.send_response(response)
            ws.flush()
            return
        response = protocol.accept(request)
        protocol.send_response(response)
        ws.flush()
        if response.status_code != 101:
            return
        assert factory is not None
        defaults = SessionConfig(model=self.hub.default_model, tts_voice=self.config.voices[0])
        if self.hub.batched:  # the cadence and endpointing measured on the GPU, where partials cost little
            batch = BatchStreamConfig()
            defaults = replace(defaults, partial_interval_ms=int(batch.partial_interval_ms),
                               vad_min_silence_ms=batch.vad.min_silence_ms)
        wire = factory(req, self.config.limits, self.clock, defaults)
        await self._run_session(ws, wire, req.path)

    async def _run_session(self, ws: WebSocket, wire: Wire, endpoint: str) -> None:
        session_id = f"s{next(self._ids)}-{secrets.token_hex(3)}"
        session: AnySession
        if isinstance(wire, AssistantProtocol):
            session = AssistantSession(session_id, endpoint, wire, self.hub, self.pools, self.metrics,
                                       self.config.limits, self.clock, self.config.assistant, self.admission)
        else:
            session = Session(session_id, endpoint, wire, self.hub, self.pools, self.metrics, self.config.limits,
                              self.clock, self.broadcast, self.admission)
        self.sessions[session_id] = session
        self.metrics.sessions_total.inc(1, endpoint)
        self.metrics.sessions_active.inc(1, endpoint)
        writer_task = asyncio.create_task(self._write_loop(ws, session))
        reader_task = asyncio.create_task(self._read_loop(ws, wire, session))
        gone = False
        try:
            session.start()
            closing = asyncio.create_task(session.close_requested.wait())
            await asyncio.wait({reader_task, closing}, return_when=asyncio.FIRST_COMPLETED)
            closing.cancel()
            if reader_task.done() and isinstance(reader_task.exception(), ConnectionGone):
                gone = True
                if getattr(reader_task.exception(), "code", None) == 1009:
                    self.metrics.errors.inc(1, "message_too_large")
            elif reader_task.done() and isinstance(reader_task.exception(), IdleTimeout):
                wire.fail(ProtocolError(f"idle for {self.config.limits.idle_timeout_s:g} s"), code=CLOSE_GOING_AWAY)
                session.pump()
            elif reader_task.done() and reader_task.exception() is not None:
                log.error("reader failed", exc_info=reader_task.exception())
                wire.fail(RuntimeError("internal error"))
                session.pump()
            reader_task.cancel()
            if gone:  # the client left (maybe mid-utterance): nothing more can be delivered
                self.metrics.drops.inc(session.outbox.discard(), "undelivered")
            else:
                session.outbox.close()
                try:
                    await asyncio.wait_for(asyncio.shield(writer_task), self.config.shutdown_grace_s + 2.0)
                except asyncio.TimeoutError:
                    self.metrics.drops.inc(session.outbox.discard(), "undelivered")
                await ws.close(wire.close_code or 1000, wire.close_reason)
        finally:
            reader_task.cancel()
            writer_task.cancel()
            await session.finish(0)
            await asyncio.gather(reader_task, writer_task, return_exceptions=True)
            del self.sessions[session_id]
            self.metrics.sessions_active.inc(-1, endpoint)
            log_event(log, logging.INFO, "session closed", session=session_id, endpoint=endpoint,
                      code=wire.close_code, gone=gone)

    async def _read_loop(self, ws: WebSocket, wire: Wire, session: AnySession) -> None:
        idle = self.config.limits.idle_timeout_s
        while wire.close_code is None:
            await session.wait_for_room()
            try:
                message = await ws.recv(idle)
            except IdleTimeout:
                if session.busy:  # the client waits for us, not the other way round
                    continue
                raise
            wire.receive_message(message)
            session.handle(wire.events_received())

    async def _write_loop(self, ws: WebSocket, session: AnySession) -> None:
        try:
            while (message := await session.outbox.get()) is not None:
                # A client that reads nothing for the idle time is gone for us: without this bound its
                # session (and queued bytes) would stay forever, since pending output counts as busy.
                await asyncio.wait_for(ws.send(message), self.config.limits.idle_timeout_s)
        except ConnectionGone:
            session.outbox.discard()
        except asyncio.TimeoutError:
            self.metrics.drops.inc(session.outbox.discard(), "slow_consumer")
            ws.abort()

    # -- plain HTTP -----------------------------------------------------------------------------------------
    async def _read_body(self, req: HttpRequest, reader: asyncio.StreamReader) -> None:
        limit = self.config.limits.max_upload_bytes
        if req.chunked:
            decoder = ChunkedDecoder(limit)
            while not decoder.done:
                data = await asyncio.wait_for(reader.read(64 * 1024), 30.0)
                if not data:
                    raise ProtocolError("connection closed inside a chunked body")
                decoder.feed(data)
            req.body = decoder.body
            return
        length = req.content_length or 0
        if length > limit:
            raise MessageTooLargeError(f"request body of {length} bytes exceeds {limit}")
        if length:
            req.body = await asyncio.wait_for(reader.readexactly(length), 60.0)

    async def _http(self, req: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = req.path
        if req.method == "GET" and path == "/healthz":
            await self._respond(writer, json_response({
                "status": "shutting_down" if self._closing else "ok", "sessions": len(self.sessions),
                "process": os.getpid(),
                "models": list(self.config.models), "voices": list(self.config.voices),
                "caption_channels": self.broadcast.stats()}), path)
        elif req.method == "GET" and path == "/metrics":
            for model, stats in self.hub.batch_stats().items():
                self.metrics.set_batch(model, stats)
            await self._respond(writer, HttpResponse(200, self.metrics.render().encode(),
                                                     "text/plain; version=0.0.4; charset=utf-8"), path)
        elif req.method in ("GET", "HEAD") and (path in (*PAGES, "/demo.wav") or path.startswith("/static/")):
            response = self._static(path)
            if req.method == "HEAD":
                head_only = HttpResponse(response.status, b"", response.content_type, response.headers)
                self.metrics.http_requests.inc(1, "/static", str(response.status))
                writer.write(head_only.head().replace(b"Content-Length: 0", f"Content-Length: {len(response.body)}".encode()))
                await writer.drain()
            else:
                await self._respond(writer, response, "/static")
        elif path in self.http.routes:
            if req.method != "POST":
                await self._respond(writer, error_response(405, "protocol_error", f"{path} takes POST"), path)
            elif not self._authorized(req):
                await self._respond(writer, error_response(401, "unauthorized", "missing or wrong token"), path)
            elif not self._origin_allowed(req):
                await self._respond(writer, error_response(403, "unauthorized", "origin not allowed"), path)
            elif self._api_requests >= self.config.limits.max_sessions:  # each may hold a whole upload
                await self._respond(writer, error_response(503, "over_capacity", "too many requests in progress"), path)
            else:
                self._api_requests += 1
                try:
                    await self._api_request(req, reader, writer)
                finally:
                    self._api_requests -= 1
        else:
            await self._respond(writer, error_response(404, "not_found", f"nothing at {req.method} {path}"))

    async def _api_request(self, req: HttpRequest, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._read_body(req, reader)
        except (RtAudioError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            status = 413 if isinstance(e, MessageTooLargeError) else 400
            await self._respond(writer, error_response(status, getattr(e, "code", "protocol_error"),
                                                       str(e) or "incomplete body"), req.path)
            return
        status = await self.http.handle(req, writer)
        self.metrics.http_requests.inc(1, req.path, str(status))

    def _static(self, path: str) -> HttpResponse:
        if path == "/demo.wav":
            demo = self.config.demo_audio
            if demo is None or not Path(demo).is_file():
                return error_response(404, "not_found", "no demo recording on this server (run `rtaudio demo`)")
            return HttpResponse(200, Path(demo).read_bytes(), "audio/wav")
        name = PAGES.get(path) or path[len("/static/"):]
        target = static_file(STATIC_DIR, name)
        if target is None:
            return error_response(404, "not_found", f"no static file {name[:100]!r}")
        return HttpResponse(200, target.read_bytes(), STATIC_TYPES.get(target.suffix, "application/octet-stream"))
