"""Samplers over a `model(x, t, cond) -> prediction` callable, for numpy and torch alike.

k-diffusion style: pure functions with one shared signature

    sample_x(model, x, schedule, steps, *, cond=None, prediction="eps", noise_fn=None,
             callback=None, should_stop=None, start_step=0, spacing="trailing") -> x0

- `model(x, t, cond)`: x is the noisy latent (B, K, T frames), t a Python float timestep in
  [0, schedule.timesteps), cond whatever the model needs (passed through untouched); returns an
  eps or v prediction (`prediction`) shaped like x. A torch module, an ONNX session wrapper or a
  test double all fit.
- `x`: the starting point at timestep `sampler_timesteps(schedule, steps)[start_step]`: pure
  N(0, I) noise for start_step = 0, or a source latent noised to that step for audio-to-audio
  variation (see `schedule.start_step_for_strength`).
- `callback(step, total, x0_estimate)`: after each step; step in [start_step, total).
- `should_stop()`: checked before each step; True raises `SamplingCancelled`.
- `noise_fn(x)`: standard normal noise shaped like x (same array type); only needed by
  stochastic samplers (DDIM with eta > 0). `numpy_noise(rng)` makes one for numpy.
- `spacing`: which timesteps are visited, see `schedule.sampler_timesteps` ("trailing").

`sample_ddim` also takes `eta` (0 = deterministic DDIM, 1 = DDPM-like ancestral noise).

The code only does arithmetic between `x` and Python floats, so the same functions run on numpy
arrays and torch tensors (no torch import here) and keep the input's dtype.

Classifier-free guidance is a model wrapper, `guided(model, scale)`; the cond it takes is a dict
of batched arrays plus a "null" dict (see `guided`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from jenbridge.diffusion.schedule import (
    PREDICTIONS,
    DDPMSchedule,
    sampler_timesteps,
    split_prediction,
)

Model = Callable[[Any, float, Any], Any]
Callback = Callable[[int, int, Any], None]

# Keys of the cond dict the U-Net adapters understand (see objective.unet_denoiser): masked
# (B,K,T) clean latent * (1 - mask), mask (B,1,T) 1 = generate, text (B,L,D), text_mask (B,L),
# bpm (B,) float, key (B,) int64, meter (B,) int64, causal (B,) float32 (1 = unidirectional).
COND_KEYS = ("masked", "mask", "text", "text_mask", "bpm", "key", "meter", "causal")


class SamplingCancelled(Exception):
    """`should_stop()` returned True between two sampler steps."""


def numpy_noise(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A `noise_fn` drawing N(0, I) from `rng`, shaped and typed like its argument."""
    return lambda x: rng.standard_normal(x.shape).astype(x.dtype, copy=False)


