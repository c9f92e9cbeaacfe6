"""One batching engine (one GPU) behind several server processes.

One Python process parses about 50 live websocket sessions in real time (BENCHMARKS.md), so `rtaudio serve
--processes N` spreads sessions over N processes. With an engine in each, N CUDA contexts take turns on the
GPU and each batches only its own sessions. Here each server process keeps its sessions, their VAD and
scheduling (`BatchService`), but its engine is a `RemoteEngine`: a round's windows go, as int16 written once
into shared memory, to the `EngineHost` process, which decodes the rounds of every front-end that is waiting
as one batch and sends back token ids: partials and finals in two lanes that run side by side, so partials
never wait for a beam search. The host never sees a socket of a client: a front-end that dies
loses only its own sessions, and a failed batch is an error for the rounds in it, not the end of the host.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener, wait
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

from rtaudio.errors import BackendError
from rtaudio.log import log_event

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


class RemoteRound:
    """A round sent to the engine host. Its greedy rows (partials) are decoded in the host's partial lane and
    come back first; its final rows follow from the final lane, possibly after later rounds' partials."""

    def __init__(self, seq: int, finals: list[bool]) -> None:
        self.seq = seq
        self.finals = finals
        self.greedy_rows = [i for i, f in enumerate(finals) if not f]
        self.greedy: list[list[int]] | None = None
        """The greedy rows' tokens, in `greedy_rows` order, once they are back."""
        self.tokens: list[list[int]] | None = None
        """Every row's tokens, once the whole round is back."""
        self.finals_greedy = False
        """The host decoded the final rows greedily (still timed, with their context): they waited too long."""
        self.error: str | None = None

    @property
    def done(self) -> bool:
        return self.tokens is not None or self.error is not None

    @property
    def greedy_back(self) -> bool:
        return self.greedy is not None or self.done

    def greedy_tokens(self) -> list[list[int]]:
        """The greedy rows' tokens (`greedy_back` must be true)."""
        if self.greedy is not None:
            return self.greedy
        assert self.tokens is not None, self.error
        return [self.tokens[i] for i in self.greedy_rows]


class RemoteEngine:
    """A front-end's `BatchEngine`: `submit` sends one round's windows to the host, whose replies `wait` and
    `poll` read; `transcribe` does all three for one round.

    Windows travel as int16 (exact for PCM clients' audio, -96 dB for float ones) in one shared-memory block
    this front-end owns and grows; the pipe carries only names, lengths, prompts and flags. The host copies a
    round's audio out as it takes the round, and says so with its first reply: a round is written into the
    block only once every earlier one has had that reply. Rounds are numbered, since the host's two lanes
    answer them out of order."""

    def __init__(self, address: EngineAddress, model: str, capacity_samples: int = 64 * 15 * 16000) -> None:
        try:
            self._conn = Client(address.address, authkey=address.authkey)
        except (OSError, EOFError, AuthenticationError) as e:
            raise BackendError(f"cannot reach the engine process at {address.address}: {e}") from e
        self.model = model
        self._lock = threading.Lock()
        self._shm = SharedMemory(create=True, size=2 * capacity_samples)
        self._seq = 0
        self._flight: dict[int, RemoteRound] = {}

    def submit(self, windows: list[np.ndarray], prompts: list[str] | None = None,
               finals: list[bool] | None = None) -> RemoteRound:
        """Send a round (rows marked in `finals` are beam-searched and timed); returns at once."""
        flags = list(finals) if finals is not None else [False] * len(windows)
        lengths = [len(w) for w in windows]
        with self._lock:
            while any(not r.greedy_back for r in self._flight.values()):
                self._read()  # the host has not taken that round's audio out of the block yet
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
            self._seq += 1
            rnd = RemoteRound(self._seq, flags)
            try:
                self._conn.send(("transcribe", rnd.seq, self.model, self._shm.name, lengths, prompts, flags))
            except (OSError, EOFError) as e:
                raise BackendError(f"the engine process is gone: {e}") from e
            self._flight[rnd.seq] = rnd
        return rnd

    def wait(self, rnd: RemoteRound, greedy_only: bool = False) -> None:
        """Until the round is back (with `greedy_only`, its greedy rows); raises if the host failed it."""
        with self._lock:
            while not (rnd.greedy_back if greedy_only else rnd.done):
                self._read()
        if rnd.error is not None:
            raise BackendError(f"the engine process failed this batch: {rnd.error}")

    def poll(self, timeout_s: float = 0.0) -> bool:
        """Read the replies that come within `timeout_s`; whether there were any."""
        read = False
        with self._lock:
            while self._flight and self._conn.poll(0.0 if read else timeout_s):
                self._read()
                read = True
        return read

    @property
    def in_flight(self) -> int:
        """Rounds sent and not yet wholly back."""
        return len(self._flight)

    def _read(self) -> None:
        try:
            seq, status, payload, *more = self._conn.recv()
        except (OSError, EOFError) as e:
            raise BackendError(f"the engine process is gone: {e}") from e
        rnd = self._flight.get(seq)
        if rnd is None:
            return
        if status == "greedy":
            rnd.greedy = list(payload)
            return
        del self._flight[seq]
        if status == "ok":
            rnd.tokens = list(payload)
            rnd.finals_greedy = bool(more and more[0])
        else:
            rnd.error = str(payload)

    def transcribe(self, windows: list[np.ndarray], prompts: list[str] | None = None,
                   finals: list[bool] | None = None) -> list[list[int]]:
        """Token ids per window, as the host's engine decodes them: one round, sent and waited for."""
        if not windows:
            return []
        rnd = self.submit(windows, prompts, finals)
        self.wait(rnd)
        assert rnd.tokens is not None
        return rnd.tokens

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            self._shm.close()
            self._shm.unlink()


