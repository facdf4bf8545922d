"""fp16 weight storage: half the file size, fp32 compute.

Each large float32 initializer W is stored as float16 `W__fp16` and widened back by a
`Cast(to=float32)` node named W at the top of the graph. ONNX Runtime constant-folds those casts
when it creates the session, so the kernels run in fp32 on the rounded weights, at fp32 speed;
the engine needs nothing but onnxruntime. Kept in fp32:
- small initializers (< MIN_ELEMENTS): scalars and vectors such as epsilons, attention-mask
  fill values (beyond fp16's range) and norm gains, where the saving is nil;
- the latent normalization (`norm.whiten`, `norm.unwhiten`, `norm.mean`): whitening amplifies
  the rounding error of small eigenvalues (as in checkpoint.save_weights);
- any tensor with values beyond fp16's range.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

MIN_ELEMENTS = 1024
# latent whitening, and the STFT: its bases' tables (dft_basis.py) and the iSTFT's window sum
KEEP_FP32 = ("norm.whiten", "norm.unwhiten", "norm.mean", "stft.basis", "__dft_cos_table",
             "__dft_sin_table", "istft.window_sq")
FP16_MAX = float(np.finfo(np.float16).max)


def _keep_fp32(name: str, array: np.ndarray) -> bool:
    if array.size < MIN_ELEMENTS or any(name.endswith(k) for k in KEEP_FP32):
        return True
    return bool(np.abs(array).max() > FP16_MAX)


def store_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite `model` in place (and return it): large float32 initializers -> float16 + Cast.

    Initializers of subgraphs (If/Loop bodies) are left alone; the exported graphs have none.
    """
    graph = model.graph
    casts, kept = [], []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            kept.append(init)
            continue
        array = numpy_helper.to_array(init)
        if _keep_fp32(init.name, array):
            kept.append(init)
            continue
        half = numpy_helper.from_array(array.astype(np.float16), name=f"{init.name}__fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                      name=f"{init.name}__widen"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def fp16_fraction(model: onnx.ModelProto) -> float:
    """Share of the float initializer elements stored as fp16 (for reports)."""
    sizes = {onnx.TensorProto.FLOAT: 0, onnx.TensorProto.FLOAT16: 0}
    for init in model.graph.initializer:
        if init.data_type in sizes:
            sizes[init.data_type] += int(np.prod(init.dims))
    total = sum(sizes.values())
    return sizes[onnx.TensorProto.FLOAT16] / total if total else 0.0
