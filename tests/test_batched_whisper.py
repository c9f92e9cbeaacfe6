"""The GPU backend's batched Whisper and its service, run on the CPU: what it decodes, and live sessions on it."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch
from rtaudio_models.whisper.batched import BatchedWhisper, alignment_matrix
from rtaudio_models.whisper.ct2 import model_bin_parts, read_ct2_model
from rtaudio_models.whisper.model import whisper_from_ct2

from rtaudio.errors import ConfigError, ModelNotFetchedError, SampleRateError
from rtaudio.modelstore import model_dir
from rtaudio.server.background import BackgroundServer
from rtaudio.server.client import CaptionEvent, ServerEvent, StreamClient
from rtaudio.server.config import ServerConfig, SessionConfig
from rtaudio.server.engine import resolve_backend
from rtaudio.server.stream_adapter import open_batched_stream
from rtaudio.stt.alignment import alignment_matrix as reference_alignment_matrix
from rtaudio.stt.alignment import timed_row_words
from rtaudio.stt.batch_service import (
    BatchService,
    BatchSession,
    load_service,
    one_lane_service,
)
from rtaudio.stt.batch_stream import BatchStreamConfig
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer
from rtaudio.stt.textnorm import normalize_english
from rtaudio.stt.tokenizer import WhisperTokenizer
from rtaudio.stt.vad import SpeechEnded, SpeechStarted, VadConfig


@pytest.fixture(scope="module")
def engine_and_tokenizer() -> tuple[BatchedWhisper, WhisperTokenizer]:
    try:
        folder = model_dir("whisper-tiny.en")
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")
    torch.set_num_threads(2)
    info = json.loads((folder / "whisper.json").read_text())
    tok = WhisperTokenizer.from_file(folder / "tokenizer.json", info["dims"]["n_vocab"])
    model = whisper_from_ct2(read_ct2_model(model_bin_parts(folder / "raw")))
    return BatchedWhisper.for_whisper(model, info, tok, "cpu", static_shapes=True, batch_bucket=1, beam_bucket=1), tok


def test_length_buckets_decode_as_one_long_batch(engine_and_tokenizer: tuple[BatchedWhisper, WhisperTokenizer],
                                                 speech_dir: Path) -> None:
    """Short partial windows go to the 8 s shape, long ones to 15 s; each row's text is what the one 15 s
    batch gives (encoder attention is masked to the row), in the caller's order."""
    engine, tok = engine_and_tokenizer
    audio = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]
    windows = [audio[: 11 * 16000], audio[: 3 * 16000]]
    bucketed = engine.transcribe(windows)
    one_shape = engine.transcribe_static(windows, window_s=15.0)
    assert bucketed == one_shape
    text = [normalize_english(tok.decode([t for t in row if t < tok.eot])) for row in bucketed]
    assert text[1].startswith("and so my fellow americans") and "ask not" in text[0]
    assert len(text[0]) > len(text[1])


def test_rows_with_and_without_prompts_decode_as_each_alone(
        engine_and_tokenizer: tuple[BatchedWhisper, WhisperTokenizer], speech_dir: Path) -> None:
    """A final's prompt (the stream's earlier text) is fed to its row only: in one batch, a row with a prompt
    and one without each get what they get alone, and the prompt is not part of the decoded text."""
    engine, tok = engine_and_tokenizer
    audio = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]
    windows = [audio[: 4 * 16000], audio[int(3.2 * 16000): 10 * 16000]]
    prompts = ["", "And so, my fellow Americans."]
    assert engine.prefixes(prompts, 2) == [[tok.sot], [tok.sot_prev, *tok.encode(" " + prompts[1]), tok.sot]]
    together = engine.transcribe(windows, prompts=prompts)
    alone = [engine.transcribe([w], prompts=[p])[0] for w, p in zip(windows, prompts, strict=True)]
    assert together == alone
    text = [normalize_english(tok.decode([t for t in row if t < tok.eot])) for row in together]
    assert "fellow americans" in text[0]
    assert "fellow" not in text[1] and "what your country can do" in text[1]


