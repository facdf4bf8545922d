"""The training loop shared by the autoencoder and the diffusion model.

A task object owns the model, its optimizers and what one step does; this loop owns the rest:
resuming, per-step seeding, EMA, progress bar, TensorBoard, audio samples and checkpoints.

Exact resume: the batch of step s is addressed by (seed, s) (see data/crops.py), and every step
reseeds torch from (seed, s, rank), so `N steps` equals `N/2 steps, stop, resume, N/2 steps`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from jenbridge.config import ModelConfig
from jenbridge.training.checkpoint import (
    WeightsFile,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from jenbridge.training.distributed import Dist, all_reduce_mean, barrier, replica_checksums
from jenbridge.training.ema import EMA

log = logging.getLogger("jenbridge.train")


class TrainTask(Protocol):
    kind: str  # "autoencoder" | "diffusion"
    examples_per_step: int  # global examples per optimizer step
    seconds_per_example: float  # audio seconds per example (throughput in audio-s/s)

    @property
    def model(self) -> nn.Module: ...  # the raw (unwrapped) model whose weights are saved

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]: ...
    def state_dict(self) -> dict[str, Any]: ...  # optimizers, extra trained modules
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def extras(self) -> dict[str, Any]: ...  # metadata saved with the weights
    def write_samples(self, ema: nn.Module, step: int, out: Path, writer: Any) -> None: ...


@dataclass(frozen=True)
class LoopSettings:
    run: Path
    steps: int  # train until this global step
    seed: int = 0
    ema_decay: float = 0.999
    log_every: int = 50
    checkpoint_every: int = 1000
    sample_every: int = 2000
    keep: int = 3  # checkpoints kept
    progress: bool = True
    tensorboard: bool = True


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1)


def resume_step(task: TrainTask, ema: EMA, run: Path) -> int:
    """Load the latest checkpoint of `run` into task and EMA; return the step to continue at."""
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        return 0
    weights, ema_weights, state = load_checkpoint(ckpt)
    task.model.load_state_dict(weights.state)
    ema.shadow.load_state_dict(ema_weights.state)
    task.load_state_dict(state["task"])
    log.info("resumed %s from %s (step %d)", task.kind, ckpt, weights.step)
    return int(state["step"])


def _writer(settings: LoopSettings, d: Dist) -> Any:
    if not (settings.tensorboard and d.main):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is in the `train` extra; without it we log to text only
        log.warning("tensorboard is not installed: logging to the console only")
        return None
    return SummaryWriter(str(settings.run / "tb"))


def train(task: TrainTask, batches: Callable[[int], Iterable[dict[str, Any]]],
          settings: LoopSettings, config: ModelConfig, d: Dist,
          init: WeightsFile | None = None) -> list[dict[str, float]]:
    """Run steps [resume point, settings.steps). `batches(start)` yields one batch per step.

    Returns the logged metrics of every step run (for tests and reports).
    """
    settings.run.mkdir(parents=True, exist_ok=True)
    ema = EMA(task.model, settings.ema_decay)
    start = resume_step(task, ema, settings.run)
    if start == 0 and init is not None:
        # a fresh run seeded from shipped weights (e.g. the committed EMA checkpoint on a new
        # machine): weights and step continue, the optimizer starts anew
        if init.kind != task.kind:
            raise ValueError(f"--init-from holds {init.kind} weights, this run trains {task.kind}")
        task.model.load_state_dict(init.state)
        ema.shadow.load_state_dict(init.state)
        start = init.step
        log.info("initialized %s from weights at step %d", task.kind, start)
    writer = _writer(settings, d)
    history: list[dict[str, float]] = []
    if start >= settings.steps:
        log.info("%s already trained to step %d", task.kind, start)
        return history
    bar = None
    if settings.progress and d.main:
        from tqdm import tqdm

        bar = tqdm(total=settings.steps, initial=start, desc=f"train {task.kind}",
                   dynamic_ncols=True, smoothing=0.05)
    t0, done_since = time.perf_counter(), 0
    step = start
    for step, batch in zip(range(start, settings.steps), batches(start)):
        torch.manual_seed(step_seed(settings.seed, step, d.rank))
        logs = task.train_step(batch, step)
        if d.enabled:  # report the global batch's loss, not this rank's share
            logs["loss"] = float(all_reduce_mean(torch.tensor(logs["loss"]), d))
        if not all(math.isfinite(v) for v in logs.values()):
            raise FloatingPointError(f"non-finite loss at step {step}: {logs}")
        ema.update(task.model, step)
        history.append(logs)
        done_since += 1
        n = step + 1
        if bar is not None:
            bar.update(1)
        if n % settings.log_every == 0 or n == settings.steps:
            dt = max(time.perf_counter() - t0, 1e-9)
            ex_s = done_since * task.examples_per_step / dt
            logs = {**logs, "examples_per_s": ex_s,
                    "audio_s_per_s": ex_s * task.seconds_per_example}
            if writer is not None:
                for k, v in logs.items():
                    writer.add_scalar(f"{task.kind}/{k}", v, n)
            if d.main:
                with (settings.run / "metrics.jsonl").open("a") as f:
                    f.write(json.dumps({"step": n, **logs}) + "\n")
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if "per_s" not in k
                                 and k in ("loss", "stft", "adv", "disc")} |
                                {"ex/s": f"{ex_s:.2f}"})
            else:
                log.info("step %d %s", n, " ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            t0, done_since = time.perf_counter(), 0
        if d.main and settings.sample_every and n % settings.sample_every == 0:
            task.write_samples(ema.shadow, n, settings.run / "samples", writer)
        if n % settings.checkpoint_every == 0 or n == settings.steps:
            if d.main:
                save_checkpoint(settings.run, n, task.kind, config, task.model, ema.shadow,
                                {"step": n, "task": task.state_dict()}, task.extras(),
                                settings.keep)
            barrier(d)
    if d.enabled:  # DDP keeps replicas identical by construction; verify, cheaply, once
        sums = replica_checksums(task.model, d)
        if d.main:
            (settings.run / "replicas.json").write_text(json.dumps({"step": step + 1,
                                                                    "checksums": sums}))
        if len(set(sums)) != 1:
            raise RuntimeError(f"ranks diverged: weight checksums {sums}")
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    return history
