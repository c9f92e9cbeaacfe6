"""Hundreds of live caption streams on one GPU: real speech at real-time pace through the batch scheduler.

Each simulated session plays recordings from the dev set (cycled, 1 s apart) into its own `BatchStream`;
every tick the `BatchRunner` scores new audio with a batched Silero VAD and decodes the most overdue
windows as one fp16 batch on the GPU (`BatchedWhisper`). Reported per N: partial latency (end of a word in
the audio -> first caption showing it; word times from an offline pass of our recognizer), final latency
(last word of a segment -> its final), decode lateness, batch sizes; plus streaming WER with one session
per recording. A session "stays real time" when p99 partial latency < 1 s and lateness does not grow.

Runs where the inputs packed by `tools/gpu_pack.py` are (default `.gpu/`), e.g. on the lent H100:
    python -m bench.gpu_streams --streams 100 200 400 600 --duration-s 30 --wer
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

try:
    import rtaudio_models  # noqa: F401
except ImportError:  # a bare checkout on a GPU host: models/ is the rtaudio_models package
    sys.modules["rtaudio_models"] = importlib.import_module("models")

from bench.word_match import shown_words
from rtaudio.frames import Caption
from rtaudio.server.client import CaptionEvent, ServerEvent, StreamClient, caption_from_json
from rtaudio.stt.alignment import timed_row_words
from rtaudio.stt.batch_runner import BatchedVad, BatchRunner
from rtaudio.stt.batch_stream import BatchScheduler, BatchStream, BatchStreamConfig
from rtaudio.stt.stabilizer import normalize_word
from rtaudio.stt.textnorm import normalize_english
from rtaudio.stt.tokenizer import WhisperTokenizer
from rtaudio.stt.vad import VadConfig

REPO = Path(__file__).resolve().parents[1]
SR = 16000


def build_engine(pack: Path, model: str, device: str, static_shapes: bool = False,  # type: ignore[no-untyped-def]
                 shapes_s: tuple[float, ...] = (8.0, 15.0), final_beam: int = 5):
    from rtaudio_models.whisper.batched import BatchedWhisper, load_compact, text_decoder

    folder = pack / model
    info = json.loads((folder / "whisper.json").read_text())
    tok = WhisperTokenizer.from_file(folder / "tokenizer.json", info["dims"]["n_vocab"])
    engine = BatchedWhisper.for_whisper(load_compact(folder, device), info, tok, device, static_shapes=static_shapes,
                                        static_windows_s=shapes_s, final_beam=final_beam)
    return engine, text_decoder(tok), functools.partial(timed_row_words, tok)


def profile_engine(engine) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Time the engine's stages (synchronizing the device around each): where a round's time goes."""
    import torch
    from rtaudio_models.whisper import batched

    spent: dict[str, list[float]] = {}
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)

    def timer(name: str, fn):  # type: ignore[no-untyped-def]
        def timed(*a, **k):  # type: ignore[no-untyped-def]
            sync()
            t = time.perf_counter()
            out = fn(*a, **k)
            sync()
            spent.setdefault(name, []).append(time.perf_counter() - t)
            return out
        return timed

    engine._encode = timer("encode", engine._encode)
    engine.timed = timer("align", engine.timed)
    batched.StaticDecoder.run = timer("greedy loop", batched.StaticDecoder.run)
    batched.BeamDecoder.run = timer("beam loop", batched.BeamDecoder.run)
    return spent


@dataclass
class Session:
    stream: BatchStream
    start_wall: float
    audio: np.ndarray
    files: list[tuple[str, float]]  # (file, stream offset s)
    fed: int = 0
    captions: list[tuple[float, object]] = field(default_factory=list)
    next_file: int = 1  # a session per recording: the file whose session opens next
    retiring: list[BatchStream] = field(default_factory=list)  # ended sessions whose finals are still due


def _shifted(cap: Caption, offset: int) -> Caption:
    """A caption of a recording's own session in the times of the slot that played it (`offset` samples in)."""
    s = offset / SR
    return replace(cap, start_sample=cap.start_sample + offset, end_sample=cap.end_sample + offset,
                   words=tuple(replace(w, start_s=w.start_s + s, end_s=w.end_s + s) for w in cap.words))


