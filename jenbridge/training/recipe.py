"""`jenbridge train recipe default`: the shipped default model, every stage resumable.

  data         the built-in dataset (FluidSynth renders), grown to `minutes`
  autoencoder  the `small` autoencoder, to `ae_steps` (a fresh machine takes the frozen one
               committed in weights/small/ instead)
  stats        latent statistics (JEN-1 whitening) into runs/ae/autoencoder.safetensors,
               gathered again only when the autoencoder has a newer checkpoint
  latents      the dataset encoded once (redone when the statistics change)
  decoder      the decoder alone fine-tuned to `decoder_steps` (encoder and statistics kept, so
               the latents and the diffusion model stay valid); skipped when the autoencoder
               already got there (the committed one carries its step)
  diffusion    the `small` U-Net on all three tasks, to `diffusion_steps` (a fresh machine
               starts from the milestone committed in weights/small/)
  export       fp16 weights into the repository's weights/small/ (commit them at milestones), a
               model bundle with int8 weights (as shipped) at HOME/bundles/default

Each stage is the matching `jenbridge` command in a child process (so a stage's memory is
returned and `torchrun` can wrap a stage by hand), with its output on this process's stdout.
State lives in HOME (default ~/.cache/jenbridge, or $JENBRIDGE_HOME), outside the repository.
Run it again in every session: finished stages return at once, unfinished ones resume.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STAGES = ("data", "autoencoder", "stats", "latents", "decoder", "diffusion", "export")
# The decoder fine-tune of the default model (measured: 3500 steps took the autoencoder's
# round-trip Fréchet distance from 194.9 to 167 and the model's from 204 to 176, held-out)
DECODER_SETTINGS = ("trainable=decoder", "lr=0.00015", "ema_decay=0.995", "log_every=25",
                    "checkpoint_every=250", "sample_every=500")
REPO = Path(__file__).resolve().parent.parent.parent
# The milestone weights committed with the repository (fp16, weights only): the frozen
# autoencoder with its latent statistics, and the diffusion model's EMA at its last milestone.
SHIPPED_AE = REPO / "weights" / "small" / "autoencoder.fp16.safetensors"
SHIPPED_DIFFUSION = REPO / "weights" / "small" / "diffusion.ema.fp16.safetensors"


@dataclass(frozen=True)
class Recipe:
    home: Path
    minutes: float = 300.0  # built-in dataset size (the default model trains on 5 h)
    ae_steps: int = 3500  # the default model's autoencoder was frozen here (see README)
    decoder_steps: int = 8500  # then its decoder alone was fine-tuned to this step
    diffusion_steps: int | None = None  # None: the config's
    threads: int | None = None
    variance_kept: float = 0.99

    @property
    def data(self) -> Path:
        return self.home / "data" / "builtin"

    @property
    def runs(self) -> Path:
        return self.home / "runs"


def default_home() -> Path:
    return Path(os.environ.get("JENBRIDGE_HOME") or Path.home() / ".cache" / "jenbridge")


def _newest(folder: Path, pattern: str) -> float:
    times = [p.stat().st_mtime for p in folder.glob(pattern)]
    return max(times, default=0.0)


def _step_of(weights: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(weights), "np") as f:
        return int((f.metadata() or {}).get("step", 0))


def commands(r: Recipe, stage: str) -> list[list[str]]:
    """The `jenbridge` command lines of one stage (empty: nothing to do)."""
    threads = ["--threads", str(r.threads)] if r.threads else []
    ae_run, ae_file = r.runs / "ae", r.runs / "ae" / "autoencoder.safetensors"
    latents, diff_run = r.runs / "latents", r.runs / "diffusion"
    dec_run = r.runs / "ae_decoder"
    # the autoencoder the bundle gets: the decoder fine-tune's once it has a checkpoint
    final_ae = dec_run if (dec_run / "checkpoints").is_dir() else ae_file
    if stage == "data":
        return [["data", "builtin", "--out", str(r.data), "--minutes", f"{r.minutes:g}",
                 "--workers", str(r.threads or os.cpu_count() or 1), "--quiet"]]
    if stage == "autoencoder":
        if not (ae_run / "checkpoints").exists() and (ae_file.is_file() or SHIPPED_AE.is_file()):
            # frozen: seeded from the shipped one (run_recipe), never trained here. Training a
            # new one would change the latent space the diffusion milestone was trained in.
            return []
        return [["train", "autoencoder", "--config", "small", "--data", str(r.data),
                 "--run-dir", str(ae_run), "--steps", str(r.ae_steps), "--workers", "1",
                 "--no-progress", *threads]]
    if stage == "stats":
        if ae_file.is_file() and ae_file.stat().st_mtime >= _newest(ae_run / "checkpoints",
                                                                     "step_*"):
            return []
        return [["train", "stats", "--run-dir", str(ae_run), "--data", str(r.data),
                 "--seconds", "1800", "--variance-kept", str(r.variance_kept), *threads]]
    if stage == "latents":
        if latents.is_dir() and _newest(latents, "*") >= ae_file.stat().st_mtime:
            return []
        return [["train", "cache-latents", "--autoencoder", str(ae_file), "--data",
                 str(r.data), "--out", str(latents), *threads]]
    if stage == "decoder":
        if not (dec_run / "checkpoints").is_dir() and _step_of(ae_file) >= r.decoder_steps:
            return []
        sets = [a for kv in DECODER_SETTINGS for a in ("--set", f"autoencoder_training.{kv}")]
        return [["train", "autoencoder", "--config", "small", "--data", str(r.data),
                 "--run-dir", str(dec_run), "--init-from", str(ae_file), "--steps",
                 str(r.decoder_steps), "--workers", "1", "--no-progress", *sets, *threads]]
    if stage == "diffusion":
        steps = ["--steps", str(r.diffusion_steps)] if r.diffusion_steps else []
        if not diff_run.exists() and SHIPPED_DIFFUSION.is_file():  # go on from the milestone
            steps += ["--init-from", str(SHIPPED_DIFFUSION)]
        return [["train", "diffusion", "--config", "small", "--autoencoder", str(ae_file),
                 "--latents", str(latents), "--run-dir", str(diff_run), "--workers", "1",
                 "--no-progress", *steps, *threads]]
    if stage == "export":
        return [["train", "export-weights", "--run-dir", str(final_ae), "--out",
                 str(SHIPPED_AE)],
                ["train", "export-weights", "--run-dir", str(diff_run), "--out",
                 str(SHIPPED_DIFFUSION)],
                ["export", "--autoencoder", str(final_ae), "--diffusion", str(diff_run),
                 "--out", str(r.home / "bundles" / "default"), "--weights", "int8", "--force",
                 *threads]]
    raise ValueError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")


def run_recipe(r: Recipe, stages: tuple[str, ...] = STAGES) -> int:
    """Run the stages in order; stop at the first that fails (its exit code)."""
    for stage in stages:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
    r.runs.mkdir(parents=True, exist_ok=True)
    ae_file = r.runs / "ae" / "autoencoder.safetensors"
    if "autoencoder" in stages and not ae_file.parent.exists() and SHIPPED_AE.is_file():
        ae_file.parent.mkdir(parents=True)
        shutil.copyfile(SHIPPED_AE, ae_file)  # the default model's autoencoder is frozen
        print(f"== autoencoder: seeded from {SHIPPED_AE} (frozen, with latent statistics)")
    for stage in stages:
        todo = commands(r, stage)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(f"== {stage} {stamp}" + ("" if todo else ": up to date"), flush=True)
        for argv in todo:
            code = subprocess.call([sys.executable, "-m", "jenbridge", *argv])
            if code:
                print(f"== {stage} failed (exit {code}); run the recipe again to resume",
                      flush=True)
                return code
    return 0
