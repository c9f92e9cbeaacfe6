"""The ONNX export against the PyTorch model it came from, and against faster-whisper (same weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from rtaudio_models.whisper.ct2 import faster_whisper_folder, model_bin_parts, read_ct2_model
from rtaudio_models.whisper.model import whisper_from_ct2
from rtaudio_models.whisper.torch_backend import TorchWhisper

from rtaudio.errors import ModelNotFetchedError
from rtaudio.modelstore import model_dir
from rtaudio.stt.decoding import DecodeOptions
from rtaudio.stt.onnx_whisper import OnnxWhisper, WhisperModelInfo, empty_cache
from rtaudio.stt.recognizer import RecognizerConfig, WhisperRecognizer
from rtaudio.stt.textnorm import normalize_english
from rtaudio.stt.tokenizer import WhisperTokenizer

GREEDY = DecodeOptions(beam_size=1, temperatures=(0.0,))


@pytest.fixture(scope="module")
def folder() -> Path:
    try:
        return model_dir("whisper-tiny.en")
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")


@pytest.fixture(scope="module")
def torch_backend(folder: Path) -> TorchWhisper:
    torch.set_num_threads(2)
    model = whisper_from_ct2(read_ct2_model(model_bin_parts(folder / "raw")))
    return TorchWhisper(model, WhisperModelInfo.load(folder))


@pytest.fixture(scope="module")
def jfk(speech_dir: Path) -> np.ndarray:
    return sf.read(speech_dir / "jfk_inaugural_ask_not.flac", dtype="float32")[0]


def test_graphs_match_pytorch_numerically(folder: Path, torch_backend: TorchWhisper, jfk: np.ndarray) -> None:
    config = RecognizerConfig(precision="fp32", trailing_pad_s=2.0, min_window_s=0.0)
    recognizer = WhisperRecognizer.from_folder(folder, config)
    mel = recognizer.features(jfk[: 7 * 16000])  # a short window: the trimmed positional embedding
    assert mel.shape == (80, 900)
    onnx = OnnxWhisper(folder, "fp32", threads=2)
    cross_onnx, cross_torch = onnx.encode(mel), torch_backend.encode(mel)
    assert [c.shape for c in cross_onnx] == [c.shape for c in cross_torch]
    assert cross_onnx[0].shape == (1, 6, 64, 450)
    for a, b in zip(cross_onnx, cross_torch, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-3, rtol=1e-3)
    tokens = np.array([[50257, 50363, 843, 523]] * 2, np.int64)  # batch 2, prefill of 4 positions
    dims = onnx.info.dims
    lo, co, ao = onnx.step(tokens, empty_cache(dims, 2), cross_onnx)
    lt, ct, at = torch_backend.step(tokens, empty_cache(dims, 2), cross_torch)
    assert lo.shape == (2, dims.n_vocab) and ao.shape == (2, len(onnx.info.alignment_heads), 4, 450)
    np.testing.assert_allclose(lo, lt, atol=2e-2, rtol=1e-3)
    np.testing.assert_allclose(ao, at, atol=2e-2, rtol=1e-3)
    # one cached step gives the same logits as the whole prefix at once
    step = np.array([[616]] * 2, np.int64)
    l1, _, _ = onnx.step(step, co, cross_onnx)
    l2, _, _ = onnx.step(np.concatenate([tokens, step], axis=1), empty_cache(dims, 2), cross_onnx)
    np.testing.assert_allclose(l1, l2, atol=2e-3)
    assert co[0].shape == (2, 6, 4, 64) and ct[0].shape == (2, 6, 4, 64)


def test_pytorch_onnx_and_faster_whisper_agree_on_real_speech(folder: Path, torch_backend: TorchWhisper,
                                                              jfk: np.ndarray, tmp_path: Path) -> None:
    from faster_whisper import WhisperModel

    config = RecognizerConfig(full_window=True)
    tokenizer = WhisperTokenizer.from_file(folder / "tokenizer.json", torch_backend.info.dims.n_vocab)
    reference = WhisperRecognizer(torch_backend, tokenizer, config).transcribe_window(jfk, options=GREEDY).text
    fp32 = WhisperRecognizer.from_folder(folder, RecognizerConfig(precision="fp32", full_window=True))
    int8 = WhisperRecognizer.from_folder(folder, RecognizerConfig(precision="int8", full_window=True))
    fast = WhisperRecognizer.from_folder(folder, RecognizerConfig(precision="int8"))  # trimmed window
    fw_dir = faster_whisper_folder(folder / "raw", tmp_path / "ct2")
    fw = WhisperModel(str(fw_dir), device="cpu", compute_type="float32", cpu_threads=2)
    fw_segments, _ = fw.transcribe(jfk, beam_size=1, temperature=0.0, condition_on_previous_text=False)
    fw_text = " ".join(s.text.strip() for s in fw_segments)

    assert "ask not what your country can do for you" in reference.lower()
    assert fp32.transcribe_window(jfk, options=GREEDY).text == reference
    want = normalize_english(reference)
    assert normalize_english(fw_text) == want
    assert normalize_english(int8.transcribe_window(jfk, options=GREEDY).text) == want
    assert normalize_english(fast.transcribe_window(jfk, options=GREEDY).text) == want