def _check_args(schedule: DDPMSchedule, steps: int, start_step: int, prediction: str) -> None:
    if not 1 <= steps <= schedule.timesteps:
        raise ValueError(f"steps must be in 1..{schedule.timesteps}, got {steps}")
    if not 0 <= start_step <= steps:
        raise ValueError(f"start_step must be in 0..{steps}, got {start_step}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def _poll(should_stop: Callable[[], bool] | None, step: int) -> None:
    if should_stop is not None and should_stop():
        raise SamplingCancelled(f"sampling cancelled before step {step}")


def sample_ddim(
    model: Model,
    x: Any,
    schedule: DDPMSchedule,
    steps: int,
    *,
    cond: Any = None,
    prediction: str = "eps",
    eta: float = 0.0,
    noise_fn: Callable[[Any], Any] | None = None,
    callback: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    start_step: int = 0,
    spacing: str = "trailing",
) -> Any:
    """DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12); eta=0: deterministic.

    Each step: x0, eps from the model at t_i, then
    x_{i+1} = sqrt(ab_next) * x0 + sqrt(1 - ab_next - sigma^2) * eps + sigma * z, with
    sigma = eta * sqrt((1 - ab_next) / (1 - ab) * (1 - ab / ab_next)). The last step goes to
    clean data (ab_next = 1) and returns the final x0 estimate.
    """
    _check_args(schedule, steps, start_step, prediction)
    if eta < 0.0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if eta > 0.0 and noise_fn is None:
        raise ValueError("DDIM with eta > 0 needs a noise_fn")
    ts = sampler_timesteps(schedule, steps, spacing)
    for i in range(start_step, steps):
        _poll(should_stop, i)
        ab = schedule.alpha_bar(ts[i])
        ab_next = schedule.alpha_bar(ts[i + 1]) if i + 1 < steps else 1.0
        x0, eps = split_prediction(model(x, float(ts[i]), cond), x, ab, prediction)
        sigma = eta * math.sqrt((1.0 - ab_next) / (1.0 - ab) * (1.0 - ab / ab_next))
        x = math.sqrt(ab_next) * x0 + math.sqrt(max(1.0 - ab_next - sigma**2, 0.0)) * eps
        if sigma > 0.0:
            assert noise_fn is not None  # checked above
            x = x + sigma * noise_fn(x)
        if callback is not None:
            callback(i, steps, x0)
    return x


def sample_dpmpp_2m(
    model: Model,
    x: Any,
    schedule: DDPMSchedule,
    steps: int,
    *,
    cond: Any = None,
    prediction: str = "eps",
    noise_fn: Callable[[Any], Any] | None = None,
    callback: Callback | None = None,
    should_stop: Callable[[], bool] | None = None,
    start_step: int = 0,
    spacing: str = "trailing",
) -> Any:
    """DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", alg. 2), discrete-time VP, log-SNR steps.

    With alpha = sqrt(ab), sigma = sqrt(1 - ab), lambda = log(alpha / sigma), h = lambda_next -
    lambda and D the data prediction: x_next = (sigma_next / sigma) * x - alpha_next *
    expm1(-h) * D. The first step (from `start_step`) uses D = x0_i (first order); later steps use
    D = (1 + 1/(2r)) * x0_i - 1/(2r) * x0_{i-1} with r = h_{i-1} / h. The final step goes to
    clean data (lambda = +inf) and returns x0 (the usual lower-order final step). Deterministic:
    `noise_fn` is accepted for the shared signature and unused.
    """
    del noise_fn
    _check_args(schedule, steps, start_step, prediction)
    ts = sampler_timesteps(schedule, steps, spacing)
    x0_prev: Any = None
    h_prev = 0.0
    for i in range(start_step, steps):
        _poll(should_stop, i)
        ab = schedule.alpha_bar(ts[i])
        x0, _ = split_prediction(model(x, float(ts[i]), cond), x, ab, prediction)
        if i + 1 == steps:
            x = x0
        else:
            ab_next = schedule.alpha_bar(ts[i + 1])
            h = schedule.log_snr(ts[i + 1]) - schedule.log_snr(ts[i])
            if x0_prev is None:
                d = x0
            else:
                r = h_prev / h
                d = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * x0_prev
            ratio = math.sqrt((1.0 - ab_next) / (1.0 - ab))
            x = ratio * x - math.sqrt(ab_next) * math.expm1(-h) * d
            x0_prev, h_prev = x0, h
        if callback is not None:
            callback(i, steps, x0)
    return x


SAMPLERS: dict[str, Callable[..., Any]] = {"ddim": sample_ddim, "dpmpp_2m": sample_dpmpp_2m}


def _concat(a: Any, b: Any) -> Any:
    """Concatenate two numpy arrays or two torch tensors along the batch axis (0)."""
    if isinstance(a, np.ndarray):
        return np.concatenate([a, b], axis=0)
    torch = sys.modules.get("torch")  # only present if the caller already passes tensors
    if torch is not None and isinstance(a, torch.Tensor):
        return torch.cat([a, b], dim=0)
    raise TypeError(f"guided(): cond values must be numpy arrays or torch tensors, not {type(a)}")


def guided(model: Model, scale: float) -> Model:
    """Classifier-free guidance (Ho & Salimans 2022): uncond + scale * (cond - uncond).

    The returned `model(x, t, cond)` takes `cond` as a dict of batched arrays (numpy or torch,
    leading axis B) plus `cond["null"]`: a dict holding the null counterpart of every key that
    differs in the unconditional branch, e.g.

        {"text": text, "text_mask": text_mask, "bpm": bpm, "masked": masked, "mask": mask, ...,
         "null": {"text": zeros_like(text), "text_mask": zeros_like(text_mask),
                  "bpm": zeros_like(bpm)}}

    Keys missing from "null" (mask, masked latent, causal flag, ...) are shared by both branches.
    One batched model call of 2B rows per step: rows [0, B) conditional, [B, 2B) null; the wrapped
    model sees cond without the "null" key. scale = 1 calls only the conditional branch and
    scale = 0 only the null branch (B rows, same result as the batched formula).
    """

    def guided_model(x: Any, t: float, cond: Any) -> Any:
        if not isinstance(cond, dict) or not isinstance(cond.get("null"), dict):
            raise ValueError("guided(): cond must be a dict with a 'null' dict of null conditions")
        null = cond["null"]
        conditional = {k: v for k, v in cond.items() if k != "null"}
        unknown = sorted(set(null) - set(conditional))
        if unknown:
            raise ValueError(f"guided(): null keys without a conditional counterpart: {unknown}")
        if scale == 1.0:
            return model(x, t, conditional)
        if scale == 0.0:
            return model(x, t, {k: null.get(k, v) for k, v in conditional.items()})
        batched = {k: _concat(v, null.get(k, v)) for k, v in conditional.items()}
        out = model(_concat(x, x), t, batched)
        b = x.shape[0]
        c, u = out[:b], out[b:]
        return u + scale * (c - u)

    return guided_model
