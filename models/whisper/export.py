"""Convert CTranslate2 Whisper weights into the ONNX graphs rtaudio runs.

Writes into `out_dir`:
  encoder.onnx / encoder.int8.onnx   mel (1, n_mels, F) -> per layer cross_k_i (1, H, Dh, F/2),
                                     cross_v_i (1, H, F/2, Dh); F is dynamic (even, <= 3000)
  decoder.onnx / decoder.int8.onnx   one step: tokens (B, N), past_k_i / past_v_i (B, H, P, Dh),
                                     cross_k_i / cross_v_i (1 or B, ...) -> logits (B, V) of the last
                                     position, present_k_i / present_v_i (B, H, P+N, Dh),
                                     alignment (B, A, N, T): cross-attention scores (before softmax)
                                     of the alignment heads, for word timestamps
  whisper.json                       dims, alignment heads, suppress lists, file and I/O names
  tokenizer.json                     copied from the raw folder

int8 variants quantize only MatMuls with constant weights (dynamic, per tensor), which covers the
vocab projection (the largest matrix of the decoder step) but never the attention score products.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from rtaudio_models.whisper.ct2 import Ct2FormatError, model_bin_parts, read_ct2_model
from rtaudio_models.whisper.model import Whisper, whisper_from_ct2
from torch import Tensor, nn

from rtaudio.errors import ModelIntegrityError
from rtaudio.progress import Progress

OPSET = 17
CONFIG_NAME = "whisper.json"
FORMAT_VERSION = 1


class EncoderGraph(nn.Module):
    """mel -> the decoder's cross-attention keys and values, flattened per layer."""

    def __init__(self, model: Whisper) -> None:
        super().__init__()
        self.model = model

    def forward(self, mel: Tensor) -> tuple[Tensor, ...]:
        audio = self.model.encoder(mel)
        return tuple(t for kv in self.model.decoder.cross_kv(audio) for t in kv)


class DecoderStepGraph(nn.Module):
    """One decoder step with KV cache; logits only for the last new position."""

    def __init__(self, model: Whisper, alignment_heads: list[tuple[int, int]]) -> None:
        super().__init__()
        self.model = model
        self.heads = alignment_heads

    def forward(self, tokens: Tensor, *caches: Tensor) -> tuple[Tensor, ...]:
        n = self.model.dims.n_text_layer
        past = [(caches[2 * i], caches[2 * i + 1]) for i in range(n)]
        cross = [(caches[2 * n + 2 * i], caches[2 * n + 2 * i + 1]) for i in range(n)]
        hidden, present, weights = self.model.decoder.step(tokens, past, cross)
        logits = self.model.decoder.logits(hidden[:, -1])
        alignment = torch.stack([weights[layer][:, head] for layer, head in self.heads], dim=1)
        return (logits, *(t for kv in present for t in kv), alignment)


def io_names(n_layers: int) -> dict[str, list[str]]:
    kv = [f"{kind}_{i}" for i in range(n_layers) for kind in ("k", "v")]
    return {
        "encoder_inputs": ["mel"],
        "encoder_outputs": [f"cross_{x}" for x in kv],
        "decoder_inputs": ["tokens", *(f"past_{x}" for x in kv), *(f"cross_{x}" for x in kv)],
        "decoder_outputs": ["logits", *(f"present_{x}" for x in kv), "alignment"],
    }


def _export(module: nn.Module, args: tuple[Tensor, ...], path: Path, inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True, dynamo=False)


def export_encoder(model: Whisper, path: Path) -> None:
    names = io_names(model.dims.n_text_layer)
    mel = torch.zeros(1, model.dims.n_mels, 2 * model.dims.n_audio_ctx)
    dynamic = {"mel": {2: "frames"}}
    for i, name in enumerate(names["encoder_outputs"]):
        dynamic[name] = {3 if i % 2 == 0 else 2: "audio_ctx"}
    _export(EncoderGraph(model), (mel,), path, names["encoder_inputs"], names["encoder_outputs"], dynamic)


