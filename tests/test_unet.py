"""The omnidirectional 1D U-Net: sizes, causality, conditions, batch independence, ONNX parity."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from jenbridge.conditions import NUM_KEY_CODES, NUM_METER_CODES
from jenbridge.config import load_config
from jenbridge.models.builders import build_unet
from jenbridge.models.unet import UNet1D

INPUT_NAMES = ["x", "t", "masked", "mask", "text", "text_mask", "bpm", "key", "meter", "causal"]
K, TEXT_DIM = 4, 384


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a shared, busy CPU an OpenMP
    team of 2 waits at every barrier for a descheduled thread: measured 100x slower here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def random_output_layer(model: UNet1D) -> UNet1D:
    """The output conv is zero-initialised (the untrained model predicts 0): give it random
    weights so every path through the network shows up in the output."""
    torch.nn.init.normal_(model.conv_out.weight, std=0.2)
    torch.nn.init.normal_(model.conv_out.bias, std=0.2)  # type: ignore[arg-type]
    return model.eval()


def deep_unet(kernel_size: int = 5) -> UNet1D:
    """3 levels (two down/up-samplings), attention at every level and in the middle."""
    torch.manual_seed(0)
    return random_output_layer(UNet1D(
        latent_channels=K, channels=16, channel_mults=[1, 2, 2], res_blocks=[1, 1, 1],
        attention=[True, True, True], mid_blocks=1, head_dim=8, kernel_size=kernel_size,
        emb_dim=32, text_dim=TEXT_DIM, dropout=0.0))


def tiny_unet() -> UNet1D:
    cfg = load_config("tiny")
    torch.manual_seed(0)
    return random_output_layer(build_unet(cfg.unet, cfg.autoencoder.latent_channels))


def make_inputs(batch: int, frames: int, tokens: int = 5, channels: int = K, causal: float = 0.0,
                seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return dict(
        x=torch.randn(batch, channels, frames, generator=g),
        t=torch.rand(batch, generator=g) * 1000,
        masked=torch.randn(batch, channels, frames, generator=g),
        mask=(torch.rand(batch, 1, frames, generator=g) > 0.5).float(),
        text=torch.randn(batch, tokens, TEXT_DIM, generator=g),
        text_mask=torch.ones(batch, tokens),
        bpm=torch.full((batch,), 120.0),
        key=torch.full((batch,), 10, dtype=torch.int64),
        meter=torch.full((batch,), 4, dtype=torch.int64),
        causal=torch.full((batch,), causal),
    )


def run(model: UNet1D, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs)


def perturb_after(inputs: dict[str, torch.Tensor], frame: int, seed: int = 1) -> dict:
    """Replace x, masked and mask at frames > frame with fresh random values."""
    g = torch.Generator().manual_seed(seed)
    out = dict(inputs)
    for name in ("x", "masked", "mask"):
        v = inputs[name].clone()
        v[..., frame + 1:] = torch.randn(v[..., frame + 1:].shape, generator=g) + 3.0
        out[name] = v
    return out


# ---- sizes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,low,high", [("tiny", 0, 1e6), ("small", 25e6, 45e6),
                                           ("paper", 700e6, 780e6)])
def test_shipped_configs_build(name: str, low: float, high: float) -> None:
    cfg = load_config(name)
    with torch.device("meta"):  # the paper size would take seconds and ~3 GB to initialise
        model = build_unet(cfg.unet, cfg.autoencoder.latent_channels)
    n = param_count(model)
    print(f"{name}: {n / 1e6:.1f}M U-Net parameters")
    assert low <= n <= high


def test_small_forward_shape() -> None:
    cfg = load_config("small")
    model = build_unet(cfg.unet, cfg.autoencoder.latent_channels).eval()
    inputs = make_inputs(2, 30, channels=cfg.autoencoder.latent_channels)
    out = run(model, inputs)
    assert out.shape == inputs["x"].shape
    assert torch.count_nonzero(out) == 0  # zero-initialised output conv


# ---- omnidirectional: causality --------------------------------------------------------------

@pytest.mark.parametrize("make", [deep_unet, tiny_unet], ids=["deep", "tiny"])
def test_unidirectional_mode_never_sees_the_future(make) -> None:
    model = make()
    channels = model.latent_channels
    frames = 37  # odd: exercises the right padding to a multiple of 4 (deep) or 2 (tiny)
    for causal, must_hold in ((1.0, True), (0.0, False)):
        base_in = make_inputs(2, frames, channels=channels, causal=causal)
        base = run(model, base_in)
        for t in (0, 5, 18, 29, 35):
            out = run(model, perturb_after(base_in, t))
            early = (out[..., :t + 1] - base[..., :t + 1]).abs().max().item()
            late = (out[..., t + 1:] - base[..., t + 1:]).abs().max().item()
            assert late > 1e-3, "the perturbation should change the perturbed frames"
            if must_hold:
                assert early < 1e-5, f"causal mode: frames <= {t} changed by {early}"
            else:
                assert early > 1e-3, f"bidirectional mode: frames <= {t} did not change"


def test_mixed_batch_modes() -> None:
    model = deep_unet(kernel_size=3)
    base_in = make_inputs(2, 37)
    base_in["causal"] = torch.tensor([1.0, 0.0])
    base = run(model, base_in)
    for t in (3, 16, 30):
        out = run(model, perturb_after(base_in, t))
        assert (out[0, :, :t + 1] - base[0, :, :t + 1]).abs().max() < 1e-5  # causal example
        assert (out[1, :, :t + 1] - base[1, :, :t + 1]).abs().max() > 1e-3  # bidirectional


# ---- conditions ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,value", [
    ("bpm", torch.tensor([90.0])), ("bpm", torch.tensor([0.0])),
    ("key", torch.tensor([13])), ("key", torch.tensor([0])),
    ("meter", torch.tensor([3])), ("meter", torch.tensor([0])),
    ("text_mask", torch.zeros(1, 5)), ("text", torch.randn(1, 5, TEXT_DIM)),
])
def test_each_condition_changes_the_output(name: str, value: torch.Tensor) -> None:
    model = deep_unet()
    inputs = make_inputs(1, 24)
    base = run(model, inputs)
    out = run(model, {**inputs, name: value})
    assert torch.isfinite(out).all()
    assert (out - base).abs().max() > 1e-4


def test_null_conditions_are_finite_and_ignore_text() -> None:
    model = deep_unet()
    inputs = make_inputs(2, 21, causal=1.0)
    null = dict(bpm=torch.zeros(2), key=torch.zeros(2, dtype=torch.int64),
                meter=torch.zeros(2, dtype=torch.int64), text_mask=torch.zeros(2, 5))
    out = run(model, {**inputs, **null})
    assert torch.isfinite(out).all()
    # all-zero text_mask: the null token alone is attended to, whatever the token states are
    other = run(model, {**inputs, **null, "text": torch.randn(2, 5, TEXT_DIM) * 10})
    torch.testing.assert_close(out, other)
    # padded tokens are ignored too
    padded = {**inputs, "text_mask": torch.tensor([[1.0, 1, 0, 0, 0]] * 2)}
    text = inputs["text"].clone()
    text[:, 2:] = 100.0
    torch.testing.assert_close(run(model, padded), run(model, {**padded, "text": text}))


def test_null_tempo_has_finite_gradients() -> None:
    model = deep_unet(kernel_size=3).train()
    inputs = make_inputs(2, 16)
    inputs["bpm"] = torch.tensor([0.0, 128.0])
    model(**inputs).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_highest_codes_are_accepted() -> None:
    model = deep_unet(kernel_size=3)
    inputs = make_inputs(1, 9)
    inputs["key"] = torch.tensor([NUM_KEY_CODES - 1])
    inputs["meter"] = torch.tensor([NUM_METER_CODES - 1])
    assert torch.isfinite(run(model, inputs)).all()


# ---- batch independence and input checks -------------------------------------------------------

def test_examples_in_a_batch_are_independent() -> None:
    model = deep_unet(kernel_size=3)
    inputs = make_inputs(3, 26)
    inputs["causal"] = torch.tensor([1.0, 0.0, 1.0])
    inputs["text_mask"][1, 3:] = 0
    out = run(model, inputs)
    for i in range(3):
        alone = run(model, {k: v[i:i + 1] for k, v in inputs.items()})
        torch.testing.assert_close(out[i:i + 1], alone, atol=1e-5, rtol=1e-5)
    others = make_inputs(3, 26, seed=7)
    mixed = {k: torch.cat([inputs[k][:1], others[k][1:]]) for k in inputs}
    torch.testing.assert_close(run(model, mixed)[0], out[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,value", [
    ("x", torch.randn(2, K + 1, 20)), ("masked", torch.randn(2, K, 19)),
    ("mask", torch.ones(2, 2, 20)), ("text", torch.randn(2, 5, 7)),
    ("text_mask", torch.ones(2, 4)), ("bpm", torch.zeros(3)), ("causal", torch.zeros(2, 1)),
])
def test_bad_shapes_raise(name: str, value: torch.Tensor) -> None:
    model = deep_unet(kernel_size=3)
    with pytest.raises(ValueError, match=name):
        run(model, {**make_inputs(2, 20), name: value})


# ---- ONNX ------------------------------------------------------------------------------------

DYNAMIC_AXES = dict(x={0: "batch", 2: "frames"}, t={0: "batch"}, masked={0: "batch", 2: "frames"},
                    mask={0: "batch", 2: "frames"}, text={0: "batch", 1: "tokens"},
                    text_mask={0: "batch", 1: "tokens"}, bpm={0: "batch"}, key={0: "batch"},
                    meter={0: "batch"}, causal={0: "batch"})


def export_onnx(model: UNet1D, inputs: dict[str, torch.Tensor], path: str) -> str:
    """Export with dynamic batch, frames and tokens; returns which exporter worked."""
    dims = {n: torch.export.Dim(n) for n in ("batch", "frames", "tokens")}
    shapes = {n: {a: dims[d] for a, d in ax.items()} for n, ax in DYNAMIC_AXES.items()}
    args = tuple(inputs[n] for n in INPUT_NAMES)
    try:
        torch.onnx.export(model, args, path, input_names=INPUT_NAMES, output_names=["prediction"],
                          dynamic_shapes=shapes, dynamo=True, verbose=False)
        return "dynamo"
    except Exception:  # any failure of the default exporter: try the TorchScript one
        torch.onnx.export(model, args, path, input_names=INPUT_NAMES, output_names=["prediction"],
                          dynamic_axes=DYNAMIC_AXES, dynamo=False)
        return "torchscript"


def test_onnx_export_matches_torch(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = tiny_unet()
    channels = model.latent_channels
    path = str(tmp_path / "unet.onnx")
    start = time.perf_counter()
    exporter = export_onnx(model, make_inputs(2, 24, channels=channels), path)
    print(f"exported with the {exporter} exporter in {time.perf_counter() - start:.1f} s")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for batch, frames, tokens in ((1, 45, 3), (3, 37, 9), (2, 3, 1)):
        inputs = make_inputs(batch, frames, tokens, channels=channels, seed=batch + frames)
        inputs["causal"] = (torch.arange(batch) % 2).float()
        inputs["text_mask"][0] = 0  # one null-text example
        inputs["bpm"][-1] = 0.0
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        want = run(model, inputs).numpy()
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4
