"""One engine process behind several server processes: what front-ends get, and what one can't break."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from rtaudio.errors import BackendError, ModelNotFetchedError
from rtaudio.modelstore import model_dir
from rtaudio.stt.batch_service import load_engine_for
from rtaudio.stt.engine_host import EngineAddress, EngineHost, RemoteEngine
from rtaudio.stt.textnorm import normalize_english
from rtaudio.stt.tokenizer import WhisperTokenizer

MODEL = "whisper-tiny.en"


@pytest.fixture(scope="module")
def engine() -> object:
    try:
        model_dir(MODEL)
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")
    return load_engine_for(MODEL, "cpu")


@pytest.fixture()
def host(engine: object, tmp_path: Path) -> Iterator[EngineHost]:
    h = EngineHost({MODEL: engine}, EngineAddress.fresh(str(tmp_path)))
    yield h
    h.stop()


def _wait_for_requests(host: EngineHost, n: int) -> None:
    """Until `n` front-ends are connected and each has a round waiting (so one pass takes them all)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with host._lock:
            conns = list(host._conns)
        if len(conns) >= n and sum(c.poll() for c in conns) >= n:
            return
        time.sleep(0.01)
    raise AssertionError("front-ends did not send their rounds")


def _text(tokens: list[int]) -> str:
    info = json.loads((model_dir(MODEL) / "whisper.json").read_text())
    tok = WhisperTokenizer.from_file(model_dir(MODEL) / "tokenizer.json", info["dims"]["n_vocab"])
    return normalize_english(tok.decode(tokens))


