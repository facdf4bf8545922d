"""The DDPM noise schedule JEN-1 trains with, and the algebra between its prediction targets.

numpy only (no torch), so the training code, the ONNX engine and the tests share it.

Conventions (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"):

- A timestep `t` is an integer index 0..T-1; t = 0 is the least noisy, T-1 the noisiest.
  Samplers hand it to the model as a float (the U-Net embeds a float in [0, T)).
- `alpha_bar[t] = prod_{s <= t} (1 - beta_s)`; a noisy latent is
  `x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * eps` with eps ~ N(0, I).
- Prediction targets: "eps" (the noise, JEN-1's choice) or "v" (Salimans & Ho 2022,
  "Progressive Distillation"): `v = sqrt(alpha_bar) * eps - sqrt(1 - alpha_bar) * x0`.

The helpers below only use arithmetic (`*`, `-`, `** 0.5`), so `x`, `pred` and `alpha_bar` may be
numpy arrays, torch tensors (e.g. alpha_bar of shape (B, 1, 1)) or Python floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from jenbridge.config import DiffusionConfig

PREDICTIONS = ("eps", "v")
SPACINGS = ("trailing", "linspace")


@dataclass(frozen=True)
class DDPMSchedule:
    """Linear-beta DDPM schedule; JEN-1: T = 1000 steps, betas 0.0015 → 0.0195.

    `betas` and `alphas_cumprod` are read-only float64 arrays of shape (T,). With the paper's
    values alpha_bar falls from 0.9985 (t=0) to ~2.6e-5 (t=999), so a sampler starting at
    t = T-1 may start from pure N(0, I) noise.
    """

    timesteps: int = 1000
    beta_start: float = 0.0015
    beta_end: float = 0.0195
    betas: np.ndarray = field(init=False, repr=False, compare=False)
    alphas_cumprod: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.timesteps < 2:
            raise ValueError(f"timesteps must be >= 2, got {self.timesteps}")
        if not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )
        betas = np.linspace(self.beta_start, self.beta_end, self.timesteps, dtype=np.float64)
        alphas_cumprod = np.cumprod(1.0 - betas)
        betas.flags.writeable = False
        alphas_cumprod.flags.writeable = False
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas_cumprod", alphas_cumprod)

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> DDPMSchedule:
        """The schedule a `DiffusionConfig` describes (timesteps, beta_start, beta_end)."""
        return cls(cfg.timesteps, cfg.beta_start, cfg.beta_end)

    def alpha_bar(self, t: int) -> float:
        """alpha_bar at integer timestep t in [0, T); t = -1 means clean data (alpha_bar = 1)."""
        t = int(t)
        if t == -1:
            return 1.0
        if not 0 <= t < self.timesteps:
            raise ValueError(f"timestep {t} out of range 0..{self.timesteps - 1} (or -1)")
        return float(self.alphas_cumprod[t])

    def log_snr(self, t: int) -> float:
        """lambda_t = log(alpha_t / sigma_t) = 0.5 * log(alpha_bar / (1 - alpha_bar)).

        +inf for t = -1 (clean data).
        """
        ab = self.alpha_bar(t)
        if ab >= 1.0:
            return math.inf
        return 0.5 * math.log(ab / (1.0 - ab))


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def add_noise(x0: Any, eps: Any, alpha_bar: Any) -> Any:
    """Forward process q(x_t | x0): `sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * eps`."""
    return alpha_bar**0.5 * x0 + (1.0 - alpha_bar) ** 0.5 * eps


def prediction_target(x0: Any, eps: Any, alpha_bar: Any, prediction: str) -> Any:
    """The training target for `prediction`: eps itself, or v = sqrt(ab)*eps - sqrt(1-ab)*x0."""
    _check_prediction(prediction)
    if prediction == "eps":
        return eps
    return alpha_bar**0.5 * eps - (1.0 - alpha_bar) ** 0.5 * x0


def split_prediction(pred: Any, x: Any, alpha_bar: Any, prediction: str) -> tuple[Any, Any]:
    """Turn a model output at noisy `x` into (x0 estimate, eps estimate).

    eps: x0 = (x - sqrt(1-ab) * eps) / sqrt(ab).
    v:   x0 = sqrt(ab) * x - sqrt(1-ab) * v,  eps = sqrt(1-ab) * x + sqrt(ab) * v.
    `alpha_bar` must be > 0 (any timestep of a DDPM schedule is).
    """
    _check_prediction(prediction)
    a, s = alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5
    if prediction == "eps":
        return (x - s * pred) / a, pred
    return a * x - s * pred, s * x + a * pred


def sampler_timesteps(schedule: DDPMSchedule, steps: int, spacing: str = "trailing") -> np.ndarray:
    """The `steps` timesteps a sampler visits, descending, as an int64 array of shape (steps,).

    - "trailing" (default; Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps
      are Flawed", table 2): `round(T - i * T / steps) - 1`, i = 0..steps-1. Starts at T-1
      (pure noise) and ends at T/steps - 1, e.g. T=1000, steps=10 -> 999, 899, ..., 99.
    - "linspace": `round(linspace(T-1, 0, steps))`, e.g. 999, 888, ..., 0.

    After the last listed timestep every sampler takes one final step to clean data (t = -1), so
    a run costs exactly `steps` model calls.
    """
    T = schedule.timesteps
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in 1..{T}, got {steps}")
    if spacing == "trailing":
        ts = np.round(T - np.arange(steps) * (T / steps)) - 1
    elif spacing == "linspace":
        ts = np.round(np.linspace(T - 1, 0, steps))
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    return ts.astype(np.int64)


def start_step_for_strength(steps: int, strength: float) -> int:
    """Index into `sampler_timesteps(..., steps)` where audio-to-audio variation starts.

    strength s in [0, 1] is the share of the `steps` that is run: start = steps - round(s * steps).
    s = 1 -> 0 (the whole trajectory from pure noise: the source is forgotten); s = 0 -> steps
    (nothing runs; the source comes back unchanged). Noise the source latent to that step with
    `add_noise(x0, eps, schedule.alpha_bar(timesteps[start]))` and pass `start_step=start`.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    return steps - round(strength * steps)
