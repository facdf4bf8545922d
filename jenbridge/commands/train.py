"""`jenbridge train ...`: autoencoder, latent statistics, latent cache, diffusion, weights export,
and `recipe default` (all of them for the shipped model, resumable).

Every stage resumes from its run folder. Launch under torchrun for many processes:
  torchrun --nproc-per-node 8 -m jenbridge train diffusion --config paper ...
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _common(p: argparse.ArgumentParser, data: bool = True) -> None:
    p.add_argument("--config", default="small", help="shipped config name or YAML path")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set autoencoder_training.lr=1e-4")
    p.add_argument("--run-dir", dest="run", type=Path, required=True,
                   help="run folder (created; resumed if it exists)")
    if data:
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--data", type=Path, help="dataset folder (audio + manifest)")
        src.add_argument("--shards", help="WebDataset tar shards, e.g. 'dir/shard-{000000..000099}"
                         ".tar' (from `jenbridge data shards`), streamed")
    p.add_argument("--steps", type=int, help="train until this step (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--init-from", type=Path,
                   help="weights file to start a fresh run from (e.g. the committed EMA weights)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    _common(sub.add_parser("autoencoder", help="train the audio autoencoder"))
    p = sub.add_parser("stats", help="gather latent normalization statistics into the autoencoder")
    p.add_argument("--run-dir", dest="run", type=Path, required=True,
                   help="the autoencoder's run folder")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=1800.0, help="audio seconds to gather over")
    p.add_argument("--variance-kept", type=float,
                   help="share of the latent variance the kept channels carry (default: the "
                        "config's autoencoder.variance_kept)")
    p.add_argument("--threads", type=int)
    p = sub.add_parser("cache-latents", help="encode a dataset once into normalized latents")
    p.add_argument("--autoencoder", type=Path, required=True, help="autoencoder weights file")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="latent cache folder")
    p.add_argument("--threads", type=int)
    p = sub.add_parser("diffusion", help="train the diffusion U-Net (all three JEN-1 tasks)")
    _common(p, data=False)
    p.add_argument("--autoencoder", type=Path, required=True,
                   help="autoencoder weights file with latent statistics (from `train stats`)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--latents", type=Path, help="latent cache folder (from `cache-latents`)")
    src.add_argument("--data", type=Path, help="dataset folder (encoded on the fly)")
    src.add_argument("--shards", help="WebDataset tar shards (encoded on the fly)")
    p = sub.add_parser("encoder-floor", help="fine-tune a trained encoder to ignore noise "
                       "floors (decoder, statistics and latent space kept)")
    p.add_argument("--autoencoder", type=Path, required=True,
                   help="autoencoder weights file with latent statistics")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (clean audio)")
    p.add_argument("--run-dir", dest="run", type=Path, required=True,
                   help="run folder (created; resumed if it exists)")
    p.add_argument("--steps", type=int, default=1500, help="train until this step (1500)")
    p.add_argument("--floor", default="-110,-60", metavar="LO,HI",
                   help="noise floor range in dBFS, as --floor=LO,HI (default -110,-60)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop-seconds", type=float, default=1.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="data-loading worker processes")
    p.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p = sub.add_parser("recipe", help="the shipped default model end to end, resumable "
                       "(data, autoencoder, stats, latents, decoder, diffusion, export)")
    p.add_argument("name", choices=("default",), help="which recipe")
    p.add_argument("--home", type=Path, help="state folder (default $JENBRIDGE_HOME or "
                   "~/.cache/jenbridge)")
    p.add_argument("--minutes", type=float, default=300.0,
                   help="built-in dataset size in minutes of audio (default 300)")
    p.add_argument("--ae-steps", type=int, default=3500,
                   help="autoencoder steps (default 3500: where the default model's froze)")
    p.add_argument("--decoder-steps", type=int, default=8500,
                   help="autoencoder step its decoder alone is fine-tuned to (8500)")
    p.add_argument("--steps", type=int, help="diffusion steps (default: the config's)")
    p.add_argument("--threads", type=int, help="torch CPU threads per stage")
    p.add_argument("--stages", default=",".join(("data", "autoencoder", "stats", "latents",
                                                  "decoder", "diffusion", "export")),
                   help="comma-separated stages to run, in order (default: all)")
    p = sub.add_parser("export-weights", help="weights-only EMA file (fp16) from a run")
    p.add_argument("--run-dir", dest="run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--fp32", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.stage == "recipe":  # child processes do the work: no torch here
        from jenbridge.training.recipe import Recipe, default_home, run_recipe

        recipe = Recipe(args.home or default_home(), minutes=args.minutes,
                        ae_steps=args.ae_steps, decoder_steps=args.decoder_steps,
                        diffusion_steps=args.steps, threads=args.threads)
        return run_recipe(recipe, tuple(s.strip() for s in args.stages.split(",") if s))
    import logging

    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    from jenbridge.training import recipes

    stages = {"autoencoder": recipes.train_autoencoder, "stats": recipes.gather_stats,
              "cache-latents": recipes.cache_latents, "diffusion": recipes.train_diffusion,
              "export-weights": recipes.export, "encoder-floor": recipes.encoder_floor}
    return stages[args.stage](args)
