"""Checkpoints: safetensors weights with the config that built them, plus resumable train state.

A run folder holds `checkpoints/step_00001000/`-style directories (step number, 8 digits), each with
  model.safetensors  the raw weights       (metadata: kind, step, config JSON, extras)
  ema.safetensors    the EMA weights       (same metadata; what we evaluate and export)
  state.pt           optimizers, other trained modules (e.g. the discriminator), step, counters
and a `latest` file naming the newest complete one. A checkpoint directory is written under a
temporary name and renamed when complete, so a crash never leaves a half checkpoint as `latest`.
`export_weights` writes the weights-only file we commit and ship (EMA, fp16, no optimizer state).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from jenbridge.config import ModelConfig, config_from_dict


@dataclass(frozen=True)
class WeightsFile:
    kind: str  # "autoencoder" | "diffusion"
    step: int
    config: ModelConfig
    extras: dict[str, Any]
    state: dict[str, torch.Tensor]


def _metadata(kind: str, step: int, config: ModelConfig,
              extras: dict[str, Any]) -> dict[str, str]:
    return {"kind": kind, "step": str(step), "config": config.to_json(),
            "extras": json.dumps(extras, sort_keys=True)}


def save_weights(path: Path, state: dict[str, torch.Tensor], kind: str, step: int,
                 config: ModelConfig, extras: dict[str, Any] | None = None,
                 dtype: torch.dtype | None = None) -> None:
    """Write a safetensors file atomically; floats cast to `dtype` when given, except the
    latent normalization statistics (`norm.*`), which stay fp32: whitening amplifies the
    rounding error of small eigenvalues."""
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point() and not k.startswith("norm."):
            v = v.to(dtype)
        out[k] = v.contiguous()
    tmp = path.with_name(path.name + ".tmp")
    save_file(out, str(tmp), metadata=_metadata(kind, step, config, extras or {}))
    tmp.replace(path)


def read_weights(path: str | Path) -> WeightsFile:
    """Read weights + metadata; floats are returned as float32."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no weights file at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta or "kind" not in meta:
        raise ValueError(f"{path}: not a jenbridge weights file (no config/kind metadata)")
    state = {k: (v.float() if v.is_floating_point() else v)
             for k, v in load_file(str(path)).items()}
    return WeightsFile(meta["kind"], int(meta.get("step", 0)),
                       config_from_dict(json.loads(meta["config"]), str(path)),
                       json.loads(meta.get("extras", "{}")), state)


def build_from_weights(w: WeightsFile) -> nn.Module:
    """Rebuild the model a weights file describes and load its weights."""
    from jenbridge.models.builders import build_autoencoder, build_unet

    if w.kind == "autoencoder":
        model: nn.Module = build_autoencoder(w.config.autoencoder)
    elif w.kind == "diffusion":
        model = build_unet(w.config.unet, int(w.extras["latent_channels"]))
    else:
        raise ValueError(f"unknown weights kind {w.kind!r}")
    model.load_state_dict(w.state)
    return model.eval()


def load_model(path: str | Path) -> tuple[Any, WeightsFile]:
    """Weights file, checkpoint directory or run folder (its latest checkpoint's EMA) -> model."""
    path = Path(path)
    if path.is_dir():
        ckpt = latest_checkpoint(path) if (path / "checkpoints").is_dir() else path
        if ckpt is None:
            raise ValueError(f"{path}: run folder has no checkpoint yet")
        path = ckpt / "ema.safetensors"
    w = read_weights(path)
    return build_from_weights(w), w


def checkpoint_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step_{step:08d}"


def latest_checkpoint(run: Path) -> Path | None:
    pointer = run / "latest"
    if pointer.is_file():
        ckpt = run / "checkpoints" / pointer.read_text().strip()
        if (ckpt / "state.pt").is_file():
            return ckpt
    return None


def save_checkpoint(run: Path, step: int, kind: str, config: ModelConfig,
                    model: nn.Module, ema: nn.Module, train_state: dict[str, Any],
                    extras: dict[str, Any] | None = None, keep: int = 3) -> Path:
    """Write a complete checkpoint directory, point `latest` at it, prune to `keep` newest."""
    final = checkpoint_dir(run, step)
    tmp = final.with_name(final.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(tmp / "model.safetensors", model.state_dict(), kind, step, config, extras)
    save_weights(tmp / "ema.safetensors", ema.state_dict(), kind, step, config, extras)
    torch.save(train_state, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    pointer = run / "latest.tmp"
    pointer.write_text(final.name)
    pointer.replace(run / "latest")
    done = sorted(p for p in (run / "checkpoints").glob("step_*")
                  if not p.name.endswith(".partial"))
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(ckpt: Path) -> tuple[WeightsFile, WeightsFile, dict[str, Any]]:
    """(model weights, EMA weights, train state) of a checkpoint directory."""
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
    return read_weights(ckpt / "model.safetensors"), read_weights(ckpt / "ema.safetensors"), state


def export_weights(source: str | Path, out: str | Path, fp16: bool = True) -> Path:
    """Weights-only file from a run/checkpoint: the EMA weights, fp16 by default."""
    _, w = load_model(source)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(out, w.state, w.kind, w.step, w.config, w.extras,
                 dtype=torch.float16 if fp16 else None)
    return out