@dataclass
class _Round:
    conn: Connection
    seq: int
    model: str
    windows: list[np.ndarray]
    prompts: list[str] | None
    finals: list[bool]
    received_s: float
    tokens: list[list[int]] = field(default_factory=list)
    greedy_sent: threading.Event = field(default_factory=threading.Event)
    """Set once the partial lane has answered (or had nothing to do): a round's final reply comes after it."""
    failed: bool = False

    def rows(self, final: bool) -> list[int]:
        return [i for i, f in enumerate(self.finals) if f == final]


class _Lane:
    """Rounds waiting for one kind of decode: `take` hands a lane thread all of them at once."""

    def __init__(self) -> None:
        self._rounds: list[_Round] = []
        self._ready = threading.Condition()

    def put(self, rounds: list[_Round]) -> None:
        if rounds:
            with self._ready:
                self._rounds += rounds
                self._ready.notify()

    def take(self, timeout_s: float) -> list[_Round]:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._rounds), timeout_s)
            out, self._rounds = self._rounds, []
        return out


@dataclass
class LaneStats:
    """What the host's lanes did (see `EngineHost`); logged at info level every `REPORT_S`."""

    partial_passes: int = 0
    final_passes: int = 0
    rounds: int = 0
    finals_beam: int = 0
    finals_greedy: int = 0
    """Final rows decoded greedily (still timed, with their context) because they waited too long."""
    recent: dict[bool, collections.deque[tuple[float, float, int]]] = field(
        default_factory=lambda: {False: collections.deque(maxlen=2048), True: collections.deque(maxlen=2048)})
    """Per lane (final?): the recent passes' (wait of their oldest round, decode seconds, rows)."""

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {"rounds": self.rounds, "finals_beam": self.finals_beam,
                                 "finals_greedy": self.finals_greedy}
        for final, name in ((False, "partial"), (True, "final")):
            passes = np.array(list(self.recent[final])).reshape(-1, 3)
            if len(passes):
                out |= {f"{name}_passes": len(passes), f"{name}_rows_mean": round(float(passes[:, 2].mean()), 1),
                        f"{name}_pass_p50_ms": round(1000 * float(np.median(passes[:, 1])), 1),
                        f"{name}_wait_p50_ms": round(1000 * float(np.median(passes[:, 0])), 1),
                        f"{name}_wait_p95_ms": round(1000 * float(np.percentile(passes[:, 0], 95)), 1)}
        return out


REPORT_S = 10.0


