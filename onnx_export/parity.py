"""Parity between a bundle's ONNX graphs (ONNX Runtime, CPU) and the torch models they came from.

`OrtDenoiser` puts unet.onnx behind the samplers' `model(x, t, cond)` signature (numpy), the
counterpart of `objective.unet_denoiser` on the torch side, so the very same sampler function
(jenbridge.diffusion.samplers, wrapped in `guided`) drives both. `check_bundle` measures every
graph at shapes other than the export examples, and the whole pipeline (text -> sampler over the
U-Net -> decoder) with fixed noise; `jenbridge export --check` prints its report.

Errors: `max_abs` is the largest absolute difference; `rel` divides it by the largest |torch
value| (for outputs far from unit scale); `rel_l2` is ||onnx - torch|| / ||torch||; `snr_db` is
-20 log10(rel_l2) (audio quality of quantized weights); `cos` is the mean cosine similarity of
the vectors along the last axis (the text encoder's token states).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jenbridge.diffusion.objective import unet_denoiser
from jenbridge.diffusion.samplers import SAMPLERS, guided
from jenbridge.diffusion.schedule import DDPMSchedule
from onnx_export.graphs import unet_inputs
from onnx_export.sources import ExportModels

PROMPTS = ["", "warm analog bass, 120 bpm", "a slow ambient piano piece with soft pads and a "
           "distant choir, recorded in a large hall"]


def cpu_session(path: str | Path | bytes, threads: int | None = None) -> Any:
    """An onnxruntime InferenceSession on the CPU provider only (logging errors only)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def session_feed(inputs: Mapping[str, torch.Tensor | np.ndarray]) -> dict[str, np.ndarray]:
    """Torch tensors or arrays -> contiguous numpy arrays for InferenceSession.run."""
    return {k: np.ascontiguousarray(v.numpy() if isinstance(v, torch.Tensor) else v)
            for k, v in inputs.items()}


class OrtDenoiser:
    """unet.onnx as a sampler model: `(x (B,K,T) float32, t float, cond dict) -> (B,K,T)`.

    cond holds the U-Net's other inputs as numpy arrays (samplers.COND_KEYS); t is broadcast
    to a (B,) float32 array, like `objective.unet_denoiser` does on the torch side.
    """

    def __init__(self, session: Any):
        self.session = session

    def __call__(self, x: np.ndarray, t: float, cond: dict[str, np.ndarray]) -> np.ndarray:
        feed = {"x": np.ascontiguousarray(x, dtype=np.float32),
                "t": np.full((x.shape[0],), t, dtype=np.float32), **session_feed(cond)}
        return self.session.run(["prediction"], feed)[0]


