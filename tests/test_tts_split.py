"""The Piper splitter: encoder / flow / decoder parts recombine bit-exactly into the original voice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from rtaudio.errors import ModelError

IDS = [1, 0, 20, 0, 59, 0, 24, 0, 120, 0, 100, 0, 8, 0, 3, 0, 35, 0, 120, 0, 62, 0, 122, 0, 24, 0, 17, 0, 10, 0, 2]


@pytest.fixture(scope="module")
def raw_dir() -> Path:
    from rtaudio.modelstore import model_dir

    try:
        return model_dir("piper-joe") / "raw"
    except ModelError as e:
        pytest.skip(f"piper-joe not fetched ({e}); run `rtaudio models fetch piper-joe`")


@pytest.fixture(scope="module")
def parts(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtaudio_models.piper.split import convert

    out = tmp_path_factory.mktemp("piper-parts")
    convert(raw_dir, out, False)
    return out


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_converter_writes_parts_and_config(parts: Path) -> None:
    assert sorted(p.name for p in parts.iterdir()) == ["decoder.onnx", "encoder.onnx", "flow.onnx", "voice.json"]
    cfg = json.loads((parts / "voice.json").read_text(encoding="utf-8"))
    assert cfg["audio"]["sample_rate"] == 22050
    assert cfg["rtaudio"]["hop_length"] == 256
    enc = _session(parts / "encoder.onnx")
    assert [i.name for i in enc.get_inputs()] == ["input", "input_lengths", "scales", "dp_noise"]
    assert [o.name for o in enc.get_outputs()] == ["m_p", "logs_p", "durations"]
    assert [i.name for i in _session(parts / "flow.onnx").get_inputs()] == ["z_p", "y_mask"]
    assert [o.name for o in _session(parts / "decoder.onnx").get_outputs()] == ["audio"]


def test_parts_recombine_bit_exactly(raw_dir: Path, parts: Path) -> None:
    (model,) = raw_dir.glob("*.onnx")
    x = np.array([IDS], dtype=np.int64)
    lengths = np.array([x.shape[1]], dtype=np.int64)
    scales = np.array([0.0, 1.0, 0.0], dtype=np.float32)  # no noise: the original graph is deterministic
    original = _session(model).run(None, {"input": x, "input_lengths": lengths, "scales": scales})[0]
    m_p, _, durations = _session(parts / "encoder.onnx").run(None, {
        "input": x, "input_lengths": lengths, "scales": scales,
        "dp_noise": np.zeros((1, 2, x.shape[1]), np.float32)})
    z = _session(parts / "flow.onnx").run(None, {"z_p": m_p, "y_mask": np.ones((1, 1, m_p.shape[2]), np.float32)})[0]
    audio = _session(parts / "decoder.onnx").run(None, {"z": z})[0]
    assert audio.shape == original.shape
    assert np.array_equal(audio, original)
    assert int(durations.sum()) == m_p.shape[2]
    assert np.abs(audio).max() > 0.05  # it is sound, not silence


def test_voice_matches_piper_tts_peer(raw_dir: Path) -> None:
    """Same phoneme ids through piper-tts (GPL peer, tests only) and through our voice: identical audio."""
    piper = pytest.importorskip("piper", reason="peer piper-tts (GPL, tests only) not installed")
    from rtaudio.tts.config import SynthesisConfig
    from rtaudio.tts.voice import PiperVoice

    (model,) = raw_dir.glob("*.onnx")
    theirs = piper.PiperVoice.load(str(model))
    ours = PiperVoice.load("piper-joe")
    text = "The quick brown fox jumps over the lazy dog."
    (utt,) = ours.utterances(text)
    want = theirs.phoneme_ids_to_audio(list(utt.ids), piper.SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    exact = SynthesisConfig(noise_scale=0.0, noise_w=0.0)
    got = ours.decode_whole(ours.latents(utt.ids, exact, np.random.default_rng(0)))
    assert np.array_equal(got, np.asarray(want).reshape(-1))
