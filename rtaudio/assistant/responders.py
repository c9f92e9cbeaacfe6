"""Responders: what answers the user. One small interface, an offline default and an OpenAI-compatible client.

A responder streams `ResponseDelta`s so text-to-speech can start on the first clause while the rest is
still being generated. Tool/function-call deltas from an OpenAI-compatible server are passed through as
they came (`tool_calls`, `raw`), for the caller to act on.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from rtaudio.errors import ConfigError, RtAudioError


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str
    interrupted: bool = False
    """For assistant turns cut by barge-in: `content` holds only what the user actually heard."""


@dataclass(frozen=True)
class ResponseDelta:
    text: str = ""
    tool_calls: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)


class Responder(Protocol):
    def respond(self, history: list[Message], cancel: threading.Event) -> Iterator[ResponseDelta]:
        """Stream the answer to the last user message; stop early when `cancel` is set."""
        ...


class ResponderError(RtAudioError):
    code = "responder_error"


_RULES: tuple[tuple[str, str], ...] = (
    (r"\b(hello|hi|hey)\b", "Hello! I am the rtaudio assistant. What can I do for you?"),
    (r"\bhow are you\b", "I am doing well, thank you. How can I help?"),
    (r"\b(thank you|thanks)\b", "You are welcome."),
    (r"\bwhat can you do\b", "I can listen, answer, and speak. I stop talking as soon as you interrupt me."),
    (r"\b(bye|goodbye)\b", "Goodbye! Talk to you soon."),
)


class EchoResponder:
    """Offline, deterministic: a few rules, otherwise repeats what it heard. For demos, tests and benchmarks."""

    def __init__(self, words_per_delta: int = 2) -> None:
        self.words_per_delta = words_per_delta

    def respond(self, history: list[Message], cancel: threading.Event) -> Iterator[ResponseDelta]:
        heard = next((m.content for m in reversed(history) if m.role == "user"), "").strip()
        answer = next((reply for pattern, reply in _RULES if re.search(pattern, heard.lower())), None)
        if answer is None:
            answer = f"You said: {heard}" if heard else "I did not catch that."
        words = answer.split(" ")
        for i in range(0, len(words), self.words_per_delta):
            if cancel.is_set():
                return
            chunk = " ".join(words[i:i + self.words_per_delta])
            yield ResponseDelta(text=chunk + (" " if i + self.words_per_delta < len(words) else ""))


@dataclass(frozen=True)
class OpenAIChatConfig:
    base_url: str = "http://127.0.0.1:8080/v1"
    model: str = "local"
    api_key_env: str = "OPENAI_API_KEY"
    system_prompt: str = "You are a helpful voice assistant. Answer briefly, in plain spoken sentences."
    timeout_s: float = 30.0
    tools: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ConfigError(f"base_url must be http(s)://, got {self.base_url!r}")


class OpenAIChatResponder:
    """Streams chat completions (SSE) from any OpenAI-compatible server: llama.cpp, Ollama, vLLM, OpenAI."""

    def __init__(self, config: OpenAIChatConfig | None = None) -> None:
        self.config = config or OpenAIChatConfig()

    def _body(self, history: list[Message]) -> dict[str, Any]:
        msgs = [{"role": "system", "content": self.config.system_prompt}]
        msgs += [{"role": m.role, "content": m.content} for m in history]
        body: dict[str, Any] = {"model": self.config.model, "messages": msgs, "stream": True}
        if self.config.tools:
            body["tools"] = list(self.config.tools)
        return body

    def respond(self, history: list[Message], cancel: threading.Event) -> Iterator[ResponseDelta]:
        url = urlsplit(self.config.base_url)
        conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(url.hostname or "127.0.0.1", url.port, timeout=self.config.timeout_s)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        key = os.environ.get(self.config.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        try:
            conn.request("POST", url.path.rstrip("/") + "/chat/completions", json.dumps(self._body(history)), headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise ResponderError(f"chat server answered {resp.status}: {resp.read(300).decode(errors='replace')}")
            yield from self._parse_sse(resp, cancel)
        except OSError as e:
            raise ResponderError(f"cannot reach chat server at {self.config.base_url}: {e}") from e
        finally:
            conn.close()

    @staticmethod
    def _parse_sse(resp: http.client.HTTPResponse, cancel: threading.Event) -> Iterator[ResponseDelta]:
        for raw_line in resp:
            if cancel.is_set():
                return
            line = raw_line.decode("utf-8", errors="replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError as e:
                raise ResponderError(f"bad SSE chunk from chat server: {data[:80]!r}") from e
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                text = delta.get("content") or ""
                tools = tuple(delta.get("tool_calls") or ())
                if text or tools:
                    yield ResponseDelta(text=text, tool_calls=tools, raw=chunk)