def errors(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """max_abs, rel (max_abs / max |ref|), rel_l2, snr_db and cos of out against ref."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if out.shape != ref.shape:
        raise AssertionError(f"shape {out.shape} != torch shape {ref.shape}")
    diff = out - ref
    scale = float(np.abs(ref).max()) or 1.0
    norm = float(np.linalg.norm(ref)) or 1.0
    rel_l2 = float(np.linalg.norm(diff)) / norm
    dots = (out * ref).sum(-1)
    lengths = np.linalg.norm(out, axis=-1) * np.linalg.norm(ref, axis=-1)
    cos = np.where(lengths > 0, dots / np.maximum(lengths, 1e-300), 1.0)
    return {"max_abs": float(np.abs(diff).max()), "rel": float(np.abs(diff).max()) / scale,
            "rel_l2": rel_l2, "snr_db": -20.0 * float(np.log10(max(rel_l2, 1e-12))),
            "cos": float(cos.mean())}


WORST = {"max_abs": max, "rel": max, "rel_l2": max, "snr_db": min, "cos": min}


def random_audio(batch: int, models: ExportModels, frames: int, seed: int) -> torch.Tensor:
    """(B, C, frames*latent_hop) float32 white noise, std 0.15, clipped to [-1, 1]."""
    ae = models.autoencoder
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, ae.channels, frames * ae.latent_hop, generator=g) * 0.15).clamp(
        -1.0, 1.0)


def graph_cases(models: ExportModels, seed: int = 1) -> dict[str, list[tuple[dict, Callable]]]:
    """For each graph, (inputs, torch function) cases at shapes other than the export examples:
    batch 1/2/3, odd frame counts, text conditions set and unset."""
    ae, unet, text = models.autoencoder, models.unet, models.text_encoder
    k, d = models.latent_channels, unet.text_dim
    g = torch.Generator().manual_seed(seed)
    ids, mask = text.tokenize(PROMPTS)

    def run_unet(inp: dict[str, torch.Tensor]) -> torch.Tensor:
        return unet(**inp)

    return {
        "text_encoder": [({"input_ids": ids, "attention_mask": mask},
                          lambda i: text(i["input_ids"], i["attention_mask"])),
                         ({"input_ids": ids[1:2, :5], "attention_mask": mask[1:2, :5]},
                          lambda i: text(i["input_ids"], i["attention_mask"]))],
        "encoder": [({"audio": random_audio(b, models, n, seed + b)},
                     lambda i: ae.encode_normalized(i["audio"])) for b, n in ((1, 1), (3, 7))],
        "unet": [(unet_inputs(b, n, tokens, k, d, g, conditions=cond), run_unet)
                 for b, n, tokens, cond in ((1, 9, 5, True), (3, 13, 3, True),
                                            (2, 1, 1, False), (3, 17, 4, False))],
        "decoder": [({"latent": torch.randn(b, k, n, generator=g)},
                     lambda i: ae.decode_normalized(i["latent"])) for b, n in ((1, 1), (3, 7))],
    }


@torch.no_grad()
def graph_parity(bundle: Path, models: ExportModels,
                 threads: int | None = None) -> dict[str, dict[str, float]]:
    """Worst errors per graph over `graph_cases`, ONNX Runtime vs torch (largest error, lowest
    SNR and cosine)."""
    report = {}
    for graph, cases in graph_cases(models).items():
        session = cpu_session(bundle / f"{graph}.onnx", threads)
        worst: dict[str, float] = {}
        for inputs, fn in cases:
            out = session.run(None, session_feed(inputs))[0]
            e = errors(out, fn(inputs).numpy())
            worst = {k: WORST[k](worst[k], e[k]) if worst else e[k] for k in WORST}
        report[graph] = worst
    return report


def pipeline_cond(models: ExportModels, frames: int, text: torch.Tensor, text_mask: torch.Tensor,
                  conditions: bool) -> dict[str, Any]:
    """A cond dict for `guided` (torch tensors), the null branch dropping text, bpm, key, meter.

    conditions=True: text as given, bpm 120, key 10, meter 4; the first third of the frames is
    known (a fixed random latent) and every odd row runs causally (continuation), the others
    bidirectionally (inpainting). False: text as given (pass an all-zero mask), bpm/key/meter
    unset, nothing known (text-to-music), all rows bidirectional.
    """
    b, k = text.shape[0], models.latent_channels
    mask = torch.ones(b, 1, frames)
    masked = torch.zeros(b, k, frames)
    if conditions:
        known = frames // 3
        mask[:, :, :known] = 0.0
        latent = torch.randn(b, k, frames, generator=torch.Generator().manual_seed(7))
        masked = latent * (1.0 - mask)
    cond: dict[str, Any] = {
        "masked": masked, "mask": mask, "text": text, "text_mask": text_mask.float(),
        "bpm": torch.full((b,), 120.0 if conditions else 0.0),
        "key": torch.full((b,), 10 if conditions else 0, dtype=torch.int64),
        "meter": torch.full((b,), 4 if conditions else 0, dtype=torch.int64),
        "causal": (torch.arange(b) % 2).float() if conditions else torch.zeros(b),
    }
    cond["null"] = {"text": torch.zeros_like(text),
                    "text_mask": torch.zeros_like(cond["text_mask"]), "bpm": torch.zeros(b),
                    "key": torch.zeros(b, dtype=torch.int64),
                    "meter": torch.zeros(b, dtype=torch.int64)}
    return cond


def _numpy_cond(cond: dict[str, Any]) -> dict[str, Any]:
    return {k: _numpy_cond(v) if isinstance(v, dict) else v.numpy() for k, v in cond.items()}


@dataclass
class PipelineResult:
    latent: dict[str, float]  # errors of the final latent
    audio: dict[str, float]  # errors after the decoder


@torch.no_grad()
def pipeline_parity(bundle: Path, models: ExportModels, prompts: list[str], frames: int,
                    conditions: bool = True, sampler: str | None = None,
                    steps: int | None = None, seed: int = 0,
                    threads: int | None = None) -> PipelineResult:
    """Text -> guided sampler -> decoder, once over the torch models and once over the bundle's
    graphs, from the same fixed noise; sampler, steps and guidance default to the config's.
    conditions=False: empty text (mask all zero) and bpm/key/meter unset."""
    d = models.config.diffusion
    schedule = DDPMSchedule.from_config(d)
    steps = steps or d.steps
    sample = SAMPLERS[sampler or d.sampler]
    b, k = len(prompts), models.latent_channels
    noise = torch.randn(b, k, frames, generator=torch.Generator().manual_seed(seed))

    ids, mask = models.text_encoder.tokenize(prompts)
    if not conditions:
        mask = torch.zeros_like(mask)
    text = models.text_encoder(ids, mask)
    cond = pipeline_cond(models, frames, text, mask, conditions)
    latent = sample(guided(unet_denoiser(models.unet), d.guidance), noise.clone(), schedule,
                     steps, cond=cond, prediction=d.prediction)
    audio = models.autoencoder.decode_normalized(latent)

    sessions = {g: cpu_session(bundle / f"{g}.onnx", threads)
                for g in ("text_encoder", "unet", "decoder")}
    ort_text = sessions["text_encoder"].run(None, session_feed(
        {"input_ids": ids, "attention_mask": mask}))[0]
    ort_cond = _numpy_cond(pipeline_cond(models, frames, torch.from_numpy(ort_text), mask,
                                         conditions))
    ort_latent = sample(guided(OrtDenoiser(sessions["unet"]), d.guidance), noise.numpy(),
                         schedule, steps, cond=ort_cond, prediction=d.prediction)
    ort_audio = sessions["decoder"].run(None, {"latent": ort_latent.astype(np.float32)})[0]
    return PipelineResult(errors(ort_latent, latent.numpy()), errors(ort_audio, audio.numpy()))


@torch.no_grad()
def unet_timings(bundle: Path, models: ExportModels, batch: int = 2, frames: int = 236,
                 repeats: int = 5, threads: int | None = None) -> dict[str, float]:
    """Median forward time (ms) of the U-Net at batch x frames: torch eager vs ONNX Runtime."""
    inputs = unet_inputs(batch, frames, 16, models.latent_channels, models.unet.text_dim,
                         torch.Generator().manual_seed(0))
    session = cpu_session(bundle / "unet.onnx", threads)
    feed = session_feed(inputs)

    def median_ms(fn: Callable[[], object]) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000.0 * float(np.median(times))

    return {"torch_ms": median_ms(lambda: models.unet(**inputs)),
            "onnx_ms": median_ms(lambda: session.run(None, feed))}


def load_seconds(path: Path, threads: int | None = None) -> float:
    """Seconds to create an InferenceSession for one graph (reads and optimizes it)."""
    start = time.perf_counter()
    cpu_session(path, threads)
    return time.perf_counter() - start


def check_bundle(bundle: str | Path, models: ExportModels, threads: int | None = None,
                 timing: bool = True) -> list[str]:
    """Human-readable parity report of a freshly exported bundle against its torch models."""
    from jenbridge.bundle import read_manifest
    from onnx_export.files import size_mb

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    lines = [f"bundle {bundle} ({manifest.weights_dtype} weights), ONNX Runtime CPU vs torch:"]
    for graph, e in graph_parity(bundle, models, threads).items():
        path = bundle / f"{graph}.onnx"
        quality = f"  cos {e['cos']:.5f}" if graph == "text_encoder" else ""
        lines.append(f"  {graph:<13} max abs {e['max_abs']:.2e}  rel {e['rel']:.2e}  "
                     f"rel L2 {e['rel_l2']:.2e}  SNR {e['snr_db']:5.1f} dB{quality}  "
                     f"{size_mb(path):7.1f} MB  load {load_seconds(path, threads):.2f} s")
    frames = 4 * models.unet.stride + 5
    for conditions in (True, False):
        r = pipeline_parity(bundle, models, PROMPTS[1:], frames, conditions, threads=threads)
        lines.append(f"  pipeline ({'conditions set' if conditions else 'null conditions'}, "
                     f"{models.config.diffusion.sampler} x {models.config.diffusion.steps}): "
                     f"latent rel L2 {r.latent['rel_l2']:.2e}, audio rel L2 "
                     f"{r.audio['rel_l2']:.2e} (SNR {r.audio['snr_db']:.1f} dB)")
    if timing:
        t = unet_timings(bundle, models, threads=threads)
        lines.append(f"  unet forward, batch 2 x 236 frames: torch {t['torch_ms']:.1f} ms, "
                     f"onnx {t['onnx_ms']:.1f} ms")
    return lines