def test_finals_are_beam_searched_whole_and_alike_alone_or_in_a_batch(
        engine_and_tokenizer: tuple[BatchedWhisper, WhisperTokenizer], speech_dir: Path,
        speech_manifest: dict[str, str]) -> None:
    """Rows marked final go through beam search, next to greedy rows in the same call: each gets what it gets
    alone. A final keeps every sentence of its window: beam search used to end this one after "far
    pleasanter" (a timestamp pair then end-of-text scored a higher mean log-probability than the rest)."""
    engine, tok = engine_and_tokenizer
    names = ["ljspeech_LJ001-0025.flac", "jfk_inaugural_ask_not.flac", "an4_cen4-fbbh-b.flac"]
    windows = [sf.read(speech_dir / n, dtype="float32")[0] for n in names]
    finals = [True, False, True]
    together = engine.transcribe(windows, finals=finals, prompts=["", "", "Spell it."])
    alone = [engine.transcribe([w], finals=[f], prompts=[p])[0]
             for w, f, p in zip(windows, finals, ["", "", "Spell it."], strict=True)]
    assert together == alone
    text = [normalize_english(tok.decode([t for t in row if t < tok.eot])) for row in together]
    assert text[0].endswith("far pleasanter and easier to read"), text[0]
    assert "ask not what your country" in text[1]
    assert jiwer.wer(normalize_english(speech_manifest[names[0]]), text[0]) < 0.1


def test_text_placed_after_the_audio_is_cut(engine_and_tokenizer: tuple[BatchedWhisper, WhisperTokenizer]) -> None:
    """Timestamped tokens: a segment the model opens at or past the end of the window's audio (in its
    silence padding) was never said and is cut; one that opens inside the audio keeps its text."""
    engine, tok = engine_and_tokenizer
    hello, there = tok.encode(" Hello"), tok.encode(" there")
    tokens = [tok.timestamp(0.0), *hello, tok.timestamp(1.0), tok.timestamp(2.9), *there, tok.timestamp(3.5)]
    assert engine.within_audio(tokens, content_s=3.0) == [tok.timestamp(0.0), *hello, tok.timestamp(1.0)]
    assert engine.within_audio(tokens, content_s=3.1) == tokens[:-1]  # the closing timestamp is past the end


def test_finals_come_back_with_the_word_times_of_the_cpu_recognizer(
        engine_and_tokenizer: tuple[BatchedWhisper, WhisperTokenizer], speech_dir: Path) -> None:
    """A final's row carries each word's time from the alignment heads and DTW (a live final drops the words
    of the context it heard again by them): the same words at the times the CPU recognizer's word alignment
    gives them, within 0.1 s. Partials stay untimed."""
    engine, tok = engine_and_tokenizer
    audio = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]
    final, partial = engine.transcribe([audio, audio], finals=[True, False])
    assert timed_row_words(tok, partial) is None
    timed = timed_row_words(tok, final)
    assert timed is not None and timed.ended
    assert " ".join(w.text.strip() for w in timed.words) == tok.decode(final).strip()
    cpu = WhisperRecognizer.load("whisper-tiny.en", RecognizerConfig(threads=2)).transcribe_window(
        audio, options=DecodeOptions(beam_size=5, word_timestamps=True))
    cpu_words = [w for seg in cpu.segments for w in seg.words]
    assert [normalize_english(w.text) for w in timed.words] == [normalize_english(w.text) for w in cpu_words]
    starts = np.array([w.start_s for w in timed.words]) - np.array([w.start_s for w in cpu_words])
    ends = np.array([w.end_s for w in timed.words]) - np.array([w.end_s for w in cpu_words])
    assert np.abs(starts).max() <= 0.1 and np.abs(ends).max() <= 0.1, (starts, ends)


