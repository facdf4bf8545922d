"""Dynamic int8 variants of a graph (weights int8, activations quantized per call), measured
against the fp32 graph; not part of a bundle.

Only MatMul and Gemm are quantized: ONNX Runtime's CPU provider has no kernel for dynamically
quantized Conv (ConvInteger), so a quantized Conv would not run. For the U-Net that leaves its
many convolutions in fp32 and quantizes the attention and embedding projections; for the text
encoder (a transformer) nearly every weight.

  python -m onnx_export.quantize BUNDLE [--graphs unet text_encoder] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

QUANTIZED_OPS = ("MatMul", "Gemm")


def _needs_reduced_range() -> bool:
    """True on an x86 CPU without VNNI (AVX2 only): ONNX Runtime's u8 x s8 kernels there add
    pairs of products in saturating int16 (vpmaddubsw), which full-range weights overflow
    (measured on the tiny U-Net: error 0.20 of the output's peak, 7-bit weights fix it);
    ONNX Runtime's advice is 7-bit weights (reduce_range) on such machines."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # x86 of unknown features: the safe choice
    return not any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize_int8(source: Path, out: Path) -> Path:
    """Write `out`: `source` with MatMul/Gemm weights in int8 (dynamic quantization, per
    output channel; 7-bit weights on x86 CPUs without VNNI, see _needs_reduced_range)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the quantizer re-runs shape inference and trips over the exporter's intermediate shape
    # annotations (value_info); without them it infers every shape itself
    model = onnx.load(str(source))
    del model.graph.value_info[:]
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / source.name
        onnx.save(model, str(plain))
        quantize_dynamic(str(plain), str(out), op_types_to_quantize=list(QUANTIZED_OPS),
                         weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=_needs_reduced_range())
    return out


def _feeds(bundle: Path, graph: str, session: object) -> list[dict[str, np.ndarray]]:
    """Inputs to measure on: real prompts for the text encoder; for the U-Net a guided batch
    (2 x 236 frames, what 10 s of audio is in `small`) with conditions set and unset."""
    import torch

    from onnx_export.graphs import unet_inputs
    from onnx_export.parity import PROMPTS, session_feed

    if graph == "text_encoder":
        from jenbridge.bundle import read_manifest
        from jenbridge.text_tokenizer import PromptTokenizer

        tok = PromptTokenizer(bundle / "tokenizer.json", read_manifest(bundle).max_tokens)
        ids, mask = tok(PROMPTS * 4)
        return [{"input_ids": ids, "attention_mask": mask}]
    inputs = session.get_inputs()  # type: ignore[attr-defined]
    k, d = inputs[0].shape[1], inputs[4].shape[2]
    g = torch.Generator().manual_seed(0)
    return [session_feed(unet_inputs(2, 236, 16, k, d, g, conditions=c)) for c in (True, False)]


def _median_ms(session: object, feed: dict[str, np.ndarray], repeats: int) -> float:
    session.run(None, feed)  # type: ignore[attr-defined]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def measure(bundle: Path, graph: str, threads: int | None = None,
            repeats: int = 5) -> dict[str, float]:
    """Sizes (MB), worst error (max abs, and relative to max |fp32|) and median run time (ms) of
    the int8 variant of bundle/graph.onnx against the fp32 graph."""
    from onnx_export.parity import cpu_session

    source = bundle / f"{graph}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        out = quantize_int8(source, Path(tmp) / f"{graph}.int8.onnx")
        size = out.stat().st_size / 1e6
        ref, q = cpu_session(source, threads), cpu_session(out, threads)
    feeds = _feeds(bundle, graph, ref)
    max_abs = rel = 0.0
    for feed in feeds:
        a, b = ref.run(None, feed)[0], q.run(None, feed)[0]
        max_abs = max(max_abs, float(np.abs(a - b).max()))
        rel = max(rel, float(np.abs(a - b).max() / (np.abs(a).max() or 1.0)))
    return {"fp32_mb": source.stat().st_size / 1e6, "int8_mb": size, "max_abs": max_abs,
            "rel": rel, "fp32_ms": _median_ms(ref, feeds[0], repeats),
            "int8_ms": _median_ms(q, feeds[0], repeats)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m onnx_export.quantize", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path)
    p.add_argument("--graphs", nargs="+", default=["unet", "text_encoder"],
                   choices=["unet", "text_encoder"])
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    for graph in args.graphs:
        m = measure(args.bundle, graph, args.threads)
        print(f"{graph}: {m['fp32_mb']:.1f} MB -> {m['int8_mb']:.1f} MB int8; max abs error "
              f"{m['max_abs']:.2e} (rel {m['rel']:.2e}); {m['fp32_ms']:.1f} ms -> "
              f"{m['int8_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
