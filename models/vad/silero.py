"""Silero VAD (v5/v6, 16 kHz) in PyTorch, its weights read from the packaged ONNX model (MIT licence).

Why: the batched GPU backend scores every stream's VAD each round. ONNX Runtime on the CPU took 24-63 ms
of a ~200 ms round for 400 streams on the H100 host (3.3 ms per call of 48 rows on this 2-core machine),
and rounds set the partial latency. Here one call scores a frame of all streams at once, on the device the
decoder runs on. The network, as the ONNX graph spells it out: a 256-point STFT as a strided convolution
(reflect-padded by 64 on the right) -> magnitudes -> four 1-D convolutions with ReLU -> an LSTM cell whose
(h, c) is the caller's state -> ReLU, a 1x1 convolution and a sigmoid, averaged over time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PREFIX = "If_0_then_branch__Inline_0__"  # the sr == 16000 branch of the graph
ENCODER_STRIDES = (1, 2, 2, 1)


def onnx_weights(path: Path) -> dict[str, np.ndarray]:
    """The 16 kHz branch's weights by their PyTorch names (`stft.forward_basis_buffer`, `encoder.0...`)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    branch = next(a.g for n in graph.node if n.op_type == "If" for a in n.attribute if a.name == "then_branch")
    out = {}
    for node in branch.node:
        name = node.output[0]
        if node.op_type == "Constant" and name.startswith(PREFIX) and "/" not in name:
            out[name[len(PREFIX):]] = numpy_helper.to_array(node.attribute[0].t)
    if "stft.forward_basis_buffer" not in out or "decoder.rnn.weight_ih" not in out:
        raise ValueError(f"{path} is not a Silero VAD v5/v6 model (weights not found)")
    return out


class SileroVad16k(nn.Module):
    """`forward(x (B, 576), state (2, B, 128)) -> (speech probability (B, 1), new state)`, as the ONNX model's
    `run(None, {"input": x, "state": state, "sr": 16000})`."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.register_buffer("basis", torch.from_numpy(weights["stft.forward_basis_buffer"].copy()))
        self.convs = nn.ModuleList()
        for i in range(len(ENCODER_STRIDES)):
            w = weights[f"encoder.{i}.reparam_conv.weight"]
            conv = nn.Conv1d(w.shape[1], w.shape[0], w.shape[2], stride=ENCODER_STRIDES[i], padding=1)
            conv.weight.data = torch.from_numpy(w.copy())
            conv.bias.data = torch.from_numpy(weights[f"encoder.{i}.reparam_conv.bias"].copy())
            self.convs.append(conv)
        hidden = weights["decoder.rnn.weight_hh"].shape[1]
        self.rnn = nn.LSTMCell(hidden, hidden)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self.rnn, name).data = torch.from_numpy(weights[f"decoder.rnn.{name}"].copy())
        self.out = nn.Conv1d(hidden, 1, 1)
        self.out.weight.data = torch.from_numpy(weights["decoder.decoder.2.weight"].copy())
        self.out.bias.data = torch.from_numpy(weights["decoder.decoder.2.bias"].copy())

    @classmethod
    def from_onnx(cls, path: Path) -> SileroVad16k:
        return cls(onnx_weights(path)).eval()

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        half = self.basis.shape[0] // 2
        spec = F.conv1d(F.pad(x, (0, 64), mode="reflect")[:, None], self.basis, stride=self.basis.shape[-1] // 2)
        x = torch.sqrt(spec[:, :half] ** 2 + spec[:, half:] ** 2)
        for conv in self.convs:
            x = F.relu(conv(x))
        h, c = self.rnn(x.squeeze(-1), (state[0], state[1]))
        prob = torch.sigmoid(self.out(F.relu(h)[:, :, None])).mean(dim=-1)
        return prob, torch.stack([h, c])