def make_audio(names: list[str], speech: dict[str, np.ndarray], first: int, min_s: float, gap_s: float = 1.0
               ) -> tuple[np.ndarray, list[tuple[str, float]]]:
    parts, files, t, i = [], [], 0.0, first
    gap = np.zeros(int(gap_s * SR), dtype=np.float32)
    while t < min_s:
        name = names[i % len(names)]
        x = speech[name].astype(np.float32) / 32767
        files.append((name, t))
        parts += [x, gap]
        t += (len(x) + len(gap)) / SR
        i += 1
    return np.concatenate(parts), files


def run(engine, decode, vad_path: Path, speech: dict[str, np.ndarray], names: list[str], n: int,  # type: ignore[no-untyped-def]
        duration_s: float, config: BatchStreamConfig, max_batch: int, one_file_each: bool = False,
        greedy_late_s: float | None = BatchScheduler().greedy_late_s, words=None, vad_device: str | None = None,
        session_per_recording: bool = False) -> dict:
    """n sessions at real-time pace for `duration_s`. Each plays recordings 1 s apart as one stream, or with
    `session_per_recording` each recording as its own session, opened as it starts and closed after it (as
    clients come and go on a server; a stream's finals then never hear another recording as context)."""
    runner = BatchRunner(engine, decode, BatchedVad(vad_path, threads=12, chunk=48, device=vad_device),
                         BatchScheduler(max_batch, greedy_late_s), words=words)
    t0 = time.monotonic() + 0.5
    sessions = []
    for i in range(n):
        if one_file_each:
            x = speech[names[i]].astype(np.float32) / 32767
            audio = np.concatenate([x, np.zeros(2 * SR, np.float32)])
            files = [(names[i], 0.0)]
        else:
            audio, files = make_audio(names, speech, i * 7, duration_s + 2)
        start = t0 + (i % 25) * 0.04
        s = Session(BatchStream(i, config, origin_s=start), start, audio, files)
        runner.add(s.stream)
        sessions.append(s)
    owners = {i: (s, 0) for i, s in enumerate(sessions)}  # stream id -> (session, its first sample there)
    end_wall = t0 + duration_s
    ticks = []
    while True:
        now = time.monotonic()
        if now >= end_wall:
            break
        for s in sessions:
            target = min(len(s.audio), int((now - s.start_wall) * SR))
            while session_per_recording and s.next_file < len(s.files) and (cut := int(s.files[s.next_file][1] * SR)) <= target:
                s.stream.accept(s.audio[s.fed:cut])
                s.fed = cut
                s.stream.close_segment(end_of_input=True)
                s.retiring.append(s.stream)
                s.stream = BatchStream(len(owners), config, origin_s=s.start_wall + cut / SR)
                owners[s.stream.id] = (s, cut)
                runner.add(s.stream)
                s.next_file += 1
            for old in [o for o in s.retiring if o.idle]:
                runner.remove(old.id)
                s.retiring.remove(old)
            if target > s.fed:
                s.stream.accept(s.audio[s.fed:target])
                s.fed = target
        t_tick = time.monotonic()

        def emit(caps: list) -> None:  # captions leave as each phase (partials, finals) is decoded
            shown = time.monotonic()
            for sid, cap in caps:
                s, offset = owners[sid]
                s.captions.append((shown, _shifted(cap, offset) if offset else cap))

        _, rep = runner.tick(now, emit)
        done = time.monotonic()
        ticks.append((done - t_tick, rep.batch_size, rep.waiting, rep.worst_lateness_s, rep.vad_s, rep.decode_s,
                      rep.greedy_finals, rep.partials_s, rep.finals, rep.lateness_s))
        if rep.batch_size == 0:
            time.sleep(0.005)
    return {"sessions": sessions, "ticks": ticks, "t0": t0, "duration_s": duration_s}