class EngineHost:
    """Serves `RemoteEngine`s with two lanes, each a thread with its own CUDA stream: the partial lane
    decodes the greedy rows of every round waiting as one batch, the final lane their beam rows likewise.

    With one lane doing both, a round's partials waited for the beam search of every final before them
    (on the H100, 400 sessions through 8 server processes: p99 of words first in a partial 1.09-1.22 s).
    Apart, a front-end gets its partials back within one partial pass and plans its next round while its
    finals are still searched (`BatchService`); the GPU runs both lanes' kernels side by side, as neither
    fills it (a decoder step costs about the same for 32 rows as for 128). Finals that wait more than
    `final_late_s` in the final lane are decoded greedily (timed, with their context) so that lane cannot
    fall behind for good."""

    def __init__(self, engines: dict[str, Any], address: EngineAddress, final_late_s: float | None = 0.5) -> None:
        self.engines = engines
        """model name -> an engine with `transcribe(windows, prompts=, finals=, beam=)` (e.g. BatchedWhisper)."""
        self.address = address
        self.final_late_s = final_late_s
        self.stats = LaneStats()
        self._listener = Listener(address.address, authkey=address.authkey)
        self._conns: list[Connection] = []
        self._blocks: dict[Connection, SharedMemory] = {}
        self._send_locks: dict[Connection, threading.Lock] = {}
        self._dead: dict[Connection, BaseException] = {}  # front-ends a lane could not answer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._lanes = {False: _Lane(), True: _Lane()}
        self._reported = time.monotonic()
        threading.Thread(target=self._accept, name="rtaudio-engine-accept", daemon=True).start()
        for final in (False, True):
            threading.Thread(target=self._lane_loop, args=(final,), daemon=True,
                             name=f"rtaudio-engine-{'final' if final else 'partial'}-lane").start()

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
                self._send_locks[conn] = threading.Lock()

    def serve_forever(self) -> None:
        while not self._stop.is_set():
            self.serve_once(timeout_s=0.2)

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()

    def serve_once(self, timeout_s: float = 0.2) -> int:
        """Take the rounds of every front-end waiting now (at most `timeout_s` for the first) into the lanes;
        returns how many. Rounds taken together go into each lane together."""
        with self._lock:
            dead, self._dead = self._dead, {}
        for conn, why in dead.items():
            self._drop(conn, why)
        with self._lock:
            conns = list(self._conns)
        rounds = [r for conn in wait(conns, timeout_s) if (r := self._receive(conn)) is not None]  # type: ignore[arg-type]
        self.stats.rounds += len(rounds)
        for r in rounds:
            if not r.rows(False):  # only finals: its first reply says the audio was taken (see RemoteEngine)
                self._send(r.conn, (r.seq, "greedy", []))
                r.greedy_sent.set()
        self._lanes[False].put([r for r in rounds if r.rows(False)])
        self._lanes[True].put([r for r in rounds if r.rows(True)])
        return len(rounds)

    def _receive(self, conn: Connection) -> _Round | None:
        try:
            _, seq, model, block, lengths, prompts, finals = conn.recv()
            shm = self._attach(conn, block)
        except (OSError, EOFError, ValueError, TypeError) as e:  # the front-end left (or sent garbage): forget it
            self._drop(conn, e)
            return None
        flat = np.ndarray((sum(lengths),), dtype=np.int16, buffer=shm.buf)
        bounds = np.cumsum([0, *lengths])
        windows = [flat[a:b].astype(np.float32) / INT16_SCALE for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        del flat
        flags = [bool(f) for f in finals] if finals is not None else [False] * len(windows)
        return _Round(conn, seq, model, windows, prompts, flags, time.monotonic(), [[] for _ in windows])

    def _attach(self, conn: Connection, name: str) -> SharedMemory:
        shm = self._blocks.get(conn)
        if shm is None or shm.name.lstrip("/") != name.lstrip("/"):
            if shm is not None:
                shm.close()
            shm = SharedMemory(name=name)  # the front-end unlinks it (the processes share one resource tracker)
            self._blocks[conn] = shm
        return shm

    def _drop(self, conn: Connection, why: BaseException) -> None:
        """Forget a front-end (on the thread that waits on the connections: it must not close one that
        `wait` is watching; the lanes report theirs through `_dead`)."""
        log.info("front-end left the engine host: %s", why)
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
            send_lock = self._send_locks.pop(conn, None)
        shm = self._blocks.pop(conn, None)
        if shm is not None:
            shm.close()
        with send_lock or contextlib.nullcontext():  # not while a lane writes to it
            conn.close()

    def _lane_loop(self, final: bool) -> None:
        with contextlib.ExitStack() as stack:
            for engine in self.engines.values():
                lane = getattr(engine, "lane", None)  # e.g. a CUDA stream of this thread's own
                if lane is not None:
                    stack.enter_context(lane(urgent=not final))  # partials first where both wait
            while not self._stop.is_set():
                rounds = self._lanes[final].take(timeout_s=0.2)
                for model in sorted({r.model for r in rounds}):
                    self._decode([r for r in rounds if r.model == model], model, final)

    def _decode(self, rounds: list[_Round], model: str, final: bool) -> None:
        """One pass of a lane: the rows of its kind of all `rounds` as one batch, then each round's reply."""
        beam = None
        started = time.monotonic()
        waited = started - min(r.received_s for r in rounds)
        if final and self.final_late_s is not None and waited > self.final_late_s:
            beam = 1
        rows = [(r, i) for r in rounds for i in r.rows(final)]
        error = self._run(model, rows, final, beam)
        self.stats.recent[final].append((waited, time.monotonic() - started, len(rows)))
        if not final and started - self._reported > REPORT_S:
            self._reported = started
            log_event(log, logging.INFO, "engine lanes", **self.stats.summary())
        if final:
            self.stats.final_passes += 1
            if error is None:
                self.stats.finals_greedy += len(rows) if beam == 1 else 0
                self.stats.finals_beam += 0 if beam == 1 else len(rows)
        else:
            self.stats.partial_passes += 1
        for r in rounds:
            if final:
                self._answer_final(r, error, beam == 1)
            else:
                self._answer_partials(r, error)

    def _answer_partials(self, r: _Round, error: str | None) -> None:
        """A round's reply from the partial lane: its greedy rows' tokens (all of it if it has no finals)."""
        try:
            if error is not None:
                r.failed = True
                self._send(r.conn, (r.seq, "error", error))
            elif r.rows(True):  # its finals follow from the final lane
                self._send(r.conn, (r.seq, "greedy", [r.tokens[i] for i in r.rows(False)]))
            else:
                self._send(r.conn, (r.seq, "ok", r.tokens, False))
        finally:
            r.greedy_sent.set()

    def _answer_final(self, r: _Round, error: str | None, greedy: bool) -> None:
        """A round's last reply, from the final lane: after its partials' (the front-end reads them first)."""
        r.greedy_sent.wait()
        if not r.failed:
            self._send(r.conn, (r.seq, "error", error) if error is not None else (r.seq, "ok", r.tokens, greedy))

    def _run(self, model: str, rows: list[tuple[_Round, int]], final: bool, beam: int | None) -> str | None:
        """Decode rows (round, window) of one kind into their rounds' tokens; the error, if the batch failed."""
        try:
            engine = self.engines.get(model)
            if engine is None:
                raise BackendError(f"the engine process does not serve model {model!r} (it serves {sorted(self.engines)})")
            prompts = None
            if any(r.prompts for r, _ in rows):
                prompts = [(r.prompts or [""] * len(r.windows))[i] for r, i in rows]
            options = {"beam": beam} if beam is not None else {}
            out = engine.transcribe([r.windows[i] for r, i in rows], prompts=prompts, finals=[final] * len(rows),
                                    **options)
            for (r, i), t in zip(rows, out, strict=True):
                r.tokens[i] = t
            return None
        except Exception as e:  # noqa: BLE001 - an error for these rounds, not the end of the host
            log.error("engine host batch failed", exc_info=True)
            return f"{type(e).__name__}: {e}"

    def _send(self, conn: Connection, reply: tuple[Any, ...]) -> None:
        lock = self._send_locks.get(conn)
        if lock is None:  # dropped meanwhile
            return
        with lock:  # both lanes answer the same front-end
            if conn.closed:
                return
            try:
                conn.send(reply)
            except (OSError, EOFError) as e:  # it left: dropped by the waiting thread, at its next pass
                with self._lock:
                    self._dead[conn] = e


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