@pytest.mark.parametrize("positions", [3, 5, 400])
def test_the_alignment_matrix_on_the_device_is_the_numpy_one(positions: int) -> None:
    """The engine builds each final's DTW cost matrix with torch on its device (numpy took ~30 ms a final on
    the CPU); it must be the reference's, edges of the median filter included."""
    scores = np.random.default_rng(positions).standard_normal((6, 40, positions)).astype(np.float32) * 4
    expected = reference_alignment_matrix(scores, 3, positions)
    got = alignment_matrix(torch.from_numpy(scores), 3).numpy()
    assert got.shape == expected.shape == (36, positions)
    np.testing.assert_allclose(got, expected, atol=1e-12)


@pytest.fixture(scope="module", params=["lanes", "one lane"])
def service(request: pytest.FixtureRequest) -> Iterator[BatchService]:
    """The service as servers run it (its engine behind an engine host on threads: two lanes, and a front-end
    that plans its next round while its finals are decoded), or calling its engine directly, a round at a
    time (the bench's scheduler)."""
    try:
        model_dir("whisper-tiny.en")
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")
    load = load_service if request.param == "lanes" else one_lane_service
    svc = load("whisper-tiny.en", device="cpu")
    yield svc
    svc.stop()


def _feed(session: BatchSession, audio: np.ndarray, chunk: int = 1600) -> None:
    for i in range(0, len(audio), chunk):
        session.accept_waveform(audio[i: i + chunk])


