"""The sampler loop over unet.onnx: classifier-free guidance, in-context masks, sliding windows.

`sample_canvas` turns a canvas — a known latent (K, T) and a mask (T,) with 1 = generate — into
a latent whose masked frames are sampled and whose known frames are kept exactly:

- Guidance (`samplers.guided`): the conditional and unconditional branches run in *one* U-Net
  call of batch 2. The unconditional branch drops every condition the model was trained to
  drop: text -> zeros with an all-zero text mask, and bpm / key / meter -> unset (0). That is
  the standard p(x | c) vs p(x) guidance over all of c; the model saw each condition dropped
  independently in training, so the null of each is in distribution. The task's in-context
  inputs (masked latent, mask, causal flag) are shared by both branches.
- In context (JEN-1): the U-Net sees the masked clean latent and the mask beside the noisy
  latent. Known frames of the noisy latent are replaced, before every call, by the clean latent
  noised to the current timestep with the canvas noise, as in training, where the whole
  clip was noised and only the generated frames were scored.
- Windows (windows.py): canvases longer than the window are sampled window by window, each
  conditioned in context on what the previous one made.

Noise comes from `numpy.random.default_rng(seed)` drawing the whole canvas at once.
`progress(fraction, stage)` is called after every sampler step (fraction of all steps of all
windows, stage "sample" or "sample i/n"); `should_stop()` is polled before every step and raises
`Cancelled`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jenbridge.diffusion.samplers import SAMPLERS, SamplingCancelled, guided
from jenbridge.diffusion.schedule import DDPMSchedule, add_noise, sampler_timesteps
from jenbridge.engine.options import Options, Progress, ShouldStop
from jenbridge.engine.sessions import BundleSessions, Timings
from jenbridge.engine.windows import plan_windows, sample_windows


class Cancelled(SamplingCancelled):
    """The request was cancelled: `should_stop()` returned True between two sampler steps."""


def poll(should_stop: ShouldStop | None, where: str) -> None:
    """Raise Cancelled if should_stop() says so (`where` goes into the message)."""
    if should_stop is not None and should_stop():
        raise Cancelled(f"cancelled {where}")


def unet_model(sessions: BundleSessions, timings: Timings) -> Callable[..., np.ndarray]:
    """The samplers' model(x, t, cond) over unet.onnx: t broadcast to a (B,) float32."""

    def model(x: np.ndarray, t: float, cond: dict[str, Any]) -> np.ndarray:
        feeds = {**cond, "x": x, "t": np.full((x.shape[0],), t, np.float32)}
        return sessions.unet(feeds, timings)

    return model


def conditions(sessions: BundleSessions, prompt: str, opts: Options,
               timings: Timings) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(conditional, null) inputs of batch 1: text (1, L, D), text_mask (1, L), bpm (1,),
    key (1,), meter (1,); the null ones are all zeros (unset)."""
    states, text_mask = sessions.text(prompt, timings)
    c = opts.conditions
    conditional = {"text": states, "text_mask": text_mask,
                   "bpm": np.array([c.bpm], np.float32), "key": np.array([c.key], np.int64),
                   "meter": np.array([c.meter], np.int64)}
    return conditional, {k: np.zeros_like(v) for k, v in conditional.items()}


def sample_canvas(
    sessions: BundleSessions,
    schedule: DDPMSchedule,
    opts: Options,
    prompt: str,
    known: np.ndarray,
    mask: np.ndarray,
    causal: bool,
    window: int,
    overlap: int,
    timings: Timings,
    source: np.ndarray | None = None,
    first_step: int = 0,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> tuple[np.ndarray, int]:
    """Sample every masked frame of a canvas; returns (latent (K, T) float32, windows sampled).

    known (K, T): clean normalized latent where mask (T,) is 0. causal: run the U-Net
    unidirectionally (continuation). window / overlap: latent frames (windows.plan_windows).
    source (K, T): for variations, a latent noised to the timestep of `first_step` to start
    from (mask all ones); None starts from pure noise at step 0.
    """
    poll(should_stop, "before sampling")
    K, T = known.shape
    noise = np.random.default_rng(opts.seed).standard_normal((K, T), dtype=np.float32)
    if source is None:
        start = noise
    else:
        t0 = sampler_timesteps(schedule, opts.steps)[first_step]
        start = add_noise(source, noise, schedule.alpha_bar(t0)).astype(np.float32)
    plan = plan_windows(mask, window, overlap, causal)
    conditional, null = conditions(sessions, prompt, opts, timings)
    shared = {"causal": np.array([1.0 if causal else 0.0], np.float32)}
    total = max(len(plan) * (opts.steps - first_step), 1)
    done = 0
    run_unet = guided(unet_model(sessions, timings), opts.guidance)
    sample = SAMPLERS[opts.sampler]
    prediction = sessions.manifest.sampler.prediction

    def run_window(index: int, count: int, x: np.ndarray, context: np.ndarray,
                   local: np.ndarray, eps: np.ndarray) -> np.ndarray:
        m = local[None, None, :].astype(np.float32)  # (1, 1, Tw)
        generate = m > 0.5
        cond = {**conditional, **shared, "masked": context * (1.0 - m), "mask": m, "null": null}
        stage = "sample" if count == 1 else f"sample {index + 1}/{count}"

        def model(xt: np.ndarray, t: float, cnd: dict[str, Any]) -> np.ndarray:
            noisy_known = add_noise(context, eps, schedule.alpha_bar(int(round(t))))
            return run_unet(np.where(generate, xt, noisy_known), t, cnd)

        def callback(step: int, steps: int, x0: Any) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done / total, stage)

        return sample(model, x, schedule, opts.steps, cond=cond, prediction=prediction,
                      callback=callback, should_stop=should_stop, start_step=first_step)

    try:
        latent = sample_windows(run_window, known, mask, start, noise, plan)
    except Cancelled:
        raise
    except SamplingCancelled as err:
        raise Cancelled(str(err)) from None
    return latent, len(plan)
