"""The GPU backend's batched Whisper, run on the CPU: length buckets must not change what it decodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from rtaudio_models.whisper.batched import BatchedWhisper
from rtaudio_models.whisper.ct2 import model_bin_parts, read_ct2_model
from rtaudio_models.whisper.model import whisper_from_ct2

from rtaudio.errors import ModelNotFetchedError
from rtaudio.modelstore import model_dir
from rtaudio.stt.textnorm import normalize_english
from rtaudio.stt.tokenizer import WhisperTokenizer


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
    return BatchedWhisper.for_whisper(model, info, tok, "cpu", static_shapes=True, batch_bucket=1), tok


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