def export_decoder(model: Whisper, alignment_heads: list[tuple[int, int]], path: Path) -> None:
    d = model.dims
    names = io_names(d.n_text_layer)
    h, dh, t = d.n_text_head, d.n_text_state // d.n_text_head, 20
    batch = 2
    tokens = torch.zeros(batch, 3, dtype=torch.int64)
    past = [torch.zeros(batch, h, 4, dh) for _ in range(2 * d.n_text_layer)]
    cross = [torch.zeros(1, h, dh, t) if i % 2 == 0 else torch.zeros(1, h, t, dh) for i in range(2 * d.n_text_layer)]
    dynamic: dict[str, dict[int, str]] = {"tokens": {0: "batch", 1: "new"}, "logits": {0: "batch"},
                                          "alignment": {0: "batch", 2: "new", 3: "audio_ctx"}}
    for name in names["decoder_inputs"][1:]:
        if name.startswith("past_"):
            dynamic[name] = {0: "batch", 2: "past"}
        elif name.endswith(tuple(f"k_{i}" for i in range(d.n_text_layer))):
            dynamic[name] = {0: "cross_batch", 3: "audio_ctx"}
        else:
            dynamic[name] = {0: "cross_batch", 2: "audio_ctx"}
    for name in names["decoder_outputs"][1:-1]:
        dynamic[name] = {0: "batch", 2: "total"}
    _export(DecoderStepGraph(model, alignment_heads), (tokens, *past, *cross), path,
            names["decoder_inputs"], names["decoder_outputs"], dynamic)


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the weight MatMuls (activations quantized per call)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic warns "consider pre-processing" on the root logger
    try:
        quantize_dynamic(src, dst, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                         per_channel=False, extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)


def write_runtime_folder(model: Whisper, heads: list[tuple[int, int]], suppress: dict[str, list[int]],
                         tokenizer: Path, out_dir: Path, show_progress: bool = True) -> None:
    """Export `model` to the runtime files in `out_dir` (module docstring): fp32 and int8 graphs, the tokenizer
    and whisper.json with `suppress` (suppress_ids, suppress_ids_begin, lang_ids)."""
    steps = ["export encoder", "export decoder", "int8 encoder", "int8 decoder", "write config"]
    with Progress("export whisper", len(steps), unit="steps", enabled=show_progress) as bar, torch.no_grad():
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="whisper-export-") as tmp:
            enc, dec = Path(tmp) / "encoder.onnx", Path(tmp) / "decoder.onnx"
            export_encoder(model, enc)
            bar.update(1)
            export_decoder(model, heads, dec)
            bar.update(1)
            quantize_int8(enc, out_dir / "encoder.int8.onnx")
            bar.update(1)
            quantize_int8(dec, out_dir / "decoder.int8.onnx")
            bar.update(1)
            shutil.move(enc, out_dir / "encoder.onnx")
            shutil.move(dec, out_dir / "decoder.onnx")
        shutil.copyfile(tokenizer, out_dir / "tokenizer.json")
        config = {
            "format_version": FORMAT_VERSION,
            "dims": dataclasses.asdict(model.dims),
            "alignment_heads": [list(h) for h in heads],
            **{key: list(suppress.get(key, [])) for key in ("suppress_ids", "suppress_ids_begin", "lang_ids")},
            "files": {"fp32": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
                      "int8": {"encoder": "encoder.int8.onnx", "decoder": "decoder.int8.onnx"}},
            "io": io_names(model.dims.n_text_layer),
        }
        (out_dir / CONFIG_NAME).write_text(json.dumps(config, indent=1))
        bar.update(1)


def convert(raw_dir: Path, out_dir: Path, show_progress: bool = True) -> None:
    """Model-store converter: raw CTranslate2 files in `raw_dir` -> runtime files in `out_dir`."""
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    raw_config = json.loads((raw_dir / "config.json").read_text())
    try:
        model = whisper_from_ct2(read_ct2_model(model_bin_parts(raw_dir)))
    except (Ct2FormatError, FileNotFoundError, KeyError, ValueError) as e:
        raise ModelIntegrityError(f"cannot read the CTranslate2 Whisper weights in {raw_dir}: {e}") from e
    heads = [(int(layer), int(head)) for layer, head in raw_config["alignment_heads"]]
    write_runtime_folder(model, heads, raw_config, raw_dir / "tokenizer.json", out_dir, show_progress)


def convert_compact(pack_dir: Path, out_dir: Path, show_progress: bool = True) -> None:
    """Runtime files from a folder packed by `tools/gpu_pack.py` (fp16 parts, sha256-checked): how a GPU host
    without network gets the ONNX graphs for onnxruntime's CUDA provider. Weights are fp16-rounded."""
    from rtaudio_models.whisper.batched import load_compact

    pack_dir, out_dir = Path(pack_dir), Path(out_dir)
    info = json.loads((pack_dir / CONFIG_NAME).read_text())
    model = load_compact(pack_dir)
    heads = [(int(layer), int(head)) for layer, head in info["alignment_heads"]]
    write_runtime_folder(model, heads, info, pack_dir / "tokenizer.json", out_dir, show_progress)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3:
        sys.exit("usage: python -m rtaudio_models.whisper.export PACK_DIR OUT_DIR  (PACK_DIR from tools/gpu_pack.py)")
    convert_compact(Path(sys.argv[1]), Path(sys.argv[2]))