def _serve(pack: Path, model: str, port: int, max_sessions: int, processes: int = 1,
           engine_per_process: bool = False) -> subprocess.Popen:
    """`rtaudio serve` with the batched backend on the pack's model, in `processes` processes of its own
    (sharing one engine process unless `engine_per_process`); returns once every one of them answers."""
    cmd = [sys.executable, "-m", "rtaudio.cli", "serve", "--port", str(port), "--stt-backend", "batched",
           "--batched-pack", str(pack), "--model", model, "--max-sessions", str(max_sessions), "--decode-workers", "8",
           "--processes", str(processes)] + (["--engine-per-process"] if engine_per_process else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 300
    up: set[int] = set()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                up.add(int(json.loads(r.read())["process"]))
                if len(up) >= processes:
                    return proc
            time.sleep(0.2)
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError("the server did not become healthy in 300 s")


def _clients(job: tuple) -> list[dict]:  # type: ignore[type-arg]
    """One client process: its share of the sessions, each streaming at real-time pace over a websocket (with
    `per_recording` a session per recording, connected half a second before it starts)."""
    url, pack, sids, n_names, duration_s, t0, config, per_recording = job
    speech = dict(np.load(pack / "speech.npz"))
    names = sorted(speech)[:n_names]

    async def connection(audio: np.ndarray, at: float, offset: int, captions: list) -> None:  # type: ignore[type-arg]
        async with await StreamClient.connect(url, config) as client:
            async def collect() -> None:
                async for ev in client:
                    if isinstance(ev, CaptionEvent):
                        captions.append((time.monotonic(), ev.data, offset))
                    elif isinstance(ev, ServerEvent) and ev.type in ("audio.ended", "error"):
                        return

            collector = asyncio.create_task(collect())
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await client.stream_audio(audio, chunk_ms=40, realtime=True)
            await client.end_audio()
            await asyncio.wait_for(collector, 60)

    async def one(sid: int) -> dict:
        audio, files = make_audio(names, speech, sid * 7, duration_s + 2)
        start = t0 + (sid % 25) * 0.04
        end = int(duration_s * SR)
        captions: list[tuple[float, dict, int]] = []
        bounds = [int(o * SR) for _, o in files][1:] + [len(audio)] if per_recording else [len(audio)]
        parts = [(a, min(b, end)) for a, b in zip([0, *bounds[:-1]], bounds, strict=True) if a < end]

        async def play(a: int, b: int) -> None:
            await asyncio.sleep(max(0.0, start + a / SR - 0.5 - time.monotonic()))
            await connection(audio[a:b], start + a / SR, a, captions)

        await asyncio.gather(*(play(a, b) for a, b in parts))
        return {"sid": sid, "start": start, "files": files, "captions": captions}

    async def all_of_them() -> list[dict]:
        return list(await asyncio.gather(*(one(sid) for sid in sids)))

    return asyncio.run(all_of_them())


def run_server(pack: Path, model: str, names: list[str], n: int, duration_s: float, config: BatchStreamConfig,
               port: int, procs: int, session_per_recording: bool = False) -> dict:
    """N websocket clients on loopback against `rtaudio serve --stt-backend batched`, from `procs` processes."""
    url = f"ws://127.0.0.1:{port}/v1/stream"
    session = {"audio": {"sample_rate_hz": SR},
               "partial_interval_ms": int(config.partial_interval_ms),
               "vad": {"min_silence_ms": config.vad.min_silence_ms}}
    t0 = time.monotonic() + 3.0
    jobs = [(url, pack, list(range(i, n, procs)), len(names), duration_s, t0, session, session_per_recording)
            for i in range(procs)]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        results = [r for part in pool.map(_clients, jobs) for r in part]
    sessions = [Session(None, r["start"], np.zeros(0, np.float32), r["files"],  # type: ignore[arg-type]
                        captions=[(t, _shifted(caption_from_json(d), offset) if offset else caption_from_json(d))
                                  for t, d, offset in r["captions"]]) for r in results]
    return {"sessions": sessions, "ticks": [], "t0": t0, "duration_s": duration_s, "server": _server_batches(port)}


def _server_batches(port: int, tries: int = 200) -> dict:
    """The server processes' batch metrics (finals beam / greedy, round p50) once the run is over: each
    request reaches one process, so ask until the answers stop bringing new ones (a process's are fixed
    once its sessions are gone)."""
    processes: set[tuple[str, ...]] = set()
    for _ in range(tries):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            processes.add(tuple(x for x in r.read().decode().splitlines() if x.startswith("rtaudio_batch_")))

    def values(lines: tuple[str, ...], name: str, label: str) -> list[float]:
        return [float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith(name + "{") and label in x]

    greedy = sum(sum(values(p, "rtaudio_batch_finals", 'decode="greedy"')) for p in processes)
    beam = sum(sum(values(p, "rtaudio_batch_finals", 'decode="beam"')) for p in processes)
    rounds = [v for p in processes for v in values(p, "rtaudio_batch_round_seconds", 'quantile="0.5"')]
    return {"server_processes_seen": len(processes), "server_greedy_finals": int(greedy),
            "server_finals": int(greedy + beam),
            "server_round_p50_ms": 1000 * float(np.median(rounds)) if rounds else float("nan")}


def _this_run(server: dict, rows: list[dict]) -> dict:  # type: ignore[type-arg]
    """A server's finals counts are since it started: this run's are those less the earlier runs' (the round
    p50 is over each process's last 1024 rounds)."""
    out = dict(server)
    for key in ("server_greedy_finals", "server_finals"):
        if key in out:
            out[key] -= sum(r.get(key, 0) for r in rows)
    return out


def final_texts(engine, decode, vad_path: Path, speech: dict[str, np.ndarray], names: list[str],  # type: ignore[no-untyped-def]
                config: BatchStreamConfig, max_batch: int, words=None, greedy: bool = False) -> dict[str, str]:
    """Each recording's final captions, as fast as the engine goes (no clock, no partials): the finals of a
    real-time run are the same, since a final decodes its whole segment on its own. Runs on a CPU too.
    `greedy`: every final as the scheduler decodes it when the batch runs late (greedy, no context)."""
    runner = BatchRunner(engine, decode, BatchedVad(vad_path), BatchScheduler(max_batch), words=words)
    finals: dict[int, list[str]] = {}
    for i, name in enumerate(names):
        stream = BatchStream(i, config)
        stream.accept(np.concatenate([speech[name].astype(np.float32) / 32767, np.zeros(2 * SR, np.float32)]))
        runner.add(stream)
    runner.vad.score(list(runner.streams.values()))
    while True:
        requests = [r for s in runner.streams.values() if (r := s.request()) is not None and r.final]
        if greedy:
            requests = [replace(r, beam=False) for r in requests]
        if not requests:
            break
        for sid, cap in runner.decode_batch(requests[:max_batch]):
            finals.setdefault(sid, []).append(cap.text)
    return {name: " ".join(finals.get(i, [])) for i, name in enumerate(names)}


def latencies(result: dict, refs: dict) -> dict:
    partial, final, missed, total = [], [], 0, 0
    first_final: list[bool] = []  # per shown word: its first showing was a final caption
    spelled: list[bool] = []  # per shown word: from AN4 (spelled letters and digit strings, see _tail)
    slow: list[dict] = []  # a sample of words shown > 1 s after they were said, with their segment's captions
    horizon = result["t0"] + result["duration_s"] - 2.0
    for s in result["sessions"]:
        ref_words = []  # (key, start_s, end_s) in stream time
        for name, offset in s.files:
            for text, ws, we in refs[name].get("words", []):
                if normalize_word(text):
                    ref_words.append((normalize_word(text), offset + ws, offset + we, name))
        shown = [None] * len(ref_words)
        by_final = [False] * len(ref_words)
        for emit, cap in s.captions:
            lo, hi = cap.start_s - 0.5, cap.end_s + 0.5
            idx = [k for k, (_, ws, we, _) in enumerate(ref_words) if we >= lo and ws <= hi]
            keys = [normalize_word(w) for w in cap.text.split()]
            matched = [idx[j] for j in shown_words(keys, [ref_words[k][0] for k in idx])]
            for k in matched:
                if shown[k] is None:
                    shown[k] = emit
                    by_final[k] = cap.is_final
            if cap.is_final and matched:
                final.append(emit - (s.start_wall + max(ref_words[k][2] for k in matched)))
        for k, (_, _, we, name) in enumerate(ref_words):
            if s.start_wall + we + 1.0 > horizon:
                continue
            total += 1
            if shown[k] is None:
                missed += 1
            else:
                partial.append(shown[k] - (s.start_wall + we))
                first_final.append(by_final[k])
                spelled.append(name.startswith("an4_"))
                if partial[-1] > 1.0 and len(slow) < 60:
                    around = [(round(e - s.start_wall, 2), c.stability.value, round(c.start_s, 2), round(c.end_s, 2),
                               c.text) for e, c in s.captions if c.start_s - 1 <= we <= c.end_s + 1]
                    slow.append({"word": ref_words[k][0], "end_s": round(we, 2), "shown_s": round(shown[k] - s.start_wall, 2),
                                 "captions": around[:30]})

    def pct(xs: list[float], q: float) -> float:
        return float(np.percentile(xs, q)) if xs else float("nan")

    return {"partial_p50_s": pct(partial, 50), "partial_p95_s": pct(partial, 95), "partial_p99_s": pct(partial, 99),
            "final_p50_s": pct(final, 50), "final_p95_s": pct(final, 95), "words": total,
            "words_never_shown": missed, **_tail(partial, first_final, spelled), "slow_words": slow}


def _tail(latency: list[float], first_final: list[bool], spelled: list[bool]) -> dict:
    """Where the slow words come from: how many took > 1 s and how many of those first showed in a final.

    AN4 recordings spell letters and digits: the offline pass that gives word times writes a whole spelled
    string as one word ("GFTU1332.", "7162446714") with one time span, so such a "word" counts as shown
    only once every item is said and recognized alike, and its aligned end can fall seconds before the
    speaker's last digit (spreading the span over the spoken digits, tried, made the tail longer still).
    The p99 without them is reported beside the p99 of all words."""
    plain = [x for x, a in zip(latency, spelled, strict=True) if not a]
    late = [f for x, f in zip(latency, first_final, strict=True) if x > 1.0]
    in_partials = [x for x, f in zip(latency, first_final, strict=True) if not f]
    return {"words_over_1s": len(late), "over_1s_first_in_final": sum(late),
            "first_in_final": sum(first_final),
            "partial_only_p99_s": float(np.percentile(in_partials, 99)) if in_partials else float("nan"),
            "partial_p99_without_an4_s": float(np.percentile(plain, 99)) if plain else float("nan"),
            "slow_an4": sum(a for x, a in zip(latency, spelled, strict=True) if x > 1.0)}


def wer_in_run(result: dict, refs: dict, speech: dict[str, np.ndarray]) -> dict:
    """WER of the finals of a timed run (the load its finals were decoded under): every recording a session
    played whole, with 2 s to spare before the run ended, against the final captions whose middle falls
    within it (recordings are 1 s apart)."""
    errors = words = files = 0
    played: dict[str, int] = {}
    by_name: dict[str, list[int]] = {}  # recording -> [errors, words] over its plays
    worst: list[tuple[int, str, float, str]] = []
    for i, s in enumerate(result["sessions"]):
        finals = [c for _, c in s.captions if c.is_final]
        for name, offset in s.files:
            end = offset + len(speech[name]) / SR
            if end + 2.0 > result["duration_s"]:
                continue
            hyp = " ".join(c.text for c in finals if offset - 0.5 <= (c.start_s + c.end_s) / 2 < end + 0.5)
            e, w = word_errors(refs[name]["transcript"], hyp)
            errors, words, files = errors + e, words + w, files + 1
            played[name] = played.get(name, 0) + 1
            tally = by_name.setdefault(name, [0, 0])
            tally[0], tally[1] = tally[0] + e, tally[1] + w
            worst.append((e, f"session {i} {name}", offset, hyp))
    worst.sort(key=lambda x: -x[0])
    return {"wer_in_run": errors / words if words else float("nan"), "wer_in_run_errors": errors,
            "wer_in_run_words": words, "wer_in_run_recordings": files, "wer_in_run_played": played,
            "wer_in_run_by_recording": by_name,
            "wer_in_run_worst": [{"errors": e, "recording": r, "offset_s": round(o, 2), "finals": h}
                                 for e, r, o, h in worst[:20]]}


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    r, h = normalize_english(ref).split(), normalize_english(hyp).split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=REPO / ".gpu")
    ap.add_argument("--model", default="whisper-tiny.en")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--streams", type=int, nargs="+", default=[50, 100, 200, 400])
    ap.add_argument("--duration-s", type=float, default=30.0)
    ap.add_argument("--partial-interval-ms", type=float, default=BatchStreamConfig.partial_interval_ms)
    ap.add_argument("--min-silence-ms", type=int, nargs="+", default=[400],
                    help="VAD silence that ends a segment (final); several: the --streams runs at each, WER at the first")
    ap.add_argument("--vad-pad-ms", type=int, default=BatchStreamConfig().vad.speech_pad_ms,
                    help="audio kept before and after the VAD's speech")
    ap.add_argument("--prompt-chars", type=int, default=BatchStreamConfig.prompt_chars,
                    help="final text that conditions a stream's next decodes (0 = none)")
    ap.add_argument("--context-s", type=float, default=BatchStreamConfig.context_s,
                    help="earlier audio a final hears again for context (0 = none)")
    ap.add_argument("--context-words", type=int, default=BatchStreamConfig.context_words,
                    help="a final's context starts no earlier than the last this many final words")
    ap.add_argument("--pause-pass-ms", type=float, default=BatchStreamConfig.pause_pass_ms,
                    help="decode at once when speech pauses this long (0 = cadence only)")
    ap.add_argument("--max-batch", type=int, default=1024)
    ap.add_argument("--final-beam", type=int, default=5, help="beam width of final decodes (1: greedy)")
    ap.add_argument("--greedy-late-s", type=float, default=BatchScheduler().greedy_late_s,
                    help="finals decode greedily while the batch is this late (< 0: always beam)")
    ap.add_argument("--server", action="store_true",
                    help="through `rtaudio serve --stt-backend batched` on loopback: N websocket clients")
    ap.add_argument("--client-procs", type=int, default=8, help="processes the --server clients run in")
    ap.add_argument("--server-processes", type=int, default=1, help="`rtaudio serve --processes` for --server")
    ap.add_argument("--engine-per-process", action="store_true",
                    help="--server with several processes: an engine in each (before session 8) instead of one shared")
    ap.add_argument("--port", type=int, default=8799)
    ap.add_argument("--wer", action="store_true", help="also one session per recording, for streaming WER")
    ap.add_argument("--session-per-recording", action="store_true",
                    help="the --streams runs open a session per recording (clients coming and going) instead of "
                         "one stream of recordings 1 s apart per session")
    ap.add_argument("--wer-only", action="store_true", help="only the WER run (no --streams runs)")
    ap.add_argument("--wer-finals", action="store_true",
                    help="WER from finals decoded unpaced (no partials; the same texts; runs on a CPU), no --streams runs")
    ap.add_argument("--greedy-finals", action="store_true",
                    help="--wer-finals as if the batch always ran late: every final greedy, without context")
    ap.add_argument("--limit-files", type=int, default=0)
    ap.add_argument("--vad-device", default=None,
                    help="score the VAD with its PyTorch twin on this device (e.g. cuda); default ONNX Runtime on the CPU")
    ap.add_argument("--profile", action="store_true", help="time the engine's stages (slows it a little)")
    ap.add_argument("--graphs", action="store_true", help="fixed shapes + CUDA graphs for decoding")
    ap.add_argument("--shapes-s", type=float, nargs="+", default=[8.0, 15.0], help="fixed window lengths of partials (--graphs)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_streams.json")
    args = ap.parse_args()

    import torch

    # through the server, the server process holds the engine
    engine, decode, words = (None, None, None) if args.server else build_engine(args.pack, args.model, args.device,
                                                                   static_shapes=args.graphs, shapes_s=tuple(args.shapes_s),
                                                                   final_beam=args.final_beam)
    speech = dict(np.load(args.pack / "speech.npz"))
    refs = json.loads((args.pack / "refs.json").read_text())
    names = sorted(speech)[: args.limit_files or None]

    def config_for(min_silence_ms: int) -> BatchStreamConfig:
        return BatchStreamConfig(partial_interval_ms=args.partial_interval_ms, pause_pass_ms=args.pause_pass_ms or None,
                                 prompt_chars=args.prompt_chars, context_s=args.context_s,
                                 context_words=args.context_words,
                                 vad=VadConfig(min_silence_ms=min_silence_ms, speech_pad_ms=args.vad_pad_ms))

    config = config_for(args.min_silence_ms[0])
    greedy_late = None if args.greedy_late_s < 0 else args.greedy_late_s
    vad = args.pack / "silero_vad.onnx"
    if engine is not None:
        engine.transcribe([speech[names[0]].astype(np.float32) / 32767] * 8,  # warm-up: kernels, allocator
                          finals=[False] * 4 + [True] * 4)
        t_warm = time.monotonic()
        shapes = engine.warm_up()  # every CUDA graph now, not mid-run (as `rtaudio serve` does at start)
        print(f"{shapes} fixed shapes warmed up in {time.monotonic() - t_warm:.0f} s", flush=True)
    spent = profile_engine(engine) if args.profile and engine is not None else None
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor()
    rows = []
    print(f"{args.model} on {gpu}; partial every {args.partial_interval_ms:.0f} ms; {args.duration_s:.0f} s per run; "
          + (f"through {args.server_processes} server process(es)" if args.server
             else f"CUDA graphs {'on' if args.graphs else 'off'}"))
    print(f"{'N@silence':>8}{'p50':>6} {'p95':>6} {'p99':>6} {'final50':>7} {'missed':>7} {'batch':>6} {'tick ms':>8} "
          f"{'late end':>8} {'real time':>9}")
    most = max(args.streams) * (2 if args.session_per_recording else 1) + 8  # a slot's next session connects early
    server = (_serve(args.pack, args.model, args.port, most, args.server_processes, args.engine_per_process)
              if args.server else None)
    try:
        for ms, n in [] if args.wer_only or args.wer_finals else [(m, n) for m in args.min_silence_ms for n in args.streams]:
            if server is not None:
                res = run_server(args.pack, args.model, names, n, args.duration_s, config_for(ms), args.port,
                                 args.client_procs, args.session_per_recording)
            else:
                res = run(engine, decode, vad, speech, names, n, args.duration_s, config_for(ms), args.max_batch,
                          greedy_late_s=greedy_late, words=words, vad_device=args.vad_device,
                          session_per_recording=args.session_per_recording)
            lat = latencies(res, refs)
            if spent is not None:
                busy_ticks = max(1, sum(1 for t in res["ticks"] if t[1] > 0))
                lat["profile_ms"] = {k: [len(v), 1000 * sum(v) / busy_ticks] for k, v in spent.items()}
                print("per busy tick: " + ", ".join(f"{k} {ms:.1f} ms ({c} calls)" for k, (c, ms) in lat["profile_ms"].items()))
                spent.clear()
            ticks = np.array(res["ticks"] or [[0.0] * 10])
            busy = ticks[ticks[:, 1] > 0]
            tail = ticks[len(ticks) * 3 // 4:]
            row = {"streams": n, "min_silence_ms": ms, **lat, **wer_in_run(res, refs, speech), "mean_batch": float(busy[:, 1].mean()) if len(busy) else 0.0,
                   "tick_p50_ms": float(np.median(busy[:, 0]) * 1000) if len(busy) else 0.0,
                   "worst_lateness_end_s": float(tail[:, 3].max()) if len(tail) else 0.0,
                   "lateness_end_s": float(tail[:, 9].max()) if len(tail) else 0.0,
                   "vad_ms_mean": float(ticks[:, 4].mean() * 1000), "decode_ms_mean": float(busy[:, 5].mean() * 1000) if len(busy) else 0.0,
                   "partials_ms_mean": float(busy[:, 7].mean() * 1000) if len(busy) else 0.0,
                   "finals_per_tick": float(busy[:, 8].mean()) if len(busy) else 0.0,
                   "greedy_finals": int(ticks[:, 6].sum()),
                   "finals": sum(c.is_final for s in res["sessions"] for _, c in s.captions),
                   **_this_run(res.get("server", {}), rows)}
            keeps_up = row["lateness_end_s"] < 1.0
            row["real_time"] = bool(row["partial_p99_s"] < 1.0 and keeps_up)
            row["real_time_partials"] = bool(row["partial_only_p99_s"] < 1.0 and keeps_up)
            rows.append(row)
            print(f"{n:>4}@{ms:<3}{row['partial_p50_s']:6.2f} {row['partial_p95_s']:6.2f} {row['partial_p99_s']:6.2f} "
                  f"{row['final_p50_s']:7.2f} {row['words_never_shown']:>3}/{row['words']:<4} {row['mean_batch']:6.1f} "
                  f"{row['tick_p50_ms']:8.1f} {row['lateness_end_s']:8.2f} {str(row['real_time']):>9}"
                  f"  (vad {row['vad_ms_mean']:.0f} ms, decode {row['decode_ms_mean']:.0f} ms per tick, of which "
                  f"partials {row['partials_ms_mean']:.0f} ms; {row['finals_per_tick']:.1f} finals per tick; "
                  f"most overdue request at the end {row['worst_lateness_end_s']:.2f} s; "
                  f"{row['words_over_1s']} words > 1 s, {row['over_1s_first_in_final']} of them first in a final; "
                  f"{row['first_in_final']} words first in a final; p99 of words first in partials "
                  f"{row['partial_only_p99_s']:.2f} s; {row['slow_an4']} slow words in AN4; p99 without AN4 "
                  f"{row['partial_p99_without_an4_s']:.2f} s; "
                  + (f"{row['greedy_finals']} of {row['finals']} finals greedy; " if server is None else
                     f"{row['server_greedy_finals']} of {row['server_finals']} finals greedy, front-end rounds p50 "
                     f"{row['server_round_p50_ms']:.0f} ms ({row['server_processes_seen']} processes' metrics); ")
                  + f"WER of the finals in this run {100 * row['wer_in_run']:.2f}% over {row['wer_in_run_recordings']} "
                  f"recordings played whole)",
                  flush=True)
    finally:  # the server holds the output pipe: a run that fails must not leave it behind
        if server is not None:
            server.terminate()
            server.wait(30)
    report = {"model": args.model, "device": gpu, "through_server": args.server,
              "server_processes": args.server_processes if args.server else None,
              "engine_per_process": args.engine_per_process if args.server else None, "partial_interval_ms": args.partial_interval_ms,
              "min_silence_ms": args.min_silence_ms[0], "pause_pass_ms": args.pause_pass_ms,
              "cuda_graphs": args.graphs, "runs": rows}
    if args.wer or args.wer_only or args.wer_finals:
        if engine is None:  # a server run: the WER run (the same recordings unloaded) on an engine of its own
            engine, decode, words = build_engine(args.pack, args.model, args.device, static_shapes=args.graphs,
                                                 shapes_s=tuple(args.shapes_s), final_beam=args.final_beam)
            engine.warm_up()
        if args.wer_finals:
            texts = final_texts(engine, decode, vad, speech, names, config, args.max_batch, words,
                                greedy=args.greedy_finals)
            lat: dict = {}
            greedy = 0
        else:
            longest = max(len(speech[n_]) for n_ in names) / SR
            res = run(engine, decode, vad, speech, names, len(names), longest + 2.5, config, args.max_batch,
                      one_file_each=True, greedy_late_s=greedy_late, words=words, vad_device=args.vad_device)
            texts = {s.files[0][0]: " ".join(c.text for _, c in s.captions if c.is_final) for s in res["sessions"]}
            lat = latencies(res, refs)
            greedy = int(sum(t[6] for t in res["ticks"]))
        groups: dict[str, list[int]] = {}
        for name, hyp in texts.items():
            e, w = word_errors(refs[name]["transcript"], hyp)
            for g in ("all", name.split("_")[0]):
                groups.setdefault(g, [0, 0])
                groups[g][0] += e
                groups[g][1] += w
        errors, words = groups["all"]
        errors_no_an4, words_no_an4 = errors - groups.get("an4", [0, 0])[0], words - groups.get("an4", [0, 0])[1]
        report["wer"] = {"streams": len(names), "wer": errors / words, "wer_without_an4": errors_no_an4 / max(1, words_no_an4),
                         "errors_by_group": groups, "greedy_finals": greedy, **lat, "texts": texts}
        for row in rows:  # the same recordings, as many times, with the WER run's finals
            e_w = [word_errors(refs[name]["transcript"], texts[name]) for name in row["wer_in_run_played"]]
            times = list(row["wer_in_run_played"].values())
            row["wer_of_same_recordings_in_wer_run"] = (sum(k * e for k, (e, _) in zip(times, e_w, strict=True))
                                                        / max(1, sum(k * w for k, (_, w) in zip(times, e_w, strict=True))))
            print(f"{row['streams']}@{row['min_silence_ms']}: WER of its finals {100 * row['wer_in_run']:.2f}%, the same "
                  f"recordings in the WER run {100 * row['wer_of_same_recordings_in_wer_run']:.2f}%")
        print(f"streaming WER, {len(names)} sessions{' (finals only, unpaced)' if args.wer_finals else ' at once'}: "
              f"{100 * errors / words:.2f}% (without AN4 {100 * errors_no_an4 / max(1, words_no_an4):.2f}%); errors by group "
              + ", ".join(f"{g} {e}/{w}" for g, (e, w) in sorted(groups.items())) + f"; {greedy} finals greedy")
    best = max((r["streams"] for r in rows if r["real_time"]), default=0)
    best_partials = max((r["streams"] for r in rows if r["real_time_partials"]), default=0)
    report["max_real_time_streams"] = best
    report["max_real_time_streams_partials"] = best_partials
    print(f"largest N in real time: {best} (p99 of all words < 1 s); {best_partials} (p99 of words first shown "
          f"in a partial < 1 s; both with the batch's median request less than 1 s late at the end)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
