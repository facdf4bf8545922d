"""Builders: config objects in, model objects out.

Model classes take plain keyword arguments equal to their config's fields and never see the
config object (so a checkpoint's saved config rebuilds the model with nothing else).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jenbridge.config import AutoencoderConfig, UNetConfig

if TYPE_CHECKING:
    from jenbridge.models.autoencoder import Autoencoder
    from jenbridge.models.unet import UNet1D


def build_autoencoder(cfg: AutoencoderConfig) -> Autoencoder:
    from jenbridge.models.autoencoder import Autoencoder

    return Autoencoder(**cfg.model_dump())


def build_unet(cfg: UNetConfig, latent_channels: int) -> UNet1D:
    """The U-Net for `latent_channels` normalized latent channels (kept after whitening)."""
    from jenbridge.models.unet import UNet1D

    return UNet1D(latent_channels=latent_channels, **cfg.model_dump())
