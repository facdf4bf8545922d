"""DDPM schedule values, sampler correctness (oracle), numpy/torch parity, guidance, golden runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from jenbridge.config import DiffusionConfig
from jenbridge.diffusion.samplers import (
    SAMPLERS,
    SamplingCancelled,
    guided,
    numpy_noise,
    sample_ddim,
)
from jenbridge.diffusion.schedule import (
    PREDICTIONS,
    DDPMSchedule,
    add_noise,
    prediction_target,
    sampler_timesteps,
    split_prediction,
    start_step_for_strength,
)

SCHEDULE = DDPMSchedule()


# ---------------------------------------------------------------------------------- schedule


def test_schedule_values():
    s = SCHEDULE
    assert s.betas.shape == s.alphas_cumprod.shape == (1000,)
    assert s.betas[0] == pytest.approx(0.0015, abs=1e-15)
    assert s.betas[-1] == pytest.approx(0.0195, abs=1e-15)
    assert np.all(np.diff(s.betas) > 0)
    assert np.all(np.diff(s.alphas_cumprod) < 0)
    assert s.alphas_cumprod[0] == pytest.approx(0.9985)
    assert s.alphas_cumprod[-1] == pytest.approx(2.5692e-5, rel=1e-4)
    assert s.alpha_bar(-1) == 1.0 and s.log_snr(-1) == np.inf
    assert s.log_snr(0) > s.log_snr(500) > s.log_snr(999)
    assert DDPMSchedule.from_config(DiffusionConfig()) == s


def test_schedule_is_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SCHEDULE.timesteps = 10  # type: ignore[misc]
    with pytest.raises(ValueError):
        SCHEDULE.alphas_cumprod[0] = 0.5
    for bad in ({"timesteps": 1}, {"beta_start": 0.0}, {"beta_start": 0.1, "beta_end": 0.01}):
        with pytest.raises(ValueError):
            DDPMSchedule(**bad)
    with pytest.raises(ValueError, match="out of range"):
        SCHEDULE.alpha_bar(1000)


def test_sampler_timesteps():
    assert sampler_timesteps(SCHEDULE, 10).tolist() == list(range(999, 0, -100))
    assert sampler_timesteps(SCHEDULE, 10, "linspace").tolist() == list(range(999, -1, -111))
    assert sampler_timesteps(SCHEDULE, 1).tolist() == [999]
    for steps in (3, 7, 25, 200, 999, 1000):
        for spacing in ("trailing", "linspace"):
            ts = sampler_timesteps(SCHEDULE, steps, spacing)
            assert ts.dtype == np.int64 and len(ts) == steps and ts[0] == 999
            assert np.all(np.diff(ts) < 0) and ts[-1] >= 0
    for steps in (0, 1001):
        with pytest.raises(ValueError, match="steps"):
            sampler_timesteps(SCHEDULE, steps)
    with pytest.raises(ValueError, match="spacing"):
        sampler_timesteps(SCHEDULE, 10, "leading")


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_prediction_roundtrip_numpy_and_torch(prediction):
    rng = np.random.default_rng(0)
    x0, eps = rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5))
    for ab in (0.9985, 0.3, 2.6e-5):
        x = add_noise(x0, eps, ab)
        x0_hat, eps_hat = split_prediction(prediction_target(x0, eps, ab, prediction), x, ab,
                                           prediction)
        np.testing.assert_allclose(x0_hat, x0, atol=1e-6)
        np.testing.assert_allclose(eps_hat, eps, atol=1e-9)
    # torch with a per-row alpha_bar (B, 1, 1)
    ab_t = torch.tensor([0.9, 0.1], dtype=torch.float64)[:, None, None]
    x0_t, eps_t = torch.from_numpy(x0), torch.from_numpy(eps)
    x_t = add_noise(x0_t, eps_t, ab_t)
    got = split_prediction(prediction_target(x0_t, eps_t, ab_t, prediction), x_t, ab_t, prediction)
    torch.testing.assert_close(got[0], x0_t)
    torch.testing.assert_close(got[1], eps_t)
    with pytest.raises(ValueError, match="prediction"):
        prediction_target(x0, eps, 0.5, "x0")


def test_start_step_for_strength():
    assert start_step_for_strength(20, 1.0) == 0
    assert start_step_for_strength(20, 0.0) == 20
    assert start_step_for_strength(20, 0.5) == 10
    assert start_step_for_strength(25, 0.3) == 17
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="strength"):
            start_step_for_strength(20, bad)


# ---------------------------------------------------------------------------------- samplers


def oracle(x0, prediction, schedule=SCHEDULE):
    """A model that knows x0: returns the exact eps or v for the noisy input it is given."""

    def model(x, t, cond):
        ab = schedule.alpha_bar(int(t))
        eps = (x - ab**0.5 * x0) / (1.0 - ab) ** 0.5
        return prediction_target(x0, eps, ab, prediction)

    return model


def analytic(prediction, schedule=SCHEDULE):
    """A non-oracle denoiser: the posterior mean for N(0.5, 0.5^2) data, bent by -0.1 x0^3."""

    def model(x, t, cond):
        ab = schedule.alpha_bar(int(t))
        a, s = ab**0.5, (1.0 - ab) ** 0.5
        x0 = 0.5 + 0.25 * a * (x - 0.5 * a) / (0.25 * ab + 1.0 - ab)
        x0 = x0 - 0.1 * x0 * x0 * x0
        return prediction_target(x0, (x - a * x0) / s, ab, prediction)

    return model


class Counting:
    """Wraps a model and records how many times and with which batch size it is called."""

    def __init__(self, model):
        self.model, self.batches = model, []

    def __call__(self, x, t, cond):
        self.batches.append(x.shape[0])
        return self.model(x, t, cond)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("steps", [10, 25])
def test_oracle_recovers_x0_from_noise(name, prediction, steps):
    rng = np.random.default_rng(steps)
    x0 = rng.standard_normal((2, 4, 16))
    model = Counting(oracle(x0, prediction))
    out = SAMPLERS[name](model, rng.standard_normal(x0.shape), SCHEDULE, steps,
                         prediction=prediction)
    np.testing.assert_allclose(out, x0, atol=1e-9)
    assert len(model.batches) == steps
    # float32 torch tensors through the very same code
    x0_t = torch.from_numpy(x0).float()
    out_t = SAMPLERS[name](oracle(x0_t, prediction), torch.randn(2, 4, 16), SCHEDULE, steps,
                           prediction=prediction)
    assert out_t.dtype == torch.float32
    torch.testing.assert_close(out_t, x0_t, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_start_step_partial_noise(name):
    rng = np.random.default_rng(3)
    x0, steps = rng.standard_normal((1, 3, 8)), 20
    start = start_step_for_strength(steps, 0.4)
    t0 = sampler_timesteps(SCHEDULE, steps)[start]
    x = add_noise(x0, rng.standard_normal(x0.shape), SCHEDULE.alpha_bar(t0))
    model = Counting(oracle(x0, "eps"))
    out = SAMPLERS[name](model, x, SCHEDULE, steps, start_step=start)
    np.testing.assert_allclose(out, x0, atol=1e-9)
    assert len(model.batches) == steps - start == 8
    same = SAMPLERS[name](model, x, SCHEDULE, steps, start_step=steps)
    assert same is x
    with pytest.raises(ValueError, match="start_step"):
        SAMPLERS[name](model, x, SCHEDULE, steps, start_step=steps + 1)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_numpy_and_torch_agree(name, prediction):
    x = np.random.default_rng(5).standard_normal((2, 3, 7))
    out_np = SAMPLERS[name](analytic(prediction), x, SCHEDULE, 12, prediction=prediction)
    out_t = SAMPLERS[name](analytic(prediction), torch.from_numpy(x), SCHEDULE, 12,
                           prediction=prediction)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), out_np, rtol=0, atol=1e-12)
    out32 = SAMPLERS[name](analytic(prediction), x.astype(np.float32), SCHEDULE, 12,
                           prediction=prediction)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out_np, atol=1e-5)


def test_callback_and_cancellation():
    x0 = np.zeros((1, 2, 4))
    seen = []
    sample_ddim(oracle(x0, "eps"), np.ones((1, 2, 4)), SCHEDULE, 6,
                callback=lambda i, n, est: seen.append((i, n, float(np.abs(est).max()))))
    assert [(i, n) for i, n, _ in seen] == [(i, 6) for i in range(6)]
    assert max(v for _, _, v in seen) < 1e-12  # the oracle's x0 estimate is exact at every step
    for name, sampler in SAMPLERS.items():
        polls = []
        model = Counting(oracle(x0, "eps"))

        def stop_after_three(polls=polls):
            polls.append(1)
            return len(polls) > 3

        with pytest.raises(SamplingCancelled):
            sampler(model, np.ones((1, 2, 4)), SCHEDULE, 10, should_stop=stop_after_three)
        assert len(model.batches) == 3, name


def test_ddim_eta_needs_noise():
    x = np.ones((1, 1, 4))
    with pytest.raises(ValueError, match="noise_fn"):
        sample_ddim(analytic("eps"), x, SCHEDULE, 5, eta=1.0)
    with pytest.raises(ValueError, match="eta"):
        sample_ddim(analytic("eps"), x, SCHEDULE, 5, eta=-1.0)
    with pytest.raises(ValueError, match="prediction"):
        sample_ddim(analytic("eps"), x, SCHEDULE, 5, prediction="x0")


# ---------------------------------------------------------------------------------- guidance


def conditioned(x, t, cond):
    """A toy eps model whose output depends on every cond key (batched like x)."""
    return 0.5 * x + cond["text"][:, :, None] * (t / 1000.0) + cond["mask"]


def make_cond(backend):
    text = np.array([[1.0], [-2.0]])
    mask = np.linspace(0, 1, 2 * 1 * 4).reshape(2, 1, 4)
    cond = {"text": text, "mask": mask, "null": {"text": np.zeros_like(text)}}
    if backend == "torch":
        cond = {"text": torch.from_numpy(text), "mask": torch.from_numpy(mask),
                "null": {"text": torch.zeros(2, 1, dtype=torch.float64)}}
    return cond


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_guidance_one_batched_call(backend):
    cond = make_cond(backend)
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    if backend == "torch":
        x = torch.from_numpy(x)
    plain = {k: v for k, v in cond.items() if k != "null"}
    null = {**plain, "text": cond["null"]["text"]}
    # scale 1 is exactly the conditional model
    np.testing.assert_array_equal(np.asarray(guided(conditioned, 1.0)(x, 500.0, cond)),
                                  np.asarray(conditioned(x, 500.0, plain)))
    np.testing.assert_array_equal(np.asarray(guided(conditioned, 0.0)(x, 500.0, cond)),
                                  np.asarray(conditioned(x, 500.0, null)))
    # scale 2: uncond + 2 * (cond - uncond), from one call with 2B rows
    counting = Counting(conditioned)
    got = guided(counting, 2.0)(x, 500.0, cond)
    c, u = conditioned(x, 500.0, plain), conditioned(x, 500.0, null)
    np.testing.assert_allclose(np.asarray(got), np.asarray(u + 2.0 * (c - u)), atol=1e-12)
    assert counting.batches == [4]
    # through a sampler: exactly one model call per step, for any scale
    for scale in (1.0, 2.0):
        for name, sampler in SAMPLERS.items():
            counting = Counting(conditioned)
            sampler(guided(counting, scale), x, SCHEDULE, 7, cond=cond)
            assert counting.batches == [2 if scale == 1.0 else 4] * 7, (name, scale)


def test_guidance_errors():
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="null"):
        guided(conditioned, 2.0)(x, 1.0, {"text": np.zeros((2, 1))})
    with pytest.raises(ValueError, match="counterpart"):
        guided(conditioned, 2.0)(x, 1.0, {"mask": x, "null": {"text": np.zeros((2, 1))}})
    with pytest.raises(TypeError, match="numpy arrays or torch tensors"):
        guided(conditioned, 2.0)(x, 1.0, {"text": [1.0, 2.0], "null": {}})


# ---------------------------------------------------------------------------------- golden runs

X_GOLDEN = np.random.default_rng(1234).standard_normal((1, 2, 4))  # float64
GOLDEN = {
    "ddim": [-0.0213886657, 0.4993738884, 0.6882403263, 0.5251156588,
             0.7203475311, 1.1226703658, 0.0188997765, 0.7412927288],
    "dpmpp_2m": [-0.0471979613, 0.4999766749, 0.6968145750, 0.5269001029,
                 0.7300780115, 1.1357901172, -0.0048532911, 0.7517376575],
}
GOLDEN_DDIM_ETA1 = [0.2326219259, 0.6857128183, 0.7978669512, 0.4218092815,
                    0.3207823570, 0.2361303053, 0.5834079610, -0.0358020809]


@pytest.mark.parametrize("name", sorted(SAMPLERS))
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_golden_numbers(name, prediction):
    """10 trailing steps of the analytic denoiser from a fixed seed; eps and v are the same
    denoiser in two parametrizations, so both must land on the same numbers."""
    out = SAMPLERS[name](analytic(prediction), X_GOLDEN, SCHEDULE, 10, prediction=prediction)
    np.testing.assert_allclose(out.ravel(), GOLDEN[name], rtol=0, atol=1e-8)


def test_golden_ddim_stochastic():
    out = sample_ddim(analytic("eps"), X_GOLDEN, SCHEDULE, 10, eta=1.0,
                      noise_fn=numpy_noise(np.random.default_rng(7)))
    np.testing.assert_allclose(out.ravel(), GOLDEN_DDIM_ETA1, rtol=0, atol=1e-8)


def test_serving_modules_do_not_import_torch():
    """The ONNX engine uses schedule, samplers and masks without torch installed."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, jenbridge.diffusion.samplers, jenbridge.diffusion.masks; "
            "sys.exit('torch' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, timeout=60).returncode == 0
