"""Write a model bundle (jenbridge/bundle.py) atomically: staged in a temporary folder beside the
destination and renamed into place only when every file and the manifest are written, so a
failed or interrupted export never leaves a half bundle.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from jenbridge.bundle import (
    GRAPHS,
    Manifest,
    SamplerDefaults,
    read_manifest,
    sha256,
    write_manifest,
)
from onnx_export.files import save_model, size_mb

if TYPE_CHECKING:
    from onnx_export.sources import ExportModels

log = logging.getLogger(__name__)

WEIGHT_DTYPES = ("fp32", "fp16")


def check_destination(out: Path, force: bool) -> None:
    """ValueError unless `out` is absent, an empty folder, or may be replaced (force)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f"{out} already exists and is not empty; pass --force to replace it")


@contextmanager
def staged(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `out`; on a clean exit it replaces `out`."""
    out = out.expanduser().absolute()
    check_destination(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        check_destination(out, force)  # something may have appeared there meanwhile
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def store_weights(path: Path, weights: str) -> None:
    """Re-store one graph's weights as `weights` ("fp32": as exported; "fp16": see fp16.py)."""
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {WEIGHT_DTYPES}, got {weights!r}")
    if weights == "fp32":
        return
    import onnx

    from onnx_export.fp16 import store_fp16

    save_model(store_fp16(onnx.load(str(path))), path)


def _bundle_files(folder: Path) -> dict[str, str]:
    """name -> sha256 of every file in the bundle folder but the manifest."""
    return {f.name: sha256(f) for f in sorted(folder.iterdir())
            if f.is_file() and f.name != "manifest.json"}


def sampler_defaults(models: ExportModels) -> SamplerDefaults:
    d = models.config.diffusion
    return SamplerDefaults(timesteps=d.timesteps, beta_start=d.beta_start, beta_end=d.beta_end,
                           prediction=d.prediction, sampler=d.sampler, steps=d.steps,
                           guidance=d.guidance)


def export_bundle(models: ExportModels, out: str | Path, weights: str = "fp32",
                  opset: int | None = None, force: bool = False,
                  name: str | None = None) -> Manifest:
    """Export `models` as a bundle folder `out`: the four graphs, tokenizer.json, manifest.json.

    weights: "fp32", or "fp16" (large initializers stored in half precision and widened to
    fp32 when ONNX Runtime loads the graph; fp16.py). name: the manifest's name (default: the
    config's). opset: default graphs.OPSET (18). An existing non-empty `out` is replaced only
    with force=True. Returns the manifest.
    """
    from onnx_export.graphs import OPSET, export_graph

    opset = opset or OPSET
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {WEIGHT_DTYPES}, got {weights!r}")
    out = Path(out)
    cfg, ae = models.config, models.autoencoder
    with staged(out, force) as tmp:
        for graph in GRAPHS:
            start = time.perf_counter()
            path = export_graph(graph, models, tmp / f"{graph}.onnx", opset)
            store_weights(path, weights)
            log.info("exported %s (%.1f MB, %s weights) in %.1f s", path.name, size_mb(path),
                     weights, time.perf_counter() - start)
        shutil.copyfile(models.text_encoder.tokenizer_file, tmp / "tokenizer.json")
        manifest = Manifest(
            name=name or cfg.name,
            sample_rate=ae.sample_rate,
            channels=ae.channels,
            latent_hop=ae.latent_hop,
            latent_channels=models.latent_channels,
            text_dim=models.text_encoder.dim,
            max_tokens=cfg.text.max_tokens,
            sampler=sampler_defaults(models),
            files=_bundle_files(tmp),
            config=cfg.to_dict(),
            opset=opset,
            weights_dtype=weights,
            training=dict(models.training),
        )
        write_manifest(tmp, manifest)
    log.info("wrote bundle %s", out)
    return manifest


def convert_bundle(source: str | Path, out: str | Path, weights: str,
                   force: bool = False) -> Manifest:
    """Copy a verified bundle to `out` with its weights re-stored as `weights` (no torch needed).

    Only fp32 -> fp16 changes anything; an fp16 bundle cannot be widened back to its exact
    fp32 weights (re-export from the weights files instead).
    """
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {WEIGHT_DTYPES}, got {weights!r}")
    source, out = Path(source), Path(out)
    manifest = read_manifest(source, verify=True)
    if manifest.weights_dtype != "fp32" and weights != manifest.weights_dtype:
        raise ValueError(f"{source} stores {manifest.weights_dtype} weights; only an fp32 "
                         "bundle can be converted")
    if source.expanduser().absolute() == out.expanduser().absolute():
        raise ValueError("--out must differ from the source bundle")
    with staged(out, force) as tmp:
        for file in manifest.files:
            shutil.copyfile(source / file, tmp / file)
        for graph in GRAPHS:
            store_weights(tmp / f"{graph}.onnx", weights)
        manifest = dataclasses.replace(manifest, files=_bundle_files(tmp), weights_dtype=weights)
        write_manifest(tmp, manifest)
    return manifest
