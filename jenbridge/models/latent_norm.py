"""JEN-1 latent normalization: whiten the autoencoder's latent with data statistics.

The autoencoder's raw latent z (B, C, T) has channels of very different scale and strong
correlation. JEN-1 gathers the per-channel mean and covariance over the data and whitens with
an SVD of the covariance, keeping only the leading components that carry a given share of the
variance (~90%). Diffusion then works on y (B, K, T) with ~zero mean and ~identity covariance,
K <= C; the decoder gets back z's projection onto those K components.

`LatentStats` accumulates the statistics in float64 over any number of batches;
`LatentNormalizer` holds the resulting affine maps as buffers, so they travel in the
autoencoder's state dict and inside its exported ONNX graphs. Before `set_stats` it is the
identity (K = C).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LatentStats:
    """Running count, sum and sum of outer products of latent frames, in float64."""

    def __init__(self, channels: int):
        self.channels = channels
        self.count = 0
        self.sum = torch.zeros(channels, dtype=torch.float64)
        self.outer = torch.zeros(channels, channels, dtype=torch.float64)

    @torch.no_grad()
    def update(self, z: torch.Tensor) -> None:
        """Add every frame of z (B, C, T) to the statistics."""
        if z.ndim != 3 or z.shape[1] != self.channels:
            raise ValueError(
                f"expected a latent of shape (B, {self.channels}, T), got {tuple(z.shape)}"
            )
        frames = (
            z.detach().to("cpu", torch.float64).transpose(1, 2).reshape(-1, self.channels)
        )  # (B*T, C)
        self.count += frames.shape[0]
        self.sum += frames.sum(0)
        self.outer += frames.T @ frames

    def merge(self, other: LatentStats) -> None:
        """Fold another accumulator in (e.g. one per data-parallel worker)."""
        if other.channels != self.channels:
            raise ValueError(
                f"cannot merge stats of {other.channels} channels into {self.channels}"
            )
        self.count += other.count
        self.sum += other.sum
        self.outer += other.outer

    @property
    def mean(self) -> torch.Tensor:
        """(C,) float64 per-channel mean over all frames seen."""
        if self.count == 0:
            raise ValueError("no latent frames seen yet")
        return self.sum / self.count

    @property
    def cov(self) -> torch.Tensor:
        """(C, C) float64 covariance over all frames seen (population, divided by the count)."""
        mean = self.mean
        return self.outer / self.count - torch.outer(mean, mean)


class LatentNormalizer(nn.Module):
    """Affine whitening z (B, C, T) <-> y (B, K, T) from a mean and a truncated SVD.

    Buffers: `mean` (C), `whiten` (K, C) = diag(1/sqrt(s_k)) U_k^T, `unwhiten` (C, K) =
    U_k diag(sqrt(s_k)), `variance_covered` (scalar, the share of the total variance the K kept
    components carry). K is chosen by `set_stats` from the data, so loading a state dict
    resizes the buffers to the K it holds.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("whiten", torch.eye(channels))
        self.register_buffer("unwhiten", torch.eye(channels))
        self.register_buffer("variance_covered", torch.tensor(1.0))

    @property
    def kept_channels(self) -> int:
        """K, the number of normalized latent channels."""
        return self.whiten.shape[0]

    @torch.no_grad()
    def set_stats(self, mean: torch.Tensor, cov: torch.Tensor, variance_kept: float) -> int:
        """Fit the whitening to a mean (C,) and covariance (C, C); returns K.

        K is the fewest leading principal components whose variances sum to at least
        `variance_kept` (in (0, 1]) of the total.
        """
        c = self.channels
        if mean.shape != (c,) or cov.shape != (c, c):
            raise ValueError(
                f"expected mean ({c},) and cov ({c}, {c}), "
                f"got {tuple(mean.shape)} and {tuple(cov.shape)}"
            )
        if not 0.0 < variance_kept <= 1.0:
            raise ValueError(f"variance_kept must be in (0, 1], got {variance_kept}")
        cov = cov.to(torch.float64)
        cov = (cov + cov.T) / 2  # symmetric up to rounding, so eigh is exact SVD here
        s, u = torch.linalg.eigh(cov)  # ascending
        s, u = s.flip(0).clamp(min=0.0), u.flip(1)  # (C,), (C, C) descending
        total = s.sum()
        if total <= 0:
            raise ValueError("the covariance has no variance (are all latents equal?)")
        share = torch.cumsum(s, 0) / total  # (C,)
        # fewest components reaching the share; the tolerance keeps variance_kept=1 from
        # failing on rounding in the last digit
        k = int((share < variance_kept - 1e-9).sum()) + 1
        k = min(k, c)
        # a kept component with (numerically) zero variance would blow up; floor it
        s_k = s[:k].clamp(min=float(s[0]) * 1e-10)
        u_k = u[:, :k]  # (C, K)
        self.mean = mean.to(torch.float32).clone()
        self.whiten = (u_k / s_k.sqrt()).T.contiguous().float()  # (K, C)
        self.unwhiten = (u_k * s_k.sqrt()).contiguous().float()  # (C, K)
        self.variance_covered = share[k - 1].float().clone()
        return k

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent z (B, C, T) -> normalized y (B, K, T)."""
        return torch.matmul(self.whiten, z - self.mean[:, None])  # (K, C) @ (B, C, T)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        """Normalized y (B, K, T) -> raw latent z (B, C, T), projected onto the K components."""
        return torch.matmul(self.unwhiten, y) + self.mean[:, None]  # (C, K) @ (B, K, T)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.normalize(z)

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # K is data-dependent: take the stored shapes before the default copy checks them
        # (only K may differ; a wrong C is left for the default copy to report)
        for name, c_dim in (("whiten", 1), ("unwhiten", 0)):
            stored = state_dict.get(prefix + name)
            if stored is None or stored.ndim != 2 or stored.shape[c_dim] != self.channels:
                continue
            if stored.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(stored, device=self.mean.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
