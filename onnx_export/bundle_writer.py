"""Write a model bundle (jenbridge/bundle.py) atomically: staged in a temporary folder beside the
destination and renamed into place only when every file and the manifest are written, so a
failed or interrupted export never leaves a half bundle.

Weight storage (`weights`) is one of WEIGHT_DTYPES for every graph ("fp32", "fp16": fp16.py,
"int8": int8.py), or chosen per graph as "GRAPH=DTYPE,...", graphs not named staying fp32, e.g.
"text_encoder=int8,unet=int8,encoder=fp16,decoder=fp16". The manifest's `weights_dtype` holds
the canonical form: the dtype alone when every graph has it, else all four graphs
`GRAPH=DTYPE` in GRAPHS order (`graph_weights` reads either back).
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

WEIGHT_DTYPES = ("fp32", "fp16", "int8")


def graph_weights(weights: str) -> dict[str, str]:
    """Parse a weights choice ("int8", or "text_encoder=int8,unet=fp16", others fp32) into
    graph -> dtype for every graph; ValueError naming the bad part."""
    weights = weights.strip()
    if weights in WEIGHT_DTYPES:
        return dict.fromkeys(GRAPHS, weights)
    chosen = dict.fromkeys(GRAPHS, "fp32")
    named: set[str] = set()
    for part in weights.split(","):
        graph, sep, dtype = (x.strip() for x in part.partition("="))
        if not sep:
            raise ValueError(f"weights must be one of {', '.join(WEIGHT_DTYPES)} or "
                             f"GRAPH=DTYPE,... (graphs: {', '.join(GRAPHS)}), got {weights!r}")
        if graph not in GRAPHS:
            raise ValueError(f"weights: no graph {graph!r} (graphs: {', '.join(GRAPHS)})")
        if dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weights: {graph}={dtype!r} is not one of "
                             f"{', '.join(WEIGHT_DTYPES)}")
        if graph in named:
            raise ValueError(f"weights: {graph} is given twice")
        named.add(graph)
        chosen[graph] = dtype
    return chosen


def weights_label(per_graph: dict[str, str]) -> str:
    """The canonical weights string of graph -> dtype (what the manifest records)."""
    dtypes = {per_graph[g] for g in GRAPHS}
    if len(dtypes) == 1:
        return dtypes.pop()
    return ",".join(f"{g}={per_graph[g]}" for g in GRAPHS)


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
    """Re-store one graph's fp32 weights as `weights` ("fp32": as exported; "fp16": fp16.py;
    "int8": int8.py)."""
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights must be one of {WEIGHT_DTYPES}, got {weights!r}")
    if weights == "fp32":
        return
    import onnx

    from onnx_export.dft_basis import rebuild_dft_bases
    from onnx_export.fp16 import store_fp16
    from onnx_export.int8 import store_int8

    # the STFT bases stay exact: rebuilt in the graph from small fp32 tables (dft_basis.py).
    # Rounded to fp16 they drowned the quiet bins of real music in the encoder's log|X|
    # (5.9 dB SNR against fp32 on real clips; white-noise parity checks could not see it).
    model = rebuild_dft_bases(onnx.load(str(path)))
    model = store_fp16(model) if weights == "fp16" else store_int8(model)
    save_model(model, path)


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

    weights: "fp32", "fp16" (large initializers stored in half precision and widened to fp32
    when ONNX Runtime loads the graph; fp16.py), "int8" (int8 codes with per-channel scales,
    dequantized to fp32 when ONNX Runtime loads the graph; int8.py), or per graph, e.g.
    "text_encoder=int8,unet=int8,encoder=fp16,decoder=fp16" (see the module docstring).
    name: the manifest's name (default: the config's). opset: default graphs.OPSET (18). An
    existing non-empty `out` is replaced only with force=True. Returns the manifest.
    """
    from onnx_export.graphs import OPSET, export_graph

    opset = opset or OPSET
    per_graph = graph_weights(weights)
    out = Path(out)
    cfg, ae = models.config, models.autoencoder
    with staged(out, force) as tmp:
        for graph in GRAPHS:
            start = time.perf_counter()
            path = export_graph(graph, models, tmp / f"{graph}.onnx", opset)
            store_weights(path, per_graph[graph])
            log.info("exported %s (%.1f MB, %s weights) in %.1f s", path.name, size_mb(path),
                     per_graph[graph], time.perf_counter() - start)
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
            weights_dtype=weights_label(per_graph),
            training=dict(models.training),
        )
        write_manifest(tmp, manifest)
    log.info("wrote bundle %s", out)
    return manifest


def convert_bundle(source: str | Path, out: str | Path, weights: str,
                   force: bool = False) -> Manifest:
    """Copy a verified bundle to `out` with its weights re-stored as `weights` (no torch needed;
    a dtype or per graph, as for `export_bundle`).

    Only fp32 graphs can be re-stored; an fp16 or int8 graph cannot be widened back to its
    exact fp32 weights (re-export from the weights files instead), and is copied unchanged when
    `weights` keeps its dtype.
    """
    target = graph_weights(weights)
    source, out = Path(source), Path(out)
    manifest = read_manifest(source, verify=True)
    stored = graph_weights(manifest.weights_dtype)
    changed = [g for g in GRAPHS if stored[g] != target[g]]
    if any(stored[g] != "fp32" for g in changed):
        raise ValueError(f"{source} stores {manifest.weights_dtype} weights; only an fp32 "
                         "bundle (or fp32 graphs) can be converted")
    if source.expanduser().absolute() == out.expanduser().absolute():
        raise ValueError("--out must differ from the source bundle")
    with staged(out, force) as tmp:
        for file in manifest.files:
            shutil.copyfile(source / file, tmp / file)
        for graph in changed:
            store_weights(tmp / f"{graph}.onnx", target[graph])
        manifest = dataclasses.replace(manifest, files=_bundle_files(tmp),
                                       weights_dtype=weights_label(target))
        write_manifest(tmp, manifest)
    return manifest
