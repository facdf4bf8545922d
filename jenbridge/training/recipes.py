"""Training stages behind `jenbridge train`: each resumes from its run folder.

autoencoder -> stats (latent normalization, written into RUN/autoencoder.safetensors)
-> cache-latents (optional) -> diffusion -> export-weights.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from jenbridge.config import (
    ModelConfig,
    config_from_dict,
    load_config,
    merge_dicts,
    parse_overrides,
)
from jenbridge.data.crops import AudioCrops, StepBatchSampler, collate
from jenbridge.data.index import DatasetIndex, scan_dataset
from jenbridge.training.distributed import Dist, init_distributed, shutdown
from jenbridge.training.loop import LoopSettings, train

log = logging.getLogger("jenbridge.train")


def run_config(args: argparse.Namespace, main: bool = True) -> ModelConfig:
    """The run's config: saved in RUN/config.json at the first start and reused on resume.

    Resuming means the run has a checkpoint; before that, the command line decides (so every
    torchrun rank computes the same config from its arguments, and only rank 0 writes it).
    """
    from jenbridge.training.checkpoint import latest_checkpoint

    saved = args.run / "config.json"
    if saved.is_file() and latest_checkpoint(args.run) is not None:
        data = json.loads(saved.read_text())
        if args.overrides:
            # the model must stay what the checkpoints hold; training settings may change
            model_keys = [o for o in args.overrides if not o.split(".")[0].endswith("_training")]
            if model_keys:
                raise ValueError(f"resuming {args.run}: cannot change the model on resume "
                                 f"({', '.join(model_keys)}); use a new --run-dir")
            data = merge_dicts(data, parse_overrides(args.overrides))
            cfg = config_from_dict(data, str(saved))
            if main:
                saved.write_text(json.dumps(cfg.to_dict(), indent=2))
            return cfg
        return config_from_dict(data, str(saved))
    cfg = load_config(args.config, args.overrides)
    if main:
        args.run.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(cfg.to_dict(), indent=2))
    return cfg


def dataset_index(data: Path, run: Path, sample_rate: int, min_seconds: float,
                  main: bool) -> DatasetIndex:
    """Scan once per run (cached in RUN/dataset_index.json, rescanned when the dataset's
    manifest changes, e.g. after growing the built-in dataset) and print the report."""
    from jenbridge.data.manifest import find_manifest

    cached, key_file = run / "dataset_index.json", run / "dataset_index.key"
    manifest = find_manifest(data)
    stat = manifest.stat() if manifest is not None else data.stat()
    key = f"{data.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample_rate}|{min_seconds}"
    if cached.is_file() and key_file.is_file() and key_file.read_text() == key:
        return DatasetIndex.load(cached)
    index = scan_dataset(data, sample_rate, min_seconds)
    if main:
        for line in index.report.lines():
            log.info("dataset: %s", line)
        index.save(cached)
        key_file.write_text(key)
    return index


def audio_batches(index: DatasetIndex, sample_rate: int, channels: int, seconds: float,
                  multiple: int, batch: int, seed: int, stop: int, d: Dist, workers: int):
    """A function start_step -> iterable of collated batches for this rank."""
    clips = index.split("train")
    dataset = AudioCrops(clips, sample_rate, channels, seconds, multiple)

    def batches(start: int) -> Iterable[dict[str, Any]]:
        sampler = StepBatchSampler([c.seconds for c in clips], batch, seed, start, stop,
                                   d.rank, d.world)
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
            prefetch_factor=4 if workers else None, persistent_workers=False)

    return batches


def source_batches(args: argparse.Namespace, cfg: ModelConfig, seconds: float, batch: int,
                   stop: int, d: Dist):
    """start_step -> batches of audio crops, from a dataset folder or streamed tar shards."""
    ae = cfg.autoencoder
    if getattr(args, "shards", None):
        from jenbridge.data.shards import ShardCrops

        if batch % d.world:
            raise ValueError(f"batch size {batch} is not divisible by {d.world} processes")
        stream = ShardCrops(args.shards, ae.sample_rate, ae.channels, seconds, ae.latent_hop,
                            seed=args.seed)

        def streamed(start: int) -> Iterable[dict[str, Any]]:
            return torch.utils.data.DataLoader(stream, batch_size=batch // d.world,
                                               collate_fn=collate, num_workers=args.workers)

        return streamed
    index = dataset_index(args.data, args.run, ae.sample_rate, seconds, d.main)
    return audio_batches(index, ae.sample_rate, ae.channels, seconds, ae.latent_hop, batch,
                         args.seed, stop, d, args.workers)


def _init(args: argparse.Namespace, cfg: ModelConfig) -> Any:
    """The --init-from weights, checked to be of this run's model config."""
    if not getattr(args, "init_from", None):
        return None
    from jenbridge.training.checkpoint import read_weights

    w = read_weights(args.init_from)
    section = "autoencoder" if w.kind == "autoencoder" else "unet"
    # variance_kept only steers `train stats`; the weights carry the statistics they have
    ignore = {"variance_kept"} if section == "autoencoder" else set()
    if (getattr(w.config, section).model_dump(exclude=ignore)
            != getattr(cfg, section).model_dump(exclude=ignore)):
        raise ValueError(f"{args.init_from}: its {section} config differs from this run's")
    return w


def _settings(args: argparse.Namespace, steps: int, tc: Any) -> LoopSettings:
    return LoopSettings(run=args.run, steps=args.steps or steps, seed=args.seed,
                        ema_decay=tc.ema_decay, log_every=tc.log_every,
                        checkpoint_every=tc.checkpoint_every, sample_every=tc.sample_every,
                        progress=not args.no_progress)


