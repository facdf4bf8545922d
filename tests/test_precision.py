"""Mixed precision for training (jenbridge.training.precision): what "auto" resolves to, that
bf16 autocast really runs the network in bf16 while the loss and the weights stay fp32, and that
bf16 training of the tiny U-Net lowers its loss as much as fp32 training does."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from jenbridge.config import load_config
from jenbridge.diffusion.objective import diffusion_loss
from jenbridge.models.builders import build_unet
from jenbridge.training.precision import autocast, cpu_has_native_bf16, resolve

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_resolve() -> None:
    assert resolve("fp32", CUDA) == "fp32" and resolve("bf16", CPU) == "bf16"
    assert resolve("auto", CUDA) == "bf16"
    assert resolve("auto", CPU) == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve("fp16", CPU)


def test_config_refuses_unknown_precision() -> None:
    cfg = load_config("tiny").to_dict()
    cfg["diffusion_training"]["precision"] = "fp8"
    from jenbridge.config import ModelConfig

    with pytest.raises(ValidationError):
        ModelConfig.model_validate(cfg)


def test_autocast_switches_matmul_dtype() -> None:
    layer = torch.nn.Linear(8, 8)
    x = torch.randn(2, 8)
    with autocast(CPU, "bf16"):
        assert layer(x).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert layer(x).dtype == torch.float32
    assert layer.weight.dtype == torch.float32


def _train(precision: str, steps: int) -> tuple[float, float]:
    """Tiny U-Net trained on one structured batch; its loss on fixed noise draws before/after."""
    torch.manual_seed(0)
    cfg = load_config("tiny")
    k, frames, b = 4, 32, 4
    model = build_unet(cfg.unet, k).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    t = torch.arange(frames) / frames
    latents = torch.stack([torch.sin(2 * torch.pi * (c + 1) * t) for c in range(k)])
    latents = latents.expand(b, k, frames).contiguous()  # learnable: every row the same pattern
    text = torch.randn(b, 6, cfg.unet.text_dim)
    mask = torch.ones(b, 6, dtype=torch.int64)
    bpm, key = torch.full((b,), 120.0), torch.ones(b, dtype=torch.int64)
    meter = torch.full((b,), 4, dtype=torch.int64)

    def loss_at(seed: int) -> torch.Tensor:
        with autocast(CPU, precision):
            loss, _ = diffusion_loss(model, latents, text, mask, bpm, key, meter, cfg.diffusion,
                                     torch.Generator().manual_seed(seed))
        return loss

    with torch.no_grad():
        before = sum(loss_at(s).item() for s in range(8)) / 8
    for step in range(steps):
        loss = loss_at(100 + step)
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with torch.no_grad():
        after = sum(loss_at(s).item() for s in range(8)) / 8
    return before, after


def test_bf16_training_tracks_fp32() -> None:
    b0, b1 = _train("bf16", 40)
    f0, f1 = _train("fp32", 40)
    assert b0 == f0  # the U-Net's output layer starts at zero: same starting loss
    assert f1 < 0.95 * f0, (f0, f1)
    assert b0 - b1 > 0.75 * (f0 - f1), (b0, b1, f0, f1)  # bf16 learns as fp32 does