def test_front_ends_rounds_decode_as_one_batch_with_the_engines_own_results(
        engine: object, host: EngineHost, speech_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two front-ends send a round each while the host is busy: the next pass decodes both together, and each
    gets exactly what the engine gives for that merged batch (16-bit audio, as read from the file, is exact).
    A round's greedy rows (its partials) come back before its beam rows are decoded: their captions need not
    wait for the beam search."""
    jfk = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]
    libri = sf.read(speech_dir / "librispeech_1988-24833-0000.flac", dtype="float32")[0]
    rounds = [([jfk[: 3 * 16000], jfk[: 11 * 16000]], [False, True]), ([libri[: 4 * 16000]], [True])]
    results: list[list[list[int]] | None] = [None, None]
    early: list[tuple[list[int], list[list[int]], int]] = []  # (rows, tokens, beam decodes done by then)
    beam_done = 0
    decode = engine.transcribe  # type: ignore[attr-defined]

    def counting(windows, prompts=None, finals=None):  # type: ignore[no-untyped-def]
        nonlocal beam_done
        out = decode(windows, prompts=prompts, finals=finals)
        beam_done += bool(finals and any(finals))
        return out

    monkeypatch.setattr(engine, "transcribe", counting)

    def front_end(i: int) -> None:
        remote = RemoteEngine(host.address, MODEL)
        try:
            rnd = remote.submit(rounds[i][0], finals=rounds[i][1])
            remote.wait(rnd, greedy_only=True)
            if rnd.greedy_rows and len(rnd.greedy_rows) < len(rnd.finals):  # a partial beside a final
                early.append((rnd.greedy_rows, rnd.greedy_tokens(), beam_done))
            remote.wait(rnd)
            results[i] = rnd.tokens
        finally:
            remote.close()

    threads = [threading.Thread(target=front_end, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    _wait_for_requests(host, 2)
    assert host.serve_once() == 2
    for t in threads:
        t.join(60)
    assert (host.stats.partial_passes, host.stats.final_passes) == (1, 1), host.stats
    direct = decode(rounds[0][0] + rounds[1][0], finals=rounds[0][1] + rounds[1][1])
    assert results[0] == direct[:2] and results[1] == direct[2:]
    assert early == [([0], [direct[0]], 0)], "the first round's partial, before any beam search; none for the other"
    assert _text(direct[0]).startswith("and so my fellow americans") and "ask not" in _text(direct[1])


def test_a_front_end_that_leaves_or_errs_costs_only_itself(host: EngineHost, speech_dir: Path) -> None:
    """A front-end that disconnects with a round in flight, one asking for a model the host does not have,
    and a caller without the key: the host serves the well-behaved front-end before and after each."""
    audio = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0][: 3 * 16000]
    good = RemoteEngine(host.address, MODEL)
    server = threading.Thread(target=host.serve_forever, daemon=True)
    server.start()
    try:
        first = good.transcribe([audio])
        leaver = RemoteEngine(host.address, MODEL)
        leaver._conn.send(("transcribe", 1, MODEL, leaver._shm.name, [audio.size], None, None))
        leaver.close()  # gone before its reply: the host's send fails, it drops this front-end
        with pytest.raises(BackendError, match="does not serve model 'whisper-base'"):
            RemoteEngine(host.address, "whisper-base").transcribe([audio])
        with pytest.raises(BackendError, match="cannot reach"):
            RemoteEngine(EngineAddress(host.address.address, b"wrong key"), MODEL)
        assert good.transcribe([audio]) == first
        assert _text(first[0]).startswith("and so my fellow americans")
    finally:
        good.close()


def test_partials_come_back_while_an_earlier_rounds_finals_are_still_searched(
        engine: object, host: EngineHost, speech_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host decodes partials and finals in two lanes: a front-end's next round (sent once its last
    round's partials are back) gets its partials while the last round's final is still being searched;
    the final follows with the engine's own result."""
    jfk = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]
    decode = engine.transcribe  # type: ignore[attr-defined]
    release = threading.Event()

    def held_finals(windows, prompts=None, finals=None, **options):  # type: ignore[no-untyped-def]
        if finals and any(finals):
            assert release.wait(60), "the test never released the final lane"
        return decode(windows, prompts=prompts, finals=finals, **options)

    monkeypatch.setattr(engine, "transcribe", held_finals)
    server = threading.Thread(target=host.serve_forever, daemon=True)
    server.start()
    remote = RemoteEngine(host.address, MODEL)
    try:
        first = remote.submit([jfk[: 2 * 16000], jfk[: 11 * 16000]], finals=[False, True])
        remote.wait(first, greedy_only=True)
        second = remote.submit([jfk[: 3 * 16000]])
        remote.wait(second)
        assert not first.done, "the final is still being searched"
        release.set()
        remote.wait(first)
        assert first.tokens is not None and second.tokens is not None
        assert first.tokens == [decode([jfk[: 2 * 16000]])[0], decode([jfk[: 11 * 16000]], finals=[True])[0]]
        assert second.tokens == decode([jfk[: 3 * 16000]]) and not first.finals_greedy
        assert remote.in_flight == 0
    finally:
        release.set()
        remote.close()


def test_finals_that_wait_too_long_are_decoded_greedily_still_timed(engine: object, tmp_path: Path,
                                                                      speech_dir: Path) -> None:
    """A final lane that falls behind must not stay behind: finals that waited longer than `final_late_s`
    are decoded greedily, still as finals (timed words, the context they carry), and the front-end is told."""
    jfk = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0][: 11 * 16000]
    host = EngineHost({MODEL: engine}, EngineAddress.fresh(str(tmp_path)), final_late_s=0.0)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    remote = RemoteEngine(host.address, MODEL)
    try:
        rnd = remote.submit([jfk], finals=[True])
        remote.wait(rnd)
    finally:
        remote.close()
        host.stop()
    greedy = engine.transcribe([jfk], finals=[True], beam=1)  # type: ignore[attr-defined]
    assert rnd.finals_greedy and rnd.tokens == greedy and (host.stats.finals_greedy, host.stats.finals_beam) == (1, 0)
    timestamps = [t for t in greedy[0] if t >= engine.timestamp_begin]  # type: ignore[attr-defined]  # timed words
    assert len(timestamps) > 10 and "ask not" in _text(greedy[0])