def train_autoencoder(args: argparse.Namespace) -> int:
    from jenbridge.training.autoencoder_task import AutoencoderTask

    d = init_distributed(args.device)
    cfg = run_config(args, d.main)
    tc = cfg.autoencoder_training
    from jenbridge.training.checkpoint import latest_checkpoint

    if tc.trainable == "decoder" and not getattr(args, "init_from", None) \
            and latest_checkpoint(args.run) is None:
        shutdown(d)
        raise ValueError("autoencoder_training.trainable=decoder fine-tunes a trained "
                         "autoencoder: give it with --init-from (its encoder and latent "
                         "statistics are kept)")
    torch.manual_seed(args.seed)  # same initial weights on every rank and every fresh start
    task = AutoencoderTask(cfg, d)
    batches = source_batches(args, cfg, tc.crop_seconds, tc.batch_size, args.steps or tc.steps, d)
    task.probe = next(iter(batches(0)))["audio"][:1]  # fixed example for audio samples
    init = _init(args, cfg)
    if init is not None and task.decoder_only and "stats_seconds" in init.extras:
        task.inherited = {"stats_seconds": init.extras["stats_seconds"]}  # statistics kept
    try:
        train(task, batches, _settings(args, tc.steps, tc), cfg, d, init)
    finally:
        shutdown(d)
    return 0


@torch.no_grad()
def gather_stats(args: argparse.Namespace) -> int:
    """Latent mean/covariance over the data with the EMA autoencoder; whitening stored in it."""
    from jenbridge.models.latent_norm import LatentStats
    from jenbridge.training.checkpoint import load_model, save_weights

    model, w = load_model(args.run)
    ae = w.config.autoencoder
    index = dataset_index(args.data, args.run, ae.sample_rate, 1.0, True)
    crop = 8.0
    n = max(1, int(args.seconds / crop))
    dataset = AudioCrops(index.split("train"), ae.sample_rate, ae.channels, crop, ae.latent_hop)
    sampler = StepBatchSampler([c.seconds for c in index.split("train")], 1, 12345, 0, n)
    stats = LatentStats(ae.latent_channels)
    for reqs in sampler:
        audio = torch.as_tensor(dataset[reqs[0]]["audio"])[None]
        stats.update(model.encode(audio))
    share = ae.variance_kept if args.variance_kept is None else args.variance_kept
    kept = model.norm.set_stats(stats.mean, stats.cov, share)
    out = args.run / "autoencoder.safetensors"
    save_weights(out, model.state_dict(), "autoencoder", w.step, w.config,
                 {**w.extras, "latent_channels": kept, "stats_seconds": n * crop})
    log.info("latent statistics over %.0f s: kept %d of %d channels (%.1f%% of the variance); "
             "wrote %s", n * crop, kept, ae.latent_channels,
             100 * float(model.norm.variance_covered), out)
    return 0


def cache_latents(args: argparse.Namespace) -> int:
    from jenbridge.training.latent_cache import build_latent_cache

    build_latent_cache(args.autoencoder, args.data, args.out)
    return 0


def train_diffusion(args: argparse.Namespace) -> int:
    from jenbridge.training.diffusion_task import DiffusionTask, latent_batches

    d = init_distributed(args.device)
    cfg = run_config(args, d.main)
    torch.manual_seed(args.seed)
    task = DiffusionTask(cfg, args.autoencoder, d)
    tc = cfg.diffusion_training
    stop = args.steps or tc.steps
    if args.latents:
        batches = latent_batches(args.latents, task.crop_frames, tc.batch_size, args.seed, stop,
                                 d, args.workers)
    else:
        audio = source_batches(args, cfg, tc.crop_seconds, tc.batch_size, stop, d)

        def batches(start: int) -> Iterator[dict[str, Any]]:
            for b in audio(start):
                yield task.encode_batch(b)

    try:
        train(task, batches, _settings(args, tc.steps, tc), cfg, d, _init(args, cfg))
    finally:
        shutdown(d)
    return 0


def encoder_floor(args: argparse.Namespace) -> int:
    """Fine-tune an encoder to ignore noise floors (training/floor_task.py)."""
    from jenbridge.training.checkpoint import read_weights
    from jenbridge.training.floor_task import EncoderFloorTask

    try:
        lo, hi = (float(v) for v in args.floor.split(","))
    except ValueError:
        raise ValueError(f"--floor must be LO,HI in dBFS, got {args.floor!r}") from None
    d = init_distributed(args.device)
    cfg = read_weights(args.autoencoder).config
    torch.manual_seed(args.seed)
    task = EncoderFloorTask(args.autoencoder, d, (lo, hi), args.lr, args.batch_size,
                            args.crop_seconds)
    ae = cfg.autoencoder
    args.run.mkdir(parents=True, exist_ok=True)
    index = dataset_index(args.data, args.run, ae.sample_rate, args.crop_seconds, d.main)
    batches = audio_batches(index, ae.sample_rate, ae.channels, args.crop_seconds,
                            ae.latent_hop, args.batch_size, args.seed, args.steps, d,
                            args.workers)
    settings = LoopSettings(run=args.run, steps=args.steps, seed=args.seed, ema_decay=0.99,
                            log_every=25, checkpoint_every=250, sample_every=0,
                            progress=not args.no_progress)
    try:
        train(task, batches, settings, cfg, d)
    finally:
        shutdown(d)
    return 0


def export(args: argparse.Namespace) -> int:
    from jenbridge.training.checkpoint import export_weights

    out = export_weights(args.run, args.out, fp16=not args.fp32)
    log.info("wrote %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return 0
