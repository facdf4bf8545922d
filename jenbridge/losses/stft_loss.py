"""Spectral reconstruction losses for the audio autoencoder (training only, so `torch.stft`).

Multi-resolution STFT loss (Parallel WaveGAN, arXiv 1910.11480): at each (n_fft, hop), the
spectral convergence ||(|Y| - |X|)||_F / ||X||_F plus the L1 distance of log-magnitudes; the
resolutions are averaged. Defaults suit 48 kHz audio: 512/1024/2048-point windows (10.7, 21.3,
42.7 ms). An optional log-mel L1 loss (HTK mel scale) weighs frequencies perceptually.

Inputs are waveforms of any leading shape (..., N), e.g. (B, C, N); every leading index is
one signal. Both losses return a scalar tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """Waveform (..., N) -> magnitude (M, F, S), M = prod of the leading dims, F = n_fft/2 + 1."""
    spec = torch.stft(
        x.reshape(-1, x.shape[-1]), n_fft, hop, window=window, center=True, return_complex=True
    )
    power = spec.real.square() + spec.imag.square()  # (M, F, S)
    # sqrt of the power with a tiny floor: finite gradients at silent bins, and several times
    # cheaper than complex abs() on CPU
    return torch.sqrt(power + 1e-14)


def spectral_convergence(pred_mag: torch.Tensor, target_mag: torch.Tensor) -> torch.Tensor:
    """Mean over signals of ||(|Y| - |X|)||_F / ||X||_F, magnitudes (M, F, S).

    Per signal, then averaged (not one ratio over the whole batch): the loss is then a mean of
    per-example terms, so DDP's gradient averaging over ranks equals one big-batch step.
    """
    num = torch.linalg.vector_norm(pred_mag - target_mag, dim=(1, 2))
    den = torch.linalg.vector_norm(target_mag, dim=(1, 2)).clamp(min=1e-7)
    return (num / den).mean()


def log_magnitude_l1(
    pred_mag: torch.Tensor, target_mag: torch.Tensor, top_db: float | None = 80.0, eps: float = 1e-5
) -> torch.Tensor:
    """Mean |log max(|Y|, floor) - log max(|X|, floor)| over magnitudes (M, F, S).

    floor = `top_db` dB below each target signal's loudest bin (as librosa's power_to_db), and
    at least eps: content far below the music (a reverb tail's noise floor) does not dominate
    the loss, and the loss is independent of the input gain. top_db=None: floor = eps.
    """
    floor = torch.full_like(target_mag[:, :1, :1], eps)  # (M, 1, 1)
    if top_db is not None:
        peak = target_mag.detach().amax(dim=(1, 2), keepdim=True)
        floor = torch.maximum(floor, peak * 10.0 ** (-top_db / 20.0))
    return F.l1_loss(
        torch.log(torch.maximum(pred_mag, floor)), torch.log(torch.maximum(target_mag, floor))
    )


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions.

    resolutions: (n_fft, hop) pairs, Hann windows of n_fft samples.
    """

    def __init__(
        self,
        resolutions: Sequence[tuple[int, int]] = DEFAULT_RESOLUTIONS,
        sc_weight: float = 1.0,
        mag_weight: float = 1.0,
        top_db: float | None = 80.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        if not resolutions:
            raise ValueError("need at least one (n_fft, hop) resolution")
        for n_fft, hop in resolutions:
            if not 0 < hop <= n_fft:
                raise ValueError(f"resolution ({n_fft}, {hop}): need 0 < hop <= n_fft")
        self.resolutions = [tuple(r) for r in resolutions]
        self.sc_weight, self.mag_weight, self.top_db, self.eps = sc_weight, mag_weight, top_db, eps
        for i, (n_fft, _) in enumerate(self.resolutions):
            self.register_buffer(f"window{i}", torch.hann_window(n_fft), persistent=False)

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"sc": ..., "mag": ...}: each term averaged over the resolutions."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
            )
        sc = mag = pred.new_zeros(())
        for i, (n_fft, hop) in enumerate(self.resolutions):
            window = getattr(self, f"window{i}")
            p = stft_magnitude(pred, n_fft, hop, window)
            t = stft_magnitude(target, n_fft, hop, window)
            sc = sc + spectral_convergence(p, t)
            mag = mag + log_magnitude_l1(p, t, self.top_db, self.eps)
        n = len(self.resolutions)
        return {"sc": sc / n, "mag": mag / n}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Waveforms (..., N) -> scalar loss."""
        t = self.terms(pred, target)
        return self.sc_weight * t["sc"] + self.mag_weight * t["mag"]


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular HTK-mel filters (n_mels, n_fft/2 + 1), each peaking at 1."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got {f_min}, {f_max}")

    def hz_to_mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)  # (n_mels + 2,) band edges
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)  # (F,)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]  # (n_mels, 1) each
    up = (freqs - lo) / (mid - lo)
    down = (hi - freqs) / (hi - mid)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()  # (n_mels, F)


class MelSpectrogramLoss(nn.Module):
    """L1 distance of log-mel spectrograms (magnitude mel), floored top_db below the target peak."""

    window: torch.Tensor
    fbank: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 48000,
        n_fft: int = 2048,
        hop: int = 512,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        top_db: float | None = 80.0,
        eps: float = 1e-5,
    ):
        super().__init__()
        self.n_fft, self.hop, self.top_db, self.eps = n_fft, hop, top_db, eps
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer(
            "fbank", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max), persistent=False
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Waveforms (..., N) -> scalar loss."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
            )
        p = torch.matmul(
            self.fbank, stft_magnitude(pred, self.n_fft, self.hop, self.window)
        )  # (M, n_mels, S)
        t = torch.matmul(self.fbank, stft_magnitude(target, self.n_fft, self.hop, self.window))
        return log_magnitude_l1(p, t, self.top_db, self.eps)
