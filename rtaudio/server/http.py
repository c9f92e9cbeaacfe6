"""Just enough HTTP/1.1 for the server's own endpoints, sans-I/O: parse a request head, decode a chunked
or sized body, split multipart/form-data, and serialize responses (whole or chunked).

Why not an ASGI stack: the websocket side already runs on the `websockets` library's sans-I/O
protocol over asyncio streams; the HTTP side needs GET and a few POSTs with bodies, which the
`websockets` handshake parser rejects, so this small layer sits in front of both on one port.
Every connection serves one request and closes (`Connection: close`).
"""

from __future__ import annotations

import email.parser
import email.policy
import ipaddress
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from rtaudio.errors import MessageTooLargeError, ProtocolError

MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100


@dataclass
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ', '."""
    raw_head: bytes = b""
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    @property
    def is_websocket(self) -> bool:
        return self.method == "GET" and "websocket" in self.headers.get("upgrade", "").lower()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        if not value.strip().isdigit():
            raise ProtocolError(f"bad Content-Length {value!r}")
        return int(value)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise ProtocolError(f"request body is not valid JSON: {e}") from e


def parse_head(head: bytes) -> HttpRequest:
    """Parse the request line and headers (everything up to and including the blank line)."""
    if len(head) > MAX_HEAD_BYTES:
        raise MessageTooLargeError("HTTP request head too large")
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as e:  # pragma: no cover - latin-1 decodes any byte
        raise ProtocolError("bad HTTP head") from e
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ProtocolError(f"bad HTTP request line {lines[0][:80]!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ProtocolError(f"bad HTTP header line {line[:80]!r}")
        key = name.lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        if len(headers) > MAX_HEADERS:
            raise ProtocolError("too many HTTP headers")
    return HttpRequest(method.upper(), target, headers, head)


def static_file(root: Path, name: str) -> Path | None:
    """The regular file `name` inside `root`, or None. Never a path outside it: `..`, absolute names and
    symlinks leading out are resolved first and refused; percent-escapes are not decoded (a literal
    `..%2f` names no file); NUL bytes and backslashes are refused."""
    if not name or "\x00" in name or "\\" in name:
        return None
    try:
        base = root.resolve()
        target = (base / name).resolve()
        inside = base in target.parents and target.is_file()
    except (OSError, ValueError, RuntimeError):  # bad names, symlink loops
        return None
    return target if inside else None


def _is_local_name(hostname: str, server_host: str) -> bool:
    """A host name no other web site can point at this server through DNS: an IP literal, localhost,
    or the name the server was configured to bind."""
    if hostname in ("localhost", server_host.lower()):
        return True
    try:
        ipaddress.ip_address(hostname)
        return True
    except ValueError:
        return False


def origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...], server_host: str) -> bool:
    """Browsers send `Origin`; programs usually do not and are not affected.

    Allowed: the configured origins ("*" for any) and the server's own page (Origin is this very
    Host). The own page counts only under a local name (`_is_local_name`): with DNS rebinding, a
    foreign page re-pointed at 127.0.0.1 also sends Origin == Host, but under its own DNS name.
    """
    if origin is None or "*" in allowed or origin in allowed:
        return True
    if origin not in (f"http://{host}", f"https://{host}"):
        return False
    try:
        hostname = (urlsplit(origin).hostname or "").lower()
    except ValueError:  # "http://[::1" and the like
        return False
    return _is_local_name(hostname, server_host)


class ChunkedDecoder:
    """Incremental `Transfer-Encoding: chunked` decoder: `feed(bytes)`; `done` once the last chunk is read."""

    def __init__(self, max_bytes: int) -> None:
        self._buf = b""
        self._body = bytearray()
        self._max = max_bytes
        self.done = False

    def feed(self, data: bytes) -> None:
        self._buf += data
        while not self.done:
            line_end = self._buf.find(b"\r\n")
            if line_end < 0:
                if len(self._buf) > 1024:
                    raise ProtocolError("bad chunk size line")
                return
            size_text = self._buf[:line_end].split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as e:
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from e
            if size == 0:
                self.done = True  # trailers, if any, are ignored
                return
            if len(self._buf) < line_end + 2 + size + 2:
                if len(self._body) + size > self._max:
                    raise MessageTooLargeError(f"request body over {self._max} bytes")
                return
            self._body += self._buf[line_end + 2: line_end + 2 + size]
            if len(self._body) > self._max:
                raise MessageTooLargeError(f"request body over {self._max} bytes")
            self._buf = self._buf[line_end + 2 + size + 2:]

    @property
    def body(self) -> bytes:
        return bytes(self._body)


@dataclass
class FormPart:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def parse_multipart(body: bytes, content_type: str) -> dict[str, list[FormPart]]:
    """Split a multipart/form-data body into its named parts (stdlib email parser)."""
    if "multipart/form-data" not in content_type.lower() or "boundary=" not in content_type:
        raise ProtocolError("expected Content-Type: multipart/form-data with a boundary")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1") + body
    )
    if not message.is_multipart():
        raise ProtocolError("malformed multipart body")
    parts: dict[str, list[FormPart]] = {}
    for part in message.iter_parts():  # type: ignore[attr-defined]
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts.setdefault(str(name), []).append(
            FormPart(str(name), data, part.get_filename(), part.get_content_type())
        )
    return parts


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    def head(self, chunked: bool = False) -> bytes:
        reason = HTTPStatus(self.status).phrase
        lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Type: {self.content_type}"]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {len(self.body)}")
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        lines += ["Connection: close", "Cache-Control: no-store", "", ""]
        return "\r\n".join(lines).encode("latin-1")

    def serialize(self) -> bytes:
        return self.head() + self.body


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked response; b'' gives the terminating chunk."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def json_response(obj: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, json.dumps(obj).encode(), "application/json")


def error_response(status: int, code: str, message: str) -> HttpResponse:
    """OpenAI-style error body, with our stable code."""
    return json_response({"error": {"message": message, "type": "invalid_request_error" if status < 500
                                    else "server_error", "code": code}}, status)
