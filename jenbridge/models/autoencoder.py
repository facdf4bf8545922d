"""JEN-1 audio autoencoder, STFT-domain design (Vocos-style iSTFT head).

Raw 48 kHz stereo waveform in, a *continuous* latent out (no quantizer), waveform back.
JEN-1 uses a SoundStream-like waveform conv stack; at 48 kHz that costs ~100x more per second
of audio than working on STFT frames (benchmarks/autoencoder_cost.py measures it), so the
network here sees STFT frames and predicts an STFT (after Vocos, arXiv 2306.00814):

    audio (B, C, N) --STFT per channel--> (B, C*3F, N/hop) log-magnitude + compressed re/im
      --1x1--> width --ConvNeXt x encoder_blocks--> --strided conv per downsample factor-->
      --1x1--> z (B, latent_channels, N/latent_hop)
    z --1x1--> width --transposed conv per factor--> --ConvNeXt x decoder_blocks-->
      --1x1 head--> per channel log-magnitude and a phase direction (cos, sin) (3F)
      --iSTFT--> audio (B, C, N)

latent_hop = hop * prod(downsample) samples per latent frame (small: 2048, 23.4375 Hz).
The STFT and iSTFT are fixed-weight convolutions (models/stft.py), so the whole encode and
decode graphs export to ONNX. JEN-1's two specifics live here too: noise-robust masking of
latent frames during training (`mask_latent`), and latent normalization (`self.norm`,
`encode_normalized` / `decode_normalized`, which are what diffusion and the ONNX bundle use).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jenbridge.models.latent_norm import LatentNormalizer
from jenbridge.models.stft import ISTFT, STFT


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each frame of a (B, D, T) tensor."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)  # (B, D, T)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt-1D block (Vocos): depthwise conv k=7, per-frame LayerNorm, MLP x3, layer scale."""

    def __init__(self, dim: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 3 * dim)
        self.pw2 = nn.Linear(3 * dim, dim)
        # small layer scale: each block starts close to the identity, so deep stacks train
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, T, D)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))  # (B, T, D)
        return x + (self.gamma * h).transpose(1, 2)  # (B, D, T)


