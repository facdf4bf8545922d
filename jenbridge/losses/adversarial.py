"""Optional adversarial training for the audio autoencoder: a small multi-scale STFT
discriminator (EnCodec's MS-STFTD, arXiv 2210.13438 §3.4), hinge losses and feature matching.

JEN-1 trains its autoencoder with "a multi-resolution patch adversarial loss"; this is that,
sized small. Each scale sees the complex STFT (re and im of every audio channel as 2C input
planes, time x frequency) through 2D convs that stride over frequency and dilate over time, and
returns a map of patch logits plus its intermediate feature maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

DISC_RESOLUTIONS: tuple[tuple[int, int], ...] = ((2048, 512), (1024, 256), (512, 128))


class STFTDiscriminator(nn.Module):
    """One scale: waveform (B, C, N) -> (logits (B, 1, S, F'), [feature maps (B, f, S, F'')])."""

    window: torch.Tensor

    def __init__(
        self,
        channels: int,
        n_fft: int,
        hop: int,
        filters: int = 32,
        max_filters: int = 256,
        dilations: Sequence[int] = (1, 2, 4),
    ):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        convs = [weight_norm(nn.Conv2d(2 * channels, filters, (3, 9), padding=(1, 4)))]
        ch = filters
        for d in dilations:
            out = min(2 * ch, max_filters)
            # stride 2 over frequency, dilation over time: a wide time context at low cost
            convs.append(
                weight_norm(
                    nn.Conv2d(ch, out, (3, 9), stride=(1, 2), dilation=(d, 1), padding=(d, 4))
                )
            )
            ch = out
        convs.append(weight_norm(nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(ch, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, n = x.shape
        spec = torch.stft(
            x.reshape(b * c, n),
            self.n_fft,
            self.hop,
            window=self.window,
            normalized=True,
            return_complex=True,
        )  # (B*C, F, S)
        spec = torch.view_as_real(spec).reshape(b, c, *spec.shape[1:], 2)  # (B, C, F, S, 2)
        h = spec.permute(0, 1, 4, 3, 2).reshape(
            b, 2 * c, spec.shape[3], spec.shape[2]
        )  # (B, 2C, S, F)
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            feats.append(h)
        return self.post(h), feats


class MultiScaleSTFTDiscriminator(nn.Module):
    """`STFTDiscriminator`s at several (n_fft, hop); returns lists, one entry per scale."""

    def __init__(
        self,
        channels: int = 2,
        filters: int = 32,
        resolutions: Sequence[tuple[int, int]] = DISC_RESOLUTIONS,
    ):
        super().__init__()
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(channels, n_fft, hop, filters) for n_fft, hop in resolutions
        )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """Waveform (B, C, N) -> ([logits per scale], [[feature maps] per scale])."""
        logits, feats = [], []
        for disc in self.discriminators:
            lg, ft = disc(x)
            logits.append(lg)
            feats.append(ft)
        return logits, feats


def discriminator_hinge_loss(
    real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]
) -> torch.Tensor:
    """mean(relu(1 - D(real))) + mean(relu(1 + D(fake))), averaged over scales."""
    losses = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(losses).mean()


def generator_hinge_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """mean(relu(1 - D(fake))), averaged over scales (EnCodec's generator hinge)."""
    return torch.stack([F.relu(1 - f).mean() for f in fake_logits]).mean()


def feature_matching_loss(
    real_feats: list[list[torch.Tensor]], fake_feats: list[list[torch.Tensor]]
) -> torch.Tensor:
    """L1 between the discriminator's feature maps on fake and (detached) real audio, each layer
    divided by the mean magnitude of its real features (EnCodec's relative feature loss),
    averaged over layers and scales."""
    terms = [
        F.l1_loss(f, r.detach()) / r.detach().abs().mean().clamp(min=1e-8)
        for real_scale, fake_scale in zip(real_feats, fake_feats)
        for r, f in zip(real_scale, fake_scale)
    ]
    return torch.stack(terms).mean()
