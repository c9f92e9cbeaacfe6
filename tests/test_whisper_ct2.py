"""CTranslate2 model.bin reader: synthetic files (format edge cases) and the real tiny.en weights."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from rtaudio_models.whisper.ct2 import Ct2FormatError, model_bin_parts, read_ct2_model

from rtaudio.errors import ModelNotFetchedError
from rtaudio.modelstore import model_dir


@pytest.fixture(scope="module")
def tiny_raw_dir() -> Path:
    try:
        return model_dir("whisper-tiny.en") / "raw"
    except ModelNotFetchedError as e:
        pytest.skip(f"{e}")


def _string(s: str) -> bytes:
    data = s.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def _write_model(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6) -> bytes:
    ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
           np.dtype(np.float16): 4}
    out = struct.pack("<I", version) + _string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, a in variables.items():
        out += _string(name) + struct.pack("<B", a.ndim) + struct.pack(f"<{a.ndim}I", *a.shape)
        out += struct.pack("<B", ids[a.dtype]) + struct.pack("<I", a.nbytes) + a.tobytes()
    out += struct.pack("<I", len(aliases))
    for alias, target in aliases.items():
        out += _string(alias) + _string(target)
    path.write_bytes(out)
    return out


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    variables: dict[str, np.ndarray] = {
        "decoder/embeddings/weight": rng.standard_normal((7, 4)).astype(np.float16),
        "encoder/num_heads": np.array(6, np.int16),
        "encoder/conv1/bias": rng.standard_normal(5).astype(np.float32),
        "decoder/pre_norm": np.array(1, np.int8),
        "x/ids": np.arange(6, dtype=np.int32).reshape(2, 3),
    }
    path = tmp_path / "model.bin"
    _write_model(path, variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    return path, variables


def test_reads_every_dtype_shape_and_alias(synthetic: tuple[Path, dict[str, np.ndarray]]) -> None:
    path, variables = synthetic
    model = read_ct2_model(path)
    assert model.spec_name == "WhisperSpec" and model.revision == 3
    for name, want in variables.items():
        got = model.variables[name]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert model.variables["decoder/projection/weight"] is model.variables["decoder/embeddings/weight"]
    assert model.scalar("encoder/num_heads") == 6


def test_split_parts_read_like_the_whole(synthetic: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    path, variables = synthetic
    data = path.read_bytes()
    parts = tmp_path / "parts"
    parts.mkdir()
    # cut inside a string and inside an array, in three parts; part10 sorts after part2 numerically
    (parts / "model.bin.part1").write_bytes(data[:40])
    (parts / "model.bin.part2").write_bytes(data[40:97])
    (parts / "model.bin.part10").write_bytes(data[97:])
    found = model_bin_parts(parts)
    assert [p.name for p in found] == ["model.bin.part1", "model.bin.part2", "model.bin.part10"]
    model = read_ct2_model(found)
    for name, want in variables.items():
        np.testing.assert_array_equal(model.variables[name], want)


def test_truncated_and_foreign_files_raise(synthetic: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    path, _ = synthetic
    short = tmp_path / "short.bin"
    short.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(Ct2FormatError, match="unexpected end"):
        read_ct2_model(short)
    other = tmp_path / "other.bin"
    _write_model(other, {"a": np.zeros(2, np.float32)}, {}, version=99)
    with pytest.raises(Ct2FormatError, match="version 99"):
        read_ct2_model(other)
    with pytest.raises(FileNotFoundError):
        model_bin_parts(tmp_path / "nothing")


def test_real_tiny_en_weights(tiny_raw_dir: Path) -> None:
    from rtaudio_models.whisper.model import dims_from_ct2

    model = read_ct2_model(model_bin_parts(tiny_raw_dir))
    dims = dims_from_ct2(model)
    assert (dims.n_vocab, dims.n_audio_layer, dims.n_text_layer, dims.n_text_state) == (51864, 4, 4, 384)
    v = model.variables
    assert v["decoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 384, 384)  # fused QKV
    assert v["decoder/layer_0/attention/linear_1/weight"].shape == (2 * 384, 384)  # fused cross KV
    assert v["decoder/projection/weight"] is v["decoder/embeddings/weight"]  # tied output projection
    # Whisper's key projection has no bias: CTranslate2 stores zeros in the fused bias
    assert not v["encoder/layer_0/self_attention/linear_0/bias"][384:768].any()


def test_converter_reports_broken_weights_as_model_errors(synthetic: tuple[Path, dict[str, np.ndarray]],
                                                          tmp_path: Path) -> None:
    import json

    from rtaudio_models.whisper.export import convert

    from rtaudio.errors import ModelIntegrityError

    path, _ = synthetic
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "config.json").write_text(json.dumps({"alignment_heads": [[0, 0]]}))
    (raw / "model.bin").write_bytes(path.read_bytes()[:50])  # truncated
    with pytest.raises(ModelIntegrityError, match="CTranslate2"):
        convert(raw, tmp_path / "out", show_progress=False)
    (raw / "model.bin").write_bytes(path.read_bytes())  # complete, but not a Whisper model's variables
    with pytest.raises(ModelIntegrityError):
        convert(raw, tmp_path / "out", show_progress=False)
