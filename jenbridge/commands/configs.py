"""`jenbridge configs`: validate model configs and show latent rates and parameter counts."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="shipped config names or YAML paths (default: all)")
    p.add_argument("--params", action="store_true",
                   help="also count parameters (builds each model on the meta device; needs torch)")


def describe(name: str, params: bool) -> list[str]:
    from jenbridge.config import load_config

    cfg = load_config(name)
    ae = cfg.autoencoder
    ratio = ae.sample_rate * ae.channels / (ae.latent_rate * ae.latent_channels)
    lines = [f"{cfg.name}: latent {ae.latent_channels} ch at {ae.latent_rate:.4g} Hz "
             f"(hop {ae.latent_hop} samples, {ratio:.0f}x fewer numbers than "
             f"{ae.sample_rate} Hz x{ae.channels} audio)"]
    if params:
        import torch

        from jenbridge.models.builders import build_autoencoder, build_unet

        with torch.device("meta"):
            a = sum(p.numel() for p in build_autoencoder(ae).parameters())
            u = sum(p.numel() for p in build_unet(cfg.unet, ae.latent_channels).parameters())
        lines.append(f"  autoencoder {a / 1e6:.2f} M params, U-Net {u / 1e6:.2f} M params "
                     f"(U-Net counted at {ae.latent_channels} latent channels)")
    return lines


def run(args: argparse.Namespace) -> int:
    from jenbridge.config import shipped_configs

    for name in args.names or shipped_configs():
        print("\n".join(describe(name, args.params)))
    return 0
