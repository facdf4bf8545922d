"""int8 weight storage: a quarter of the fp32 file size (half of fp16), fp32 compute.

Each large float32 weight W is stored as an int8 initializer `W__int8` with a float32 scale per
output channel `W__scale`, symmetric (zero point 0, codes -127..127, scale = max |W| / 127 over
the channel), and rebuilt at the top of the graph by

    W = Cast(W__int8, to=float32) * W__scale      # scale shaped to broadcast along `axis`

so the rest of the graph is unchanged. Both nodes have constant inputs only: ONNX Runtime folds
them when it creates the session, and every op (Conv and ConvTranspose included, which the CPU
provider cannot run dynamically quantized, see quantize.py) runs its fp32 kernel on the rounded
weights, at fp32 speed. The engine needs nothing but onnxruntime.

Why not `DequantizeLinear` (opset 13+, per-axis): ONNX Runtime deliberately leaves
DequantizeLinear out of constant folding (to keep QDQ groups for its quantized kernels), so the
weights would be dequantized on every call in front of Conv and Gather, and
`DequantizeLinear -> MatMul` is fused into an 8-bit `MatMulNBits` kernel (onnxruntime 1.31) that
quantizes the activations too: neither is "weight-only, fp32 compute". Cast * scale is the same
arithmetic (q * scale, zero point 0) in ops that fold like fp16.py's Cast.

The output channel, which gets its own scale, depends on the slot the weight fills
(WEIGHT_AXES): Conv W (O, I/g, k...) axis 0; ConvTranspose W (I, O/g, k...) axis 1; MatMul B
(..., K, N) the last axis (per column); Gemm B (K, N) axis 1, or (N, K) axis 0 with transB=1;
Gather'd tables (V, D) axis 0 (per row: each token's embedding). Kept in fp32:
- everything outside those weight slots (or in two slots with different output axes): biases,
  norm gains and epsilons, attention-mask fill values, positional tables added in place, the
  scales themselves; no output channel to scale per, and little to save;
- weights smaller than MIN_ELEMENTS (as fp16.py: the saving is nil);
- the latent normalization (fp16.KEEP_FP32): whitening amplifies rounding error;
- the STFT and iSTFT: their DFT bases (the encoder takes log |X| of every bin, and a rounded
  basis's noise floor swamps the quiet ones; see dft_basis.py, which rebuilds them in the graph
  from the cos/sin tables kept here, so that they cost nothing either), and the iSTFT's
  window-square envelope, which the overlap-add divides by (8 KB; as int8 it alone cost the
  random `small` decoder 51 dB SNR);
- weights with non-finite values.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from onnx_export.fp16 import KEEP_FP32

KEEP_FLOAT = KEEP_FP32  # the latent whitening and the STFT tables (fp16.py)
MIN_ELEMENTS = 1024  # as fp16.py: below it the saving is nil
QMAX = 127  # symmetric: -127..127, so that -W rounds to exactly -q

# (op_type, input index) -> output-channel axis of that weight (None: depends on attributes)
WEIGHT_AXES: dict[tuple[str, int], int | None] = {
    ("Conv", 1): 0,
    ("ConvTranspose", 1): 1,
    ("MatMul", 1): -1,
    ("Gemm", 1): None,
    ("Gather", 0): 0,
}


def _slot_axis(node: onnx.NodeProto, index: int, rank: int) -> int | None:
    """Output-channel axis (>= 0) of the initializer at node.input[index], or None if that input
    is not a weight slot we quantize."""
    key = (node.op_type, index)
    if key not in WEIGHT_AXES or rank < 1:
        return None
    axis = WEIGHT_AXES[key]
    if node.op_type == "Gemm":  # B is (K, N), or (N, K) with transB=1
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        axis = 0 if trans_b else 1
    if node.op_type == "Gather" and next((a.i for a in node.attribute if a.name == "axis"), 0):
        return None  # gathers along another axis: not an embedding-table lookup
    if node.op_type == "MatMul" and rank < 2:
        return None
    assert axis is not None
    return axis % rank


def weight_axes(model: onnx.ModelProto) -> dict[str, int]:
    """name -> output-channel axis of each initializer used only in weight slots, all agreeing
    on the axis (see WEIGHT_AXES)."""
    ranks = {init.name: len(init.dims) for init in model.graph.initializer}
    axes: dict[str, int | None] = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name not in ranks:
                continue
            axis = _slot_axis(node, index, ranks[name])
            if name in axes and axes[name] != axis:
                axis = None  # two slots that disagree
            axes[name] = axis
    for output in model.graph.output:  # an initializer that is also a graph output
        axes[output.name] = None
    return {name: axis for name, axis in axes.items() if axis is not None}


def quantize_per_channel(array: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes int8, scale float32) with array ~= codes * scale, symmetric per slice along
    `axis`; scale has array's rank with size 1 on every other axis (it broadcasts).

    Rounding error per element <= scale / 2 = max |channel| / 254.
    """
    others = tuple(i for i in range(array.ndim) if i != axis)
    peak = np.abs(array).max(axis=others, keepdims=True).astype(np.float32)
    scale = np.where(peak > 0, peak / QMAX, 1.0).astype(np.float32)  # all-zero channel: codes 0
    codes = np.clip(np.rint(array / scale), -QMAX, QMAX).astype(np.int8)
    return codes, scale


def _keep_float(name: str, array: np.ndarray) -> bool:
    if array.size < MIN_ELEMENTS or any(name.endswith(k) for k in KEEP_FLOAT):
        return True
    return not bool(np.isfinite(array).all())


def store_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite `model` in place (and return it): large float32 weights -> int8 codes, per-channel
    float32 scales and `Cast * scale` nodes named after the original initializer.

    Idempotent (the scales and codes are not weights in a slot). Initializers of subgraphs
    (If/Loop bodies) are left alone; the exported graphs have none.
    """
    graph = model.graph
    axes = weight_axes(model)
    widen, kept = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or init.name not in axes:
            kept.append(init)
            continue
        array = numpy_helper.to_array(init)
        if _keep_float(init.name, array):
            kept.append(init)
            continue
        codes, scale = quantize_per_channel(array, axes[init.name])
        q = numpy_helper.from_array(codes, name=f"{init.name}__int8")
        s = numpy_helper.from_array(scale, name=f"{init.name}__scale")
        kept += [q, s]
        widen += [
            helper.make_node("Cast", [q.name], [f"{init.name}__cast"], to=onnx.TensorProto.FLOAT,
                             name=f"{init.name}__widen"),
            helper.make_node("Mul", [f"{init.name}__cast", s.name], [init.name],
                             name=f"{init.name}__dequantize"),
        ]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = widen + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def int8_fraction(model: onnx.ModelProto) -> float:
    """Share of the weight elements (float and int8 initializers, scales included) stored as
    int8 (for reports)."""
    sizes = {onnx.TensorProto.FLOAT: 0, onnx.TensorProto.FLOAT16: 0, onnx.TensorProto.INT8: 0}
    for init in model.graph.initializer:
        if init.data_type in sizes:
            sizes[init.data_type] += int(np.prod(init.dims))
    total = sum(sizes.values())
    return sizes[onnx.TensorProto.INT8] / total if total else 0.0
