"""DFT bases rebuilt inside the graph instead of stored: 16.8 MB -> 16 KB per basis in `small`.

The STFT and iSTFT are fixed-weight convolutions (jenbridge/models/stft.py) whose kernels are
(2F, 1, N) bases, F = N/2 + 1: rows r_k cos(2 pi k n / N) c_n, then rows s_k sin(2 pi k n / N) c_n
(c: the window; r, s: per-bin factors such as -1, 2/N). Stored, each is 16.8 MB of fp32 at
n_fft 2048, and it may not be rounded: the encoder takes log |X| of every bin, so the noise
floor of a rounded basis (fp16 ~-75 dB, int8 ~-50 dB under the frame's energy) replaces the
quiet bins of real music; measured on the trained `small` encoder, the fp32-decoded round trip
of an int8-basis encoder was 5 dB SNR from the fp32 one, of an fp16 basis 16 dB, of an fp32
basis with every other weight int8 56 dB.

`rebuild_dft_bases` finds such initializers by their shape and values (any name), and replaces
each by a few nodes computing it from its window c (N floats), per-bin factors r, s (2F floats)
and one period of cos and sin (N floats each, rounded from float64):

    index = (k n) mod N                                  # (F, N) int64
    basis = Unsqueeze(Concat([Gather(cos, index) * r, Gather(sin, index) * s]) * c, axis 1)

(table lookups, not ONNX Runtime's Cos/Sin, whose fp32 results were off by up to 9e-5: enough
to matter to the encoder). All inputs are constant, so ONNX Runtime folds the nodes into the
fp32 basis at session creation: the result differs from the stored basis by fp32 rounding of
the products (checked before rewriting); an initializer that does not factor this way is left
alone.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

TOLERANCE = 1e-6  # max |rebuilt - stored| relative to max |stored| (fp32 rounding: ~1e-7)
MIN_FFT = 64


def _factor(basis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(r (F,), s (F,), c (N,)) with basis ~= [r cos * c; s sin * c], or None."""
    if basis.ndim != 3 or basis.shape[1] != 1:
        return None
    n_fft = basis.shape[2]
    bins = n_fft // 2 + 1
    if n_fft < MIN_FFT or n_fft % 2 or basis.shape[0] != 2 * bins:
        return None
    rows = basis[:, 0, :].astype(np.float64)  # (2F, N)
    k, n = np.arange(bins), np.arange(n_fft)
    angle = 2 * math.pi / n_fft * ((k[:, None] * n[None, :]) % n_fft)
    cos, sin = np.cos(angle), np.sin(angle)
    window = rows[0]  # bin 0: cos = 1, so row 0 is r_0 c; take r_0 = 1
    if not np.abs(window).max() > 0:
        return None

    def fit(part: np.ndarray, wave: np.ndarray) -> np.ndarray:
        shape = wave * window  # (F, N) rows before their factor
        norm = (shape * shape).sum(1)
        return np.where(norm > 0, (part * shape).sum(1) / np.where(norm > 0, norm, 1.0), 0.0)

    r, s = fit(rows[:bins], cos), fit(rows[bins:], sin)
    rebuilt = np.concatenate([r[:, None] * cos, s[:, None] * sin]) * window
    if np.abs(rebuilt - rows).max() > TOLERANCE * np.abs(rows).max():
        return None
    return r, s, window


def _nodes(name: str, r: np.ndarray, s: np.ndarray, window: np.ndarray,
           ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes whose output `name` is the (2F, 1, N) basis, and their small initializers."""
    bins, n_fft = len(r), len(window)
    p = f"{name}__dft"
    period = 2 * math.pi / n_fft * np.arange(n_fft)  # float64

    def const(suffix: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, f"{p}_{suffix}"))
        return f"{p}_{suffix}"

    inits: list[onnx.TensorProto] = []
    zero, one = const("zero", np.array(0, np.int64)), const("one", np.array(1, np.int64))
    nodes = [
        helper.make_node("Range", [zero, const("bins", np.array(bins, np.int64)), one],
                         [f"{p}_k"]),
        helper.make_node("Range", [zero, const("n_fft", np.array(n_fft, np.int64)), one],
                         [f"{p}_n"]),
        helper.make_node("Unsqueeze", [f"{p}_k", const("axis1", np.array([1], np.int64))],
                         [f"{p}_k1"]),  # (F, 1)
        helper.make_node("Mul", [f"{p}_k1", f"{p}_n"], [f"{p}_kn"]),  # (F, N) int64
        helper.make_node("Mod", [f"{p}_kn", f"{p}_n_fft"], [f"{p}_index"]),
        helper.make_node("Gather", [const("cos_table", np.cos(period).astype(np.float32)),
                                    f"{p}_index"], [f"{p}_cos"]),
        helper.make_node("Gather", [const("sin_table", np.sin(period).astype(np.float32)),
                                    f"{p}_index"], [f"{p}_sin"]),
        helper.make_node("Mul", [f"{p}_cos", const("r", r.astype(np.float32)[:, None])],
                         [f"{p}_cos_r"]),
        helper.make_node("Mul", [f"{p}_sin", const("s", s.astype(np.float32)[:, None])],
                         [f"{p}_sin_s"]),
        helper.make_node("Concat", [f"{p}_cos_r", f"{p}_sin_s"], [f"{p}_rows"], axis=0),
        helper.make_node("Mul", [f"{p}_rows", const("window", window.astype(np.float32))],
                         [f"{p}_windowed"]),  # (2F, N)
        helper.make_node("Unsqueeze", [f"{p}_windowed", f"{p}_axis1"], [name]),  # (2F, 1, N)
    ]
    for i, node in enumerate(nodes):
        node.name = f"{p}_{i}"
    return nodes, inits


def rebuild_dft_bases(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite `model` in place (and return it): every float32 initializer that is a windowed
    DFT basis (see the module docstring) becomes nodes computing it from 16 KB of constants."""
    graph = model.graph
    added, kept = [], []
    for init in graph.initializer:
        factors = None
        if init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 3:
            factors = _factor(numpy_helper.to_array(init))
        if factors is None:
            kept.append(init)
            continue
        nodes, small = _nodes(init.name, *factors)
        added += nodes
        kept += small
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = added + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def rebuilt_bases(model: onnx.ModelProto) -> list[str]:
    """Names of the bases `rebuild_dft_bases` turned into nodes (for reports and tests)."""
    return [n.output[0] for n in model.graph.node
            if n.op_type == "Unsqueeze" and n.input and n.input[0].endswith("__dft_windowed")]
