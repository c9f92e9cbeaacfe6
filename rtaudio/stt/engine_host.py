"""One batching engine (one GPU) behind several server processes.

One Python process parses about 50 live websocket sessions in real time (BENCHMARKS.md), so `rtaudio serve
--processes N` spreads sessions over N processes. With an engine in each, N CUDA contexts take turns on the
GPU and each batches only its own sessions. Here each server process keeps its sessions, their VAD and
scheduling (`BatchService`), but its engine is a `RemoteEngine`: a round's windows go, as int16 written once
into shared memory, to the `EngineHost` process, which decodes the rounds of every front-end that is waiting
as one batch and sends back token ids. The host never sees a socket of a client: a front-end that dies
loses only its own sessions, and a failed batch is an error for the rounds in it, not the end of the host.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener, wait
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from rtaudio.errors import BackendError

log = logging.getLogger("rtaudio.stt.engine_host")

INT16_SCALE = 32768.0


@dataclass(frozen=True)
class EngineAddress:
    """Where front-ends reach the host: a Unix socket path (or host:port pair) and the key it checks."""

    address: str
    authkey: bytes

    @classmethod
    def fresh(cls, folder: str | None = None) -> EngineAddress:
        """A new private Unix socket path and random key (the key keeps other local users out)."""
        name = f"rtaudio-engine-{os.getpid()}-{secrets.token_hex(4)}.sock"
        return cls(os.path.join(folder or os.environ.get("XDG_RUNTIME_DIR") or "/tmp", name), secrets.token_bytes(16))


class RemoteEngine:
    """A front-end's `BatchEngine`: `transcribe` sends one round's windows to the host and waits for the tokens.

    Windows travel as int16 (exact for PCM clients' audio, -96 dB for float ones) in one shared-memory block
    this front-end owns and grows; the pipe carries only names, lengths, prompts and flags."""

    def __init__(self, address: EngineAddress, model: str, capacity_samples: int = 64 * 15 * 16000) -> None:
        try:
            self._conn = Client(address.address, authkey=address.authkey)
        except (OSError, EOFError, AuthenticationError) as e:
            raise BackendError(f"cannot reach the engine process at {address.address}: {e}") from e
        self.model = model
        self._lock = threading.Lock()
        self._shm = SharedMemory(create=True, size=2 * capacity_samples)

    def transcribe(self, windows: list[np.ndarray], prompts: list[str] | None = None,
                   finals: list[bool] | None = None,
                   on_greedy: Callable[[list[int], list[list[int]]], None] | None = None) -> list[list[int]]:
        """Token ids per window, as the host's engine decodes them. A round with rows of both kinds gets its
        greedy rows (those not marked in `finals`) back first, while the host beam-searches the others:
        `on_greedy(rows, tokens)` is then called with their indices and tokens before this returns."""
        if not windows:
            return []
        lengths = [len(w) for w in windows]
        with self._lock:
            total = sum(lengths)
            if 2 * total > self._shm.size:
                self._shm.close()
                self._shm.unlink()
                self._shm = SharedMemory(create=True, size=4 * total)  # the host attaches to the new name
            flat = np.ndarray((total,), dtype=np.int16, buffer=self._shm.buf)
            start = 0
            for w, n in zip(windows, lengths, strict=True):
                flat[start:start + n] = np.clip(np.rint(np.asarray(w, dtype=np.float32) * INT16_SCALE), -32768, 32767)
                start += n
            del flat  # no view may outlive a close() of the block
            try:
                self._conn.send(("transcribe", self.model, self._shm.name, lengths, prompts, finals))
                status, payload = self._conn.recv()
                if status == "greedy":  # the rest follows once the host's beam search is done
                    if on_greedy is not None:
                        on_greedy([i for i, f in enumerate(finals or []) if not f], list(payload))
                    status, payload = self._conn.recv()
            except (OSError, EOFError) as e:
                raise BackendError(f"the engine process is gone: {e}") from e
        if status != "ok":
            raise BackendError(f"the engine process failed this batch: {payload}")
        return list(payload)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._shm.close()
            self._shm.unlink()


@dataclass
class _Round:
    conn: Connection
    model: str
    windows: list[np.ndarray]
    prompts: list[str] | None
    finals: list[bool] | None


class EngineHost:
    """Serves `RemoteEngine`s: each pass takes the rounds of all front-ends waiting and decodes them together."""

    def __init__(self, engines: dict[str, Any], address: EngineAddress) -> None:
        self.engines = engines
        """model name -> an engine with `transcribe(windows, prompts=, finals=)` (e.g. BatchedWhisper)."""
        self.address = address
        self._listener = Listener(address.address, authkey=address.authkey)
        self._conns: list[Connection] = []
        self._blocks: dict[Connection, SharedMemory] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.passes = 0
        self.rounds = 0
        threading.Thread(target=self._accept, name="rtaudio-engine-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, AuthenticationError) as e:  # a caller without the key, or the listener closed
                if self._stop.is_set():
                    return
                log.warning("engine host refused a connection: %s", e)
                continue
            with self._lock:
                self._conns.append(conn)

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            self.serve_once(timeout_s=0.2)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()

    def serve_once(self, timeout_s: float = 0.2) -> int:
        """Decode the rounds of every front-end waiting now (at most `timeout_s` for the first); returns how many."""
        with self._lock:
            conns = list(self._conns)
        rounds = [r for conn in wait(conns, timeout_s) if (r := self._receive(conn)) is not None]  # type: ignore[arg-type]
        for model in {r.model for r in rounds}:
            self._decode([r for r in rounds if r.model == model], model)
        return len(rounds)

    def _receive(self, conn: Connection) -> _Round | None:
        try:
            _, model, block, lengths, prompts, finals = conn.recv()
            shm = self._attach(conn, block)
        except (OSError, EOFError, ValueError, TypeError) as e:  # the front-end left (or sent garbage): forget it
            self._drop(conn, e)
            return None
        flat = np.ndarray((sum(lengths),), dtype=np.int16, buffer=shm.buf)
        bounds = np.cumsum([0, *lengths])
        windows = [flat[a:b].astype(np.float32) / INT16_SCALE for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        del flat
        return _Round(conn, model, windows, prompts, finals)

    def _attach(self, conn: Connection, name: str) -> SharedMemory:
        shm = self._blocks.get(conn)
        if shm is None or shm.name.lstrip("/") != name.lstrip("/"):
            if shm is not None:
                shm.close()
            shm = SharedMemory(name=name)  # the front-end unlinks it (the processes share one resource tracker)
            self._blocks[conn] = shm
        return shm

    def _drop(self, conn: Connection, why: BaseException) -> None:
        log.info("front-end left the engine host: %s", why)
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        shm = self._blocks.pop(conn, None)
        if shm is not None:
            shm.close()
        conn.close()

    def _decode(self, rounds: list[_Round], model: str) -> None:
        """The greedy rows of all rounds as one batch, then their beam rows as another. A round's greedy
        tokens go back as soon as they are decoded (all of it, if it has no beam rows), so its partial
        captions need not wait for the beam search, as with an engine in the server process
        (`batch_runner.phases`); the engine's work is the same, it decodes the two kinds apart anyway."""
        flags = [r.finals or [False] * len(r.windows) for r in rounds]
        tokens: list[list[list[int]]] = [[[] for _ in r.windows] for r in rounds]
        answered: set[int] = set()
        for beam in (False, True):
            rows = [(k, i) for k, f in enumerate(flags) if k not in answered for i, b in enumerate(f) if b == beam]
            error = self._run(model, rounds, rows, beam, tokens) if rows else None
            for k, r in enumerate(rounds):
                if k in answered or (beam and not any(flags[k])):
                    continue
                if error is not None and any(b == beam for b in flags[k]):
                    reply: tuple[str, Any] = ("error", error)
                elif beam or not any(flags[k]):
                    reply = ("ok", tokens[k])
                else:  # both kinds: the greedy rows now, if it has any
                    if not all(flags[k]):
                        self._send(r.conn, ("greedy", [t for t, b in zip(tokens[k], flags[k], strict=True) if not b]))
                    continue
                answered.add(k)
                self._send(r.conn, reply)
        self.passes += 1
        self.rounds += len(rounds)

    def _run(self, model: str, rounds: list[_Round], rows: list[tuple[int, int]], beam: bool,
             tokens: list[list[list[int]]]) -> str | None:
        """Decode rows (round, window) of one kind into `tokens`; the error, if the batch failed."""
        try:
            engine = self.engines.get(model)
            if engine is None:
                raise BackendError(f"the engine process does not serve model {model!r} (it serves {sorted(self.engines)})")
            prompts = None
            if any(rounds[k].prompts for k, _ in rows):
                prompts = [(rounds[k].prompts or [""] * len(rounds[k].windows))[i] for k, i in rows]
            out = engine.transcribe([rounds[k].windows[i] for k, i in rows], prompts=prompts, finals=[beam] * len(rows))
            for (k, i), t in zip(rows, out, strict=True):
                tokens[k][i] = t
            return None
        except Exception as e:  # noqa: BLE001 - an error for these rounds, not the end of the host
            log.error("engine host batch failed", exc_info=True)
            return f"{type(e).__name__}: {e}"

    def _send(self, conn: Connection, reply: tuple[str, Any]) -> None:
        try:
            conn.send(reply)
        except (OSError, EOFError) as e:
            self._drop(conn, e)


def run_engine_host(models: list[str], address: EngineAddress, pack: str | None, device: str,
                    ready: Any, load: Callable[[str, str, Path | None], Any] | None = None) -> None:
    """Process entry: load each model's batched engine, listen at `address`, set `ready`, serve until killed."""
    from rtaudio.log import setup_logging

    setup_logging()
    if load is None:
        from rtaudio.stt.batch_service import load_engine_for

        load = load_engine_for
    engines = {m: load(m, device, Path(pack) if pack else None) for m in models}
    host = EngineHost(engines, address)
    # `serve` stops this process with SIGTERM: exit normally, so the listener's socket file is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ready.set()
    try:
        host.serve_forever()
    finally:
        host.stop()
