"""The torch models a bundle is exported from: trained weights files, or random weights.

`load_trained` reads an autoencoder weights file (with latent statistics, from `jenbridge train
stats`) and a diffusion weights file, and refuses a pair that does not belong together;
`build_random` builds a config's models with random weights for tests and benchmarks. Both load
the config's text encoder (MiniLM by default) and check its width against the U-Net's text_dim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from jenbridge.config import ModelConfig, autoencoder_architecture
from jenbridge.models.autoencoder import Autoencoder
from jenbridge.models.latent_norm import LatentStats
from jenbridge.models.text import TextEncoder, load_text_encoder
from jenbridge.models.unet import UNet1D

# Random-weight models: latent statistics come from this much noise-and-tone audio (seconds),
# enough frames for a stable covariance at 64 latent channels.
RANDOM_STATS_SECONDS = 24.0


@dataclass
class ExportModels:
    """Everything a bundle is exported from; all modules in eval mode on the CPU."""

    config: ModelConfig
    autoencoder: Autoencoder  # with latent statistics set (kept_channels = K)
    unet: UNet1D  # over K latent channels
    text_encoder: TextEncoder
    training: dict[str, Any] = field(default_factory=dict)  # the manifest's `training` entry

    @property
    def latent_channels(self) -> int:
        """K, normalized latent channels: what the U-Net sees and the encoder emits."""
        return self.autoencoder.kept_channels


def has_latent_stats(autoencoder: Autoencoder) -> bool:
    """False while the latent normalizer is still the identity (no `set_stats` yet)."""
    norm = autoencoder.norm
    identity = norm.whiten.shape[0] == norm.channels and torch.equal(
        norm.whiten, torch.eye(norm.channels))
    return not (identity and not norm.mean.any())


def _read(path: Path, role: str, kind: str) -> tuple[Any, Any]:
    """(model, WeightsFile) from a weights file or run folder; ValueError on anything else."""
    from jenbridge.training.checkpoint import build_from_weights, latest_checkpoint, read_weights

    if not path.exists():
        raise ValueError(f"--{role}: {path} does not exist")
    if path.is_dir():  # a run folder (its latest EMA weights) or a checkpoint folder
        ckpt = latest_checkpoint(path) if (path / "checkpoints").is_dir() else path
        if ckpt is None:
            raise ValueError(f"--{role}: run folder {path} has no checkpoint yet")
        path = ckpt / "ema.safetensors"
    try:
        w = read_weights(path)
    except ValueError as err:
        raise ValueError(f"--{role}: {err}") from None
    except Exception as err:  # safetensors raises its own error type on a non-safetensors file
        raise ValueError(f"--{role}: {path} is not a jenbridge weights file "
                         f"(safetensors with config metadata): {err}") from None
    if w.kind != kind:
        raise ValueError(f"--{role}: {path} holds {w.kind} weights, expected {kind} weights")
    try:
        model = build_from_weights(w)
    except RuntimeError as err:  # load_state_dict: missing, unexpected or mis-shaped tensors
        raise ValueError(f"--{role}: the weights in {path} do not fit the config stored with "
                         f"them: {err}") from None
    return model, w


def _differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            keys += _differing_keys(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            keys.append(f"{prefix}{k}")
    return keys


def _text_encoder(config: ModelConfig) -> TextEncoder:
    text = load_text_encoder(config.text.encoder, config.text.max_tokens)
    if text.dim != config.unet.text_dim:
        raise ValueError(f"text encoder {config.text.encoder!r} gives {text.dim}-wide token "
                         f"states but the U-Net takes unet.text_dim = {config.unet.text_dim}")
    return text


def load_trained(autoencoder: str | Path, diffusion: str | Path) -> ExportModels:
    """The models of an autoencoder weights file (with latent statistics) and a diffusion weights
    file trained on its latents. A run folder stands for its latest EMA weights.

    Raises ValueError naming the file when a path is not a weights file of the right kind, the
    autoencoder has no latent statistics, the two files' autoencoder configs or latent widths
    differ, or the text encoder's width is not the U-Net's text_dim.
    """
    ae_path, unet_path = Path(autoencoder), Path(diffusion)
    ae, ae_w = _read(ae_path, "autoencoder", "autoencoder")
    unet, unet_w = _read(unet_path, "diffusion", "diffusion")
    if not has_latent_stats(ae):
        raise ValueError(f"--autoencoder: {ae_path} has no latent statistics; run `jenbridge "
                         "train stats` and export the autoencoder.safetensors it writes")
    config: ModelConfig = unet_w.config
    differ = _differing_keys(autoencoder_architecture(ae_w.config.autoencoder),
                             autoencoder_architecture(config.autoencoder))
    if differ:
        raise ValueError(f"{unet_path} was trained for another autoencoder config than "
                         f"{ae_path} (autoencoder.{', autoencoder.'.join(differ)} differ)")
    if unet.latent_channels != ae.kept_channels:
        raise ValueError(f"{unet_path} takes {unet.latent_channels} latent channels but "
                         f"{ae_path} keeps {ae.kept_channels} after normalization (were the "
                         "latent statistics gathered again after the diffusion model trained?)")
    training = {
        "autoencoder_steps": ae_w.step,
        "diffusion_steps": unet_w.step,
        "latent_stats_seconds": ae_w.extras.get("stats_seconds"),
        "latent_variance_covered": round(float(ae.norm.variance_covered), 4),
        "autoencoder_weights": ae_path.name,
        "diffusion_weights": unet_path.name,
    }
    return ExportModels(config, ae, unet, _text_encoder(config), training)


def _random_audio(n: int, channels: int, sample_rate: int, gen: torch.Generator) -> torch.Tensor:
    """(1, channels, n) float32 in [-1, 1]: a few random tones over coloured noise."""
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    audio = torch.zeros(channels, n, dtype=torch.float64)
    for c in range(channels):
        freqs = 55.0 * 2.0 ** (6.0 * torch.rand(6, generator=gen, dtype=torch.float64))
        amps = 0.1 * torch.rand(6, generator=gen, dtype=torch.float64)
        audio[c] = (amps[:, None] * torch.sin(2 * torch.pi * freqs[:, None] * t)).sum(0)
    noise = torch.randn(channels, n, generator=gen, dtype=torch.float64)
    noise = torch.cumsum(noise, dim=1) * 0.002  # brownish: more low than high frequencies
    noise = noise - noise.mean(dim=1, keepdim=True)
    return (audio + noise).clamp(-1.0, 1.0).float()[None]


@torch.no_grad()
def _set_random_stats(ae: Autoencoder, variance_kept: float, gen: torch.Generator) -> int:
    """Latent statistics of the random encoder over random audio; returns K."""
    hop = ae.latent_hop
    frames = max(8, int(RANDOM_STATS_SECONDS * ae.sample_rate / hop) // 4)
    stats = LatentStats(ae.latent_channels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-identical stats whatever the caller's thread count
    try:
        for _ in range(4):
            stats.update(ae.encode(_random_audio(frames * hop, ae.channels, ae.sample_rate, gen)))
    finally:
        torch.set_num_threads(threads)
    return ae.norm.set_stats(stats.mean, stats.cov, variance_kept)


def build_random(config: ModelConfig, seed: int = 0) -> ExportModels:
    """The config's models with random weights (deterministic in `seed`).

    The autoencoder's latent statistics are gathered from random audio through the random
    encoder, so K (kept channels) is what such an encoder gives; the U-Net's zero-initialized
    output conv gets random weights too, so its prediction is not identically zero.
    """
    from jenbridge.models.builders import build_autoencoder, build_unet

    with torch.random.fork_rng():  # the caller's global RNG state is left as it was
        torch.manual_seed(seed)
        ae = build_autoencoder(config.autoencoder).eval()
        gen = torch.Generator().manual_seed(seed)
        _set_random_stats(ae, config.autoencoder.variance_kept, gen)
        unet = build_unet(config.unet, ae.kept_channels).eval()
        unet.conv_out.reset_parameters()
    training = {"random_weights": True, "seed": seed,
                "latent_variance_covered": round(float(ae.norm.variance_covered), 4)}
    return ExportModels(config, ae, unet, _text_encoder(config), training)
