"""Split a Piper VITS ONNX voice into encoder, flow and decoder parts for streaming synthesis.

The exported Piper graph runs text encoder + duration predictor, expands the phoneme statistics to
latent frames, adds noise, runs the reverse flow and the HiFi-GAN decoder in one call, so no audio
leaves before the whole sentence is decoded. Cut at the tensors between those stages, the flow and
decoder can run on windows of latent frames and stream.

Parts (batch 1; T phoneme ids, F latent frames, one frame = `hop_length` = 256 samples):
- encoder.onnx: input (1, T) int64, input_lengths (1,) int64, scales (3,) float32
  [noise_scale, length_scale, noise_w], dp_noise (1, 2, T) float32 standard normal
  -> m_p (1, 192, F), logs_p (1, 192, F) float32, durations (1, 1, T) float32 frames per id.
  The duration predictor's RandomNormalLike became the input `dp_noise` so synthesis is seedable.
- flow.onnx: z_p (1, 192, F), y_mask (1, 1, F) float32 -> z (1, 192, F).
  z_p = m_p + noise * exp(logs_p) * noise_scale is done by the caller (the graph's second random node).
- decoder.onnx: z (1, 192, F) -> audio (1, 1, F * 256) float32 in [-1, 1].

Only `onnx` is needed (no torch). Feeding the parts the same noise reproduces the original graph.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import onnx
from onnx import TensorProto, helper, utils

from rtaudio.errors import ModelError
from rtaudio.progress import Progress

HOP_LENGTH = 256  # samples per latent frame (HiFi-GAN upsampling 8*8*2*2)


def find_cut_tensors(graph: onnx.GraphProto) -> dict[str, str]:
    """The graph's names for the tensors between the parts, found by structure (not by exporter names):
    the first RandomNormalLike is the duration predictor's noise, the second draws eps ~ m_p with
    z_p = m_p + eps * exp(logs_p) * noise_scale, the only Ceil gives durations, and the decoder's
    input is z = flow(z_p) * y_mask."""
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    randoms = [n for n in graph.node if n.op_type == "RandomNormalLike"]
    ceils = [n for n in graph.node if n.op_type == "Ceil"]
    if len(randoms) != 2 or len(ceils) != 1 or len(graph.output) != 1:
        raise ModelError("not a Piper VITS export: expected 2 RandomNormalLike, 1 Ceil and 1 output")
    eps = randoms[1].output[0]
    m_p = randoms[1].input[0]
    scaled = next(c for c in consumers[eps] if c.op_type == "Mul")
    logs_exp = next(i for i in scaled.input if i != eps)
    logs_p = producer[logs_exp].input[0]
    z_p = next(c for c in consumers[m_p] if c.op_type == "Add").output[0]
    # HiFi-GAN: z -> conv_pre -> LeakyReLU -> first ConvTranspose (the only transposed convs are its upsamplers)
    up = next(n for n in graph.node if n.op_type == "ConvTranspose")
    conv_pre = producer[producer[up.input[0]].input[0]]
    z = conv_pre.input[0]
    masked = producer[z]  # z = flow(z_p) * y_mask
    y_mask = next(i for i in masked.input if i in producer and producer[i].op_type == "Cast")
    if conv_pre.op_type != "Conv" or masked.op_type != "Mul":
        raise ModelError("not a Piper VITS export: decoder input not found")
    return {"dp_noise": randoms[0].output[0], "m_p": m_p, "logs_p": logs_p, "durations": ceils[0].output[0],
            "z_p": z_p, "y_mask": y_mask, "z": z, "audio": graph.output[0].name}


# part: inputs and outputs, by the names used in the parts (graph names come from find_cut_tensors)
PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "encoder": (("input", "input_lengths", "scales", "dp_noise"), ("m_p", "logs_p", "durations")),
    "flow": (("z_p", "y_mask"), ("z",)),
    "decoder": (("z",), ("audio",)),
}


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
        node.output[:] = [new if x == old else x for x in node.output]
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def _set_shape(vi: onnx.ValueInfoProto, dims: list[int | str], elem_type: int) -> None:
    """Give a cut tensor a clean symbolic shape (shape inference leaves odd names on internal tensors)."""
    vi.type.CopyFrom(helper.make_tensor_type_proto(elem_type, dims))


_SHAPES: dict[str, tuple[list[int | str], int]] = {
    "dp_noise": ([1, 2, "phonemes"], TensorProto.FLOAT),
    "m_p": ([1, 192, "frames"], TensorProto.FLOAT),
    "logs_p": ([1, 192, "frames"], TensorProto.FLOAT),
    "durations": ([1, 1, "phonemes"], TensorProto.FLOAT),
    "z_p": ([1, 192, "frames"], TensorProto.FLOAT),
    "y_mask": ([1, 1, "frames"], TensorProto.FLOAT),
    "z": ([1, 192, "frames"], TensorProto.FLOAT),
    "audio": ([1, 1, 1, "samples"], TensorProto.FLOAT),
}


def split_model(model_path: Path, out_dir: Path) -> dict[str, Path]:
    """Write encoder.onnx, flow.onnx and decoder.onnx cut out of `model_path` into `out_dir`."""
    model = onnx.load(str(model_path))
    try:
        graph_names = find_cut_tensors(model.graph) | {"input": "input", "input_lengths": "input_lengths",
                                                        "scales": "scales"}
    except (StopIteration, KeyError) as e:
        raise ModelError(f"{model_path.name} is not a Piper VITS export this splitter knows ({e!r})") from e
    paths = {}
    with tempfile.TemporaryDirectory(prefix="piper-split-") as tmp:
        inferred = Path(tmp) / "inferred.onnx"
        onnx.save(onnx.shape_inference.infer_shapes(model), str(inferred))
        for part, (ins, outs) in PARTS.items():
            raw_part = Path(tmp) / f"{part}.onnx"
            utils.extract_model(str(inferred), str(raw_part), [graph_names[n] for n in ins],
                                [graph_names[n] for n in outs], check_model=False)
            sub = onnx.load(str(raw_part))
            for name in (*ins, *outs):
                _rename(sub.graph, graph_names[name], name)
            for vi in list(sub.graph.input) + list(sub.graph.output):
                if vi.name in _SHAPES:
                    _set_shape(vi, *_SHAPES[vi.name])
            sub.producer_name = "rtaudio_models.piper.split"
            onnx.checker.check_model(sub)
            paths[part] = out_dir / f"{part}.onnx"
            onnx.save(sub, str(paths[part]))
    return paths


def convert(raw_dir: Path, out_dir: Path, show_progress: bool) -> None:
    """Model-store converter: raw/<voice>.onnx + .onnx.json -> encoder/flow/decoder.onnx + voice.json."""
    models = sorted(Path(raw_dir).glob("*.onnx"))
    if len(models) != 1:
        raise ModelError(f"expected one Piper .onnx voice in {raw_dir}, found {[m.name for m in models]}")
    model_path = models[0]
    config_path = model_path.with_name(model_path.name + ".json")
    if not config_path.is_file():
        raise ModelError(f"voice config {config_path.name} is missing next to {model_path.name}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with Progress("split piper voice", 2, enabled=show_progress) as bar:
        split_model(model_path, out_dir)
        bar.update(1)
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["rtaudio"] = {"source": model_path.name, "hop_length": HOP_LENGTH,
                             "parts": {p: f"{p}.onnx" for p in PARTS}}
        (out_dir / "voice.json").write_text(json.dumps(config, indent=1, ensure_ascii=False), encoding="utf-8")
        bar.update(1)