class Downsample(nn.Module):
    """Per-frame norm, then a strided conv: (B, D, T) -> (B, D, T / factor)."""

    def __init__(self, dim: int, factor: int):
        super().__init__()
        self.norm = ChannelNorm(dim)
        # kernel = stride: frame counts divide exactly, no padding to get wrong in export
        self.conv = nn.Conv1d(dim, dim, kernel_size=factor, stride=factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


class Upsample(nn.Module):
    """Per-frame norm, then a transposed conv: (B, D, T) -> (B, D, T*factor)."""

    def __init__(self, dim: int, factor: int):
        super().__init__()
        self.norm = ChannelNorm(dim)
        self.conv = nn.ConvTranspose1d(dim, dim, kernel_size=factor, stride=factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


class Autoencoder(nn.Module):
    """STFT-domain continuous audio autoencoder; arguments are AutoencoderConfig's fields.

    Audio is float waveform in [-1, 1], (B, channels, N) at `sample_rate`; N must be a multiple
    of `latent_hop`. Latents are (B, latent_channels, N / latent_hop) raw, or
    (B, kept_channels, N / latent_hop) normalized.
    """

    def __init__(
        self,
        sample_rate: int = 48000,
        channels: int = 2,
        n_fft: int = 2048,
        hop: int = 512,
        width: int = 384,
        encoder_blocks: int = 4,
        decoder_blocks: int = 6,
        downsample: list[int] | tuple[int, ...] = (2, 2),
        latent_channels: int = 64,
        mask_fraction: float = 0.05,
        variance_kept: float = 0.9,
    ):
        super().__init__()
        if any(d < 1 for d in downsample):
            raise ValueError(f"downsample factors must be >= 1, got {list(downsample)}")
        if not 0.0 <= mask_fraction < 1.0:
            raise ValueError(f"mask_fraction must be in [0, 1), got {mask_fraction}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.hop = hop
        self.latent_channels = latent_channels
        self.mask_fraction = mask_fraction
        self.variance_kept = variance_kept
        self.latent_hop = hop * math.prod(downsample)
        self.n_bins = n_bins = n_fft // 2 + 1
        self.stft = STFT(n_fft, hop)
        self.istft = ISTFT(n_fft, hop)
        # exp(log-magnitude) is capped at n_fft: above any |X| a waveform in [-1, 1] can have
        # (sum of the Hann window = n_fft / 2), and it keeps a wild early step from overflowing
        self.log_mag_max = math.log(n_fft)

        # encoder: per-channel log-magnitude + compressed re/im of every bin, all channels
        # together (the 1x1 conv sees stereo correlation)
        self.enc_in = nn.Conv1d(channels * 3 * n_bins, width, kernel_size=1)
        self.enc_norm = ChannelNorm(width)
        self.enc_blocks = nn.ModuleList(
            ConvNeXtBlock(width, 1.0 / max(encoder_blocks, 1)) for _ in range(encoder_blocks)
        )
        self.downs = nn.ModuleList(Downsample(width, d) for d in downsample)
        self.enc_out_norm = ChannelNorm(width)
        self.to_latent = nn.Conv1d(width, latent_channels, kernel_size=1)

        # decoder: the mirror image, ending in a per-channel head: log-magnitude (F) and an
        # unnormalized phase vector (2F)
        self.from_latent = nn.Conv1d(latent_channels, width, kernel_size=1)
        self.ups = nn.ModuleList(Upsample(width, d) for d in reversed(downsample))
        self.dec_norm = ChannelNorm(width)
        self.dec_blocks = nn.ModuleList(
            ConvNeXtBlock(width, 1.0 / max(decoder_blocks, 1)) for _ in range(decoder_blocks)
        )
        self.dec_out_norm = ChannelNorm(width)
        self.head = nn.Conv1d(width, channels * 3 * n_bins, kernel_size=1)

        self.norm = LatentNormalizer(latent_channels)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # Vocos: truncated normal(0.02) for convs and linears, zero bias
        if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def latent_rate(self) -> float:
        """Latent frames per second."""
        return self.sample_rate / self.latent_hop

    @property
    def kept_channels(self) -> int:
        """K, channels of the normalized latent (latent_channels until stats are set)."""
        return self.norm.kept_channels

    # ---- encoder -------------------------------------------------------------------------

    def _features(self, audio: torch.Tensor) -> torch.Tensor:
        """Audio (B, C, N) -> (B, C*3F, N/hop): log|X|, and re/im compressed to |X|^0.3."""
        b, c, n = audio.shape
        spec = self.stft(audio.reshape(b * c, 1, n))  # (B*C, 2F, S)
        re, im = spec[:, : self.n_bins], spec[:, self.n_bins :]  # (B*C, F, S) each
        # a floor by clamp, not by `+ 1e-12`: the ONNX exporter's optimizer drops the tiny add,
        # and then digital silence gives 0 ** -0.7 = inf and 0 * inf = NaN in ONNX Runtime
        mag = torch.sqrt((re * re + im * im).clamp_min(1e-12))
        # power-law compression keeps the phase while taming the dynamic range
        squash = mag.pow(-0.7)
        feats = torch.cat([torch.log(mag + 1e-5), re * squash, im * squash], dim=1)  # (B*C, 3F, S)
        return feats.reshape(b, c * 3 * self.n_bins, -1)  # (B, C*3F, S)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveform (B, channels, N) -> raw latent (B, latent_channels, N / latent_hop).

        N (samples) must be a multiple of latent_hop; ValueError otherwise.
        """
        if audio.ndim != 3 or audio.shape[1] != self.channels:
            raise ValueError(
                f"expected audio of shape (B, {self.channels}, N), got {tuple(audio.shape)}"
            )
        if audio.shape[-1] % self.latent_hop:
            raise ValueError(
                f"audio length {audio.shape[-1]} is not a multiple of the latent hop "
                f"({self.latent_hop} samples); pad or crop it"
            )
        h = self.enc_norm(self.enc_in(self._features(audio)))  # (B, D, S)
        for block in self.enc_blocks:
            h = block(h)
        for down in self.downs:
            h = down(h)  # (B, D, T)
        return self.to_latent(self.enc_out_norm(h))  # (B, latent_channels, T)

    # ---- decoder -------------------------------------------------------------------------

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent (B, latent_channels, T) -> waveform (B, channels, T*latent_hop)."""
        if z.ndim != 3 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected a latent of shape (B, {self.latent_channels}, T), got {tuple(z.shape)}"
            )
        h = self.from_latent(z)  # (B, D, T)
        for up in self.ups:
            h = up(h)  # (B, D, S)
        h = self.dec_norm(h)
        for block in self.dec_blocks:
            h = block(h)
        out = self.head(self.dec_out_norm(h))  # (B, C*3F, S)
        b, s = out.shape[0], out.shape[-1]
        out = out.reshape(b * self.channels, 3, self.n_bins, s)  # (B*C, 3, F, S)
        mag = torch.exp(out[:, 0].clamp(max=self.log_mag_max))  # (B*C, F, S)
        # phase as a direction: (cos, sin) = (u, v) / |(u, v)|. Unlike an angle (Vocos) it has
        # no wrap-around, and it is linear in the encoder's compressed re/im features, so the
        # network can carry phase through rather than having to synthesize it. The 1e-4 under
        # the root fades vectors shorter than ~0.01 towards zero instead of amplifying rounding
        # noise into a random direction (torch and ONNX Runtime would disagree there)
        u, v = out[:, 1], out[:, 2]
        inv = torch.rsqrt(u * u + v * v + 1e-4)
        spec = torch.cat([mag * u * inv, mag * v * inv], dim=1)  # (B*C, 2F, S)
        audio = self.istft(spec)  # (B*C, 1, S*hop)
        return audio.reshape(b, self.channels, -1)  # (B, C, N)

    # ---- training ------------------------------------------------------------------------

    def mask_latent(self, z: torch.Tensor, fraction: float | None = None) -> torch.Tensor:
        """JEN-1 noise-robust masking: in training mode, zero each latent frame of z (B, C, T)
        with probability `fraction` (default: the configured mask_fraction); in eval mode, z as is.
        """
        fraction = self.mask_fraction if fraction is None else fraction
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"mask fraction must be in [0, 1), got {fraction}")
        if not self.training or fraction == 0.0:
            return z
        keep = torch.rand(z.shape[0], 1, z.shape[2], device=z.device) >= fraction  # (B, 1, T)
        return z * keep.to(z.dtype)

    def forward(
        self, audio: torch.Tensor, mask_fraction: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: audio (B, C, N) -> (reconstruction (B, C, N), raw latent z (B, L, T)).

        The decoder sees z with a random `mask_fraction` of its frames zeroed (training mode
        only), so it learns to tolerate imperfect latents coming out of diffusion. z is returned
        unmasked (for a latent regularizer).
        """
        z = self.encode(audio)
        return self.decode(self.mask_latent(z, mask_fraction)), z

    # ---- normalized latent: what diffusion trains on and what is exported ---------------

    def encode_normalized(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveform (B, channels, N) -> normalized latent y (B, kept_channels, N/latent_hop)."""
        return self.norm.normalize(self.encode(audio))

    def decode_normalized(self, y: torch.Tensor) -> torch.Tensor:
        """Normalized latent y (B, kept_channels, T) -> waveform (B, channels, T*latent_hop)."""
        if y.ndim != 3 or y.shape[1] != self.kept_channels:
            raise ValueError(
                f"expected a latent of shape (B, {self.kept_channels}, T), got {tuple(y.shape)}"
            )
        return self.decode(self.norm.denormalize(y))


class NormalizedEncoder(nn.Module):
    """Export wrapper: `Autoencoder.encode_normalized`, audio (B, C, N) -> y (B, K, T)."""

    def __init__(self, autoencoder: Autoencoder):
        super().__init__()
        self.autoencoder = autoencoder
        self.train(
            autoencoder.training
        )  # follow the wrapped model (exporters warn in training mode)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode_normalized(audio)


class NormalizedDecoder(nn.Module):
    """Export wrapper: `Autoencoder.decode_normalized`, y (B, K, T) -> audio (B, C, N)."""

    def __init__(self, autoencoder: Autoencoder):
        super().__init__()
        self.autoencoder = autoencoder
        self.train(
            autoencoder.training
        )  # follow the wrapped model (exporters warn in training mode)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode_normalized(y)