def test_batch_service_captions_sessions_fed_from_other_threads(service: BatchService, speech_dir: Path,
                                                                speech_manifest: dict[str, str]) -> None:
    """Two live sessions fed from two threads while the service decodes: each gets the finals of its own
    speech (nothing of the other's), VAD events, and the last segment when its input ends."""
    names = ("jfk_inaugural_ask_not.flac", "librispeech_1988-24833-0000.flac")
    audio = [sf.read(speech_dir / n, dtype="float32")[0] for n in names]
    sessions = [service.open() for _ in names]
    threads = [threading.Thread(target=_feed, args=(s, a)) for s, a in zip(sessions, audio, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    finals: list[str] = []
    for s in sessions:
        s.input_finished()
        captions = s.decode() + s.finalize()
        while s.is_ready():  # as the server drains a session
            captions += s.decode()
        finals.append(" ".join(c.text for c in captions if c.is_final))
        events = s.events()
        assert isinstance(events[0], SpeechStarted) and isinstance(events[-1], SpeechEnded)
    errors = [jiwer.wer(normalize_english(speech_manifest[n]), normalize_english(f)) for n, f in zip(names, finals, strict=True)]
    assert errors[0] < 0.25 and errors[1] < 0.2, (finals, errors)
    assert "country" not in normalize_english(finals[1])
    assert service.streams >= 2
    del sessions, s
    gc.collect()
    assert service.streams == 0  # dropped sessions leave the runner


def test_a_server_session_has_the_batched_backends_vad_with_its_own_endpointing(service: BatchService) -> None:
    """A session's threshold and endpointing are its own; the rest of the VAD (its padding) is the batched
    backend's, whose WER is measured, not the CPU path's."""
    adapter = open_batched_stream(service, SessionConfig(vad_threshold=0.4, vad_min_silence_ms=300))
    assert isinstance(adapter.stream, BatchSession)
    expected = replace(BatchStreamConfig().vad, threshold=0.4, min_silence_ms=300)
    assert adapter.stream.stream.config.vad == expected and expected.speech_pad_ms != VadConfig().speech_pad_ms


def test_batch_session_reset_drops_the_open_segment(service: BatchService, speech_dir: Path) -> None:
    audio = sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]
    session = service.open()
    _feed(session, audio[: 32000])  # "And so, my fellow" and no pause yet
    session.reset()
    session.input_finished()
    assert [c for c in session.decode() + session.finalize() if c.is_final] == []
    with pytest.raises(SampleRateError):
        session.accept_waveform(audio[:800], 8000)


def test_server_with_the_batched_backend_captions_a_live_client(speech_dir: Path,
                                                                speech_manifest: dict[str, str]) -> None:
    """`rtaudio serve --stt-backend batched` on loopback: a client streaming two utterances in real time gets
    partials, then finals close to the transcript, and the VAD events of the protocol; sessions default to the
    batched backend's partial cadence and endpointing (BENCHMARKS.md)."""
    names = ("ljspeech_LJ001-0020.flac", "librispeech_3752-4944-0002.flac")
    pause = np.zeros(12800, np.float32)
    audio = np.concatenate([x for n in names for x in (sf.read(speech_dir / n, dtype="float32")[0], pause)])

    async def stream(srv: BackgroundServer) -> tuple[list[CaptionEvent], list[str]]:
        events: list[CaptionEvent] = []
        kinds: list[str] = []
        async with await StreamClient.connect(srv.ws_url + "/v1/stream", {"audio": {"sample_rate_hz": 16000}}) as c:
            config = c.session["config"]  # a session that asks for none gets the cadence measured on the GPU
            assert (config["partial_interval_ms"], config["vad"]["min_silence_ms"]) == (200, 400), config

            async def collect() -> None:
                while True:
                    ev = await c.recv(timeout_s=60)
                    if isinstance(ev, CaptionEvent):
                        events.append(ev)
                    elif isinstance(ev, ServerEvent):
                        kinds.append(ev.type)
                        if ev.type == "audio.ended":
                            return

            collector = asyncio.create_task(collect())
            await c.stream_audio(audio, chunk_ms=40, realtime=True)
            await c.end_audio()
            await collector
        return events, kinds

    async def german(srv: BackgroundServer) -> None:
        await StreamClient.connect(srv.ws_url + "/v1/stream", {"audio": {"sample_rate_hz": 16000}, "language": "de"})

    with BackgroundServer(ServerConfig(port=0, stt_backend="batched", decode_workers=2, preload_voice=False)) as srv:
        assert srv.server is not None and srv.server.hub.batched
        events, kinds = asyncio.run(stream(srv))
        with pytest.raises(ConfigError, match="English only"):
            asyncio.run(german(srv))
        with urllib.request.urlopen(srv.ws_url.replace("ws://", "http://") + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
    finals = " ".join(e.caption.text for e in events if e.caption.is_final)
    # operators see how the batch fared: its rounds, how many finals kept their beam, round times
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
              if line.startswith("rtaudio_batch_")}
    model = ServerConfig().models[0]
    decoded = values[f'rtaudio_batch_finals{{model="{model}",decode="beam"}}'] + values[
        f'rtaudio_batch_finals{{model="{model}",decode="greedy"}}']
    assert decoded >= sum(e.caption.is_final for e in events) >= 2, values
    assert values[f'rtaudio_batch_rounds{{model="{model}"}}'] >= decoded
    assert 0 < values[f'rtaudio_batch_round_seconds{{model="{model}",quantile="0.5"}}'] < 30
    reference = " ".join(speech_manifest[n] for n in names)
    assert jiwer.wer(normalize_english(reference), normalize_english(finals)) < 0.15, finals
    assert any(not e.caption.is_final for e in events)
    assert kinds.count("vad.speech_started") >= 2 and kinds.count("vad.speech_stopped") >= 2, kinds


def test_the_backend_is_chosen_by_the_gpu_and_can_be_named() -> None:
    assert resolve_backend("onnx") == "onnx" and resolve_backend("batched") == "batched"
    if not Path("/proc/driver/nvidia/version").exists():
        assert resolve_backend("auto") == "onnx"  # no GPU driver: torch is not even imported for it
    with pytest.raises(ConfigError):
        ServerConfig(stt_backend="cuda")
