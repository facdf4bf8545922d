"""JEN-1's multi-task diffusion training objective (torch).

One batch mixes three in-context tasks (JEN-1 §4.3; split from `DiffusionConfig.task_split`,
thirds by default): text-to-music (mask all ones), inpainting (random spans, 1..3 of them,
covering `inpaint_fraction` of the clip) and continuation (a suffix covering
`continuation_fraction`, run unidirectionally: causal = 1). The U-Net sees the noisy latent, the
masked clean latent `x0 * (1 - mask)` and the mask (1 = generate, 0 = known), and is scored only
on the frames it has to generate.

Classifier-free guidance is trained by dropout to null conditions: text to the null condition
(all-zero text and text_mask) with p = `text_dropout`, and bpm / key / meter each independently
to their null code 0 with their own p.

The U-Net contract: `model(x, t, masked=, mask=, text=, text_mask=, bpm=, key=, meter=, causal=)`
with x, masked (B,K,T); t (B,) float32 in [0, timesteps); mask (B,1,T); text (B,L,D);
text_mask (B,L); bpm (B,) float (0 = unset); key, meter (B,) int64 (0 = unset); causal (B,)
float32 (1 = unidirectional) -> prediction (B,K,T), eps or v per `DiffusionConfig.prediction`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from jenbridge.config import DiffusionConfig
from jenbridge.diffusion.masks import TRAINING_TASKS, training_masks
from jenbridge.diffusion.schedule import DDPMSchedule, add_noise, prediction_target


def _check_shapes(latents: Tensor, text: Tensor, text_mask: Tensor, bpm: Tensor, key: Tensor,
                  meter: Tensor) -> None:
    if latents.ndim != 3:
        raise ValueError(f"latents must be (B, K, T), got shape {tuple(latents.shape)}")
    B = latents.shape[0]
    if text.ndim != 3 or text.shape[0] != B:
        raise ValueError(f"text must be (B={B}, L, D), got shape {tuple(text.shape)}")
    if tuple(text_mask.shape) != tuple(text.shape[:2]):
        raise ValueError(f"text_mask must be (B, L) = {tuple(text.shape[:2])}, "
                         f"got {tuple(text_mask.shape)}")
    for name, v in (("bpm", bpm), ("key", key), ("meter", meter)):
        if tuple(v.shape) != (B,):
            raise ValueError(f"{name} must be (B,) = ({B},), got shape {tuple(v.shape)}")


def _uniform(n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """n draws from U[0, 1) on the generator's device, moved to `device`."""
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def diffusion_loss(
    model: Callable[..., Tensor],
    latents: Tensor,
    text: Tensor,
    text_mask: Tensor,
    bpm: Tensor,
    key: Tensor,
    meter: Tensor,
    cfg: DiffusionConfig,
    generator: torch.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """JEN-1 multi-task loss for one batch; deterministic given `generator`'s state.

    latents: (B, K, T) normalized clean latents; text: (B, L, D) token states; text_mask: (B, L)
    1 = real token; bpm: (B,) float; key, meter: (B,) int64 (0 = unset everywhere).

    Steps: tasks and masks per row (`masks.training_masks`), timesteps t ~ U{0..T-1}, eps ~
    N(0, I), x_t = sqrt(ab) x0 + sqrt(1-ab) eps; condition dropout; target eps or v; squared
    error averaged over the frames each row generates (all frames for text-to-music) and K, then
    over rows (every row weighs the same whatever its mask size).

    Returns (loss: scalar tensor with grad, stats) where stats holds Python floats: "loss",
    "loss/<task>" and "rows/<task>" for the tasks present, "dropped/text|bpm|key|meter" (row
    counts), "mask_fraction" (mean share of generated frames) and "t_mean".
    """
    _check_shapes(latents, text, text_mask, bpm, key, meter)
    B, _, T = latents.shape
    device, dtype = latents.device, latents.dtype
    schedule = DDPMSchedule.from_config(cfg)

    # Masks are drawn with numpy, seeded from the torch generator (so one generator drives all).
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    rng = np.random.default_rng(seed)
    tasks, mask_np, causal_np = training_masks(
        B, T, cfg.task_split, cfg.inpaint_fraction, cfg.continuation_fraction, rng
    )
    mask = torch.from_numpy(mask_np).to(device=device, dtype=dtype)[:, None, :]  # (B, 1, T)
    causal = torch.from_numpy(causal_np).to(device)  # (B,)

    t = torch.randint(0, schedule.timesteps, (B,), generator=generator,
                      device=generator.device).to(device)
    eps = torch.randn(latents.shape, generator=generator, device=generator.device).to(device, dtype)
    ab_table = torch.from_numpy(schedule.alphas_cumprod.copy()).to(device)  # (timesteps,) float64
    ab = ab_table[t].to(dtype)[:, None, None]  # (B, 1, 1)
    x_t = add_noise(latents, eps, ab)
    masked = latents * (1.0 - mask)

    # Classifier-free dropout: one independent draw per row and condition.
    drop_text = _uniform(B, generator, device) < cfg.text_dropout
    drop_bpm = _uniform(B, generator, device) < cfg.bpm_dropout
    drop_key = _uniform(B, generator, device) < cfg.key_dropout
    drop_meter = _uniform(B, generator, device) < cfg.meter_dropout
    keep_text = (~drop_text).to(text.dtype)
    text_in = text * keep_text[:, None, None]
    text_mask_in = text_mask * (~drop_text).to(text_mask.dtype)[:, None]
    bpm_in = torch.where(drop_bpm, torch.zeros_like(bpm), bpm)
    key_in = torch.where(drop_key, torch.zeros_like(key), key)
    meter_in = torch.where(drop_meter, torch.zeros_like(meter), meter)

    pred = model(x_t, t.to(torch.float32), masked=masked, mask=mask, text=text_in,
                 text_mask=text_mask_in, bpm=bpm_in, key=key_in, meter=meter_in, causal=causal)
    if pred.shape != latents.shape:
        raise ValueError(f"model returned shape {tuple(pred.shape)}, expected "
                         f"{tuple(latents.shape)}")
    target = prediction_target(latents, eps, ab, cfg.prediction)
    sq = (pred.float() - target.float()).pow(2) * mask.float()  # (B, K, T), zero on known frames
    per_row = sq.sum(dim=(1, 2)) / (mask.float().sum(dim=(1, 2)) * latents.shape[1])  # (B,)
    loss = per_row.mean()

    stats: dict[str, float] = {"loss": float(loss.detach())}
    rows = per_row.detach().cpu()
    for task in TRAINING_TASKS:
        idx = [i for i, tk in enumerate(tasks) if tk is task]
        if idx:
            stats[f"loss/{task.value}"] = float(rows[idx].mean())
            stats[f"rows/{task.value}"] = float(len(idx))
    for name, dropped in (("text", drop_text), ("bpm", drop_bpm), ("key", drop_key),
                          ("meter", drop_meter)):
        stats[f"dropped/{name}"] = float(dropped.sum())
    stats["mask_fraction"] = float(mask_np.mean())
    stats["t_mean"] = float(t.float().mean())
    return loss, stats


def unet_denoiser(unet: Callable[..., Tensor]) -> Callable[[Tensor, float, dict[str, Any]], Tensor]:
    """Adapt a U-Net to the samplers' `model(x, t, cond)` form (torch path).

    `cond` is a dict with the U-Net's keyword inputs (samplers.COND_KEYS: masked, mask, text,
    text_mask, bpm, key, meter, causal), each batched like x; the float timestep t is broadcast to
    a (B,) float32 tensor. Wrap the result in `samplers.guided` for classifier-free guidance.
    """

    def model(x: Tensor, t: float, cond: dict[str, Any]) -> Tensor:
        tt = torch.full((x.shape[0],), float(t), dtype=torch.float32, device=x.device)
        return unet(x, tt, **cond)

    return model
