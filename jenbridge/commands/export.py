"""`jenbridge export`: trained weights (or random weights) -> an ONNX model bundle folder.

  jenbridge export --autoencoder AE.safetensors --diffusion UNET.safetensors --out BUNDLE
  jenbridge export --random tiny --out BUNDLE            # random weights, for tests/benchmarks
  jenbridge export --from-bundle BUNDLE --weights fp16 --out BUNDLE16
  jenbridge export --from-bundle BUNDLE --weights text_encoder=int8,unet=int8 --out SMALLER

`python -m onnx_export` takes the same arguments. The bundle format is jenbridge/bundle.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "export trained (or random) weights to an ONNX model bundle"


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("source (one of)")
    src.add_argument("--autoencoder", type=Path, metavar="AE",
                     help="autoencoder weights file with latent statistics (from `jenbridge "
                          "train stats`); needs --diffusion")
    src.add_argument("--diffusion", type=Path, metavar="UNET",
                     help="diffusion weights file trained on that autoencoder's latents")
    src.add_argument("--random", metavar="CONFIG",
                     help="random weights for a config (tiny, small, paper or a YAML path); "
                          "latent statistics from random audio")
    src.add_argument("--from-bundle", type=Path, metavar="BUNDLE",
                     help="an existing fp32 bundle to re-store with --weights (no torch needed)")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--weights", default="fp32", metavar="{fp32,fp16,int8}|GRAPH=DTYPE,...",
                   help="how weights are stored: fp16 halves the files, int8 (per-channel "
                        "scales) quarters them, compute stays fp32; one dtype for every graph "
                        "or per graph, e.g. text_encoder=int8,unet=int8,encoder=fp16 (graphs "
                        "not named: fp32) (default: fp32)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="with --random: override a config value, e.g. --set unet.channels=64")
    p.add_argument("--seed", type=int, help="with --random: weights seed (default 0)")
    p.add_argument("--name", help="bundle name in the manifest (default: the config's name)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 18)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--check", action="store_true",
                   help="after export, measure ONNX Runtime vs torch parity and U-Net speed")
    p.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime")
    p.add_argument("--note", action="append", default=[], metavar="KEY=VALUE",
                   help="add to the manifest's `training` record, e.g. --note 'data=built-in "
                        "dataset, seed 0, 5.0 h' --note cpu_hours=9.5 (repeatable)")
    p.add_argument("--evaluation", type=Path, action="append", default=[], metavar="REPORT",
                   help="a `jenbridge eval` report.json whose figures go into the manifest "
                        "(repeatable: e.g. one run with early checkpoints, one of adherence "
                        "suites; a suite in several reports is taken from the last)")


def _source(args: argparse.Namespace) -> str:
    """Which source the arguments name; ValueError unless exactly one, complete."""
    trained = args.autoencoder is not None or args.diffusion is not None
    given = [name for name, on in (("trained", trained), ("random", args.random is not None),
                                   ("bundle", args.from_bundle is not None)) if on]
    if len(given) != 1:
        raise ValueError("give one source: --autoencoder AE --diffusion UNET, --random CONFIG "
                         "or --from-bundle BUNDLE")
    if trained and (args.autoencoder is None or args.diffusion is None):
        raise ValueError("--autoencoder and --diffusion go together")
    if (args.overrides or args.seed is not None) and args.random is None:
        raise ValueError("--set and --seed only apply to --random")
    exporting = [flag for flag, on in (("--check", args.check), ("--name", args.name),
                                        ("--opset", args.opset)) if on]
    if exporting and args.from_bundle is not None:
        raise ValueError(f"{', '.join(exporting)}: only when exporting from weights, not with "
                         "--from-bundle")
    return given[0]


def run(args: argparse.Namespace) -> int:
    import logging

    # our progress lines only: the ONNX optimizer logs every rewrite at INFO
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("onnx_export").setLevel(logging.INFO)
    from onnx_export.bundle_writer import (
        check_destination,
        convert_bundle,
        export_bundle,
        graph_weights,
    )

    source = _source(args)
    graph_weights(args.weights)  # before minutes of work, not after
    _notes(args.note)
    for report in args.evaluation:
        if not report.is_file():
            raise ValueError(f"--evaluation {report} is not a file")
    check_destination(args.out, args.force)
    if source == "bundle":
        manifest = convert_bundle(args.from_bundle, args.out, args.weights, force=args.force)
        manifest = _annotate(args, manifest)
        print(f"wrote {args.out} ({manifest.weights_dtype} weights)")
        return 0

    import torch
    from transformers.utils import logging as hf_logging

    from onnx_export.sources import build_random, load_trained

    hf_logging.disable_progress_bar()  # the text encoder's weight-loading bar
    if args.threads:
        torch.set_num_threads(args.threads)
    if source == "random":
        from jenbridge.config import load_config

        models = build_random(load_config(args.random, args.overrides), seed=args.seed or 0)
    else:
        models = load_trained(args.autoencoder, args.diffusion)
    manifest = export_bundle(models, args.out, weights=args.weights, opset=args.opset,
                             force=args.force, name=args.name)
    manifest = _annotate(args, manifest)
    print(f"wrote {args.out}: {manifest.name}, K={manifest.latent_channels} latent channels at "
          f"{manifest.latent_rate:.4g} Hz, {manifest.weights_dtype} weights")
    if args.check:
        from onnx_export.parity import check_bundle

        print("\n".join(check_bundle(args.out, models, threads=args.threads)))
    return 0


def _notes(items: list[str]) -> dict[str, str]:
    notes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--note {item!r} is not KEY=VALUE")
        notes[key.strip()] = value.strip()
    return notes


def _annotate(args: argparse.Namespace, manifest: Any) -> Any:
    """--note and --evaluation into the manifest (its files' hashes are unchanged)."""
    import dataclasses
    import json

    from jenbridge.bundle import write_manifest

    if not args.note and not args.evaluation:
        return manifest
    training = {**manifest.training, **_notes(args.note)}
    evaluation = dict(manifest.evaluation)
    if args.evaluation:
        evaluation = {"reports": [], "settings": [], "models": [], "figures": {},
                      "targets": []}
        for path in args.evaluation:
            report = json.loads(path.read_text())
            evaluation["reports"].append(path.name)
            evaluation["settings"].append(report.get("settings"))
            evaluation["models"].append(report.get("models"))
            evaluation["figures"].update(
                {suite: {name: m.get("values") for name, m in body.get("metrics", {}).items()}
                 for suite, body in report.get("suites", {}).items()})
            evaluation["targets"].extend(report.get("targets") or [])
    manifest = dataclasses.replace(manifest, training=training, evaluation=evaluation)
    write_manifest(Path(args.out), manifest)
    return manifest
