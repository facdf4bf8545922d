"""The omnidirectional 1D efficient U-Net of JEN-1 (arXiv 2308.04729), over latent frames.

One set of weights, two modes switched per batch element by `causal`:
- bidirectional (0): "same" padding and full self-attention (text-to-music, inpainting);
- unidirectional (1): causal padding in every conv (down/up-sampling included) and
  lower-triangular self-attention, so output frame t never depends on input frames > t
  (continuation). tests/test_unet.py proves it through the whole network.

In-context multi-task learning: the input is concat(noisy latent, masked clean latent, mask)
on channels (2K + 1); the same network then generates, inpaints and continues.

The forward pass is tensors in, tensor out, with no Python branching on data, so it exports
to ONNX as is (dynamic batch and length) and the sampler drives either backend.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jenbridge.conditions import BPM_MAX, BPM_MIN, NUM_KEY_CODES, NUM_METER_CODES
from jenbridge.models.layers import (
    AttentionBlock,
    ChannelNorm,
    Downsample,
    OmniConv1d,
    ResBlock,
    Upsample,
    neg_big,
)

TIME_FEATURES = 256  # sinusoidal timestep features before the MLP (as in DiT)


def sinusoidal(x: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sinusoidal features of a float (B,) -> (B, dim); dim even."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x.device) / half)
    args = x.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _attend(attn: nn.Module, h: torch.Tensor, causal: torch.Tensor, text: torch.Tensor,
            text_bias: torch.Tensor) -> torch.Tensor:
    """Apply an AttentionBlock, or pass h through where the level has none (nn.Identity)."""
    if isinstance(attn, AttentionBlock):
        return attn(h, causal, text, text_bias)
    return h


class ConditionEmbedding(nn.Module):
    """Timestep + musical conditions -> one (B, emb_dim) vector that FiLMs every res block.

    Tempo, key and meter are global properties of a clip, so they join the global timestep
    embedding (added) rather than the cross-attention: cheap, and every block sees them.
    - tempo: Fourier features of log(bpm) (tempo ratios are what matter musically, and
      doubling is one fixed step in log space) -> MLP; a learned null vector where bpm == 0;
    - key, meter: nn.Embedding tables whose code 0 is the learned "unset" entry.
    """

    tempo_freqs: torch.Tensor

    def __init__(self, time_dim: int, emb_dim: int, tempo_freqs: int = 8):
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        # 1, 2, 4, ... cycles over the log-tempo range [BPM_MIN, BPM_MAX]
        self.register_buffer("tempo_freqs", math.pi * 2.0 ** torch.arange(tempo_freqs),
                             persistent=False)
        self.tempo_mlp = nn.Sequential(
            nn.Linear(2 * tempo_freqs + 1, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.tempo_null = nn.Parameter(torch.zeros(emb_dim))
        self.key = nn.Embedding(NUM_KEY_CODES, emb_dim)
        self.meter = nn.Embedding(NUM_METER_CODES, emb_dim)

    def forward(self, t: torch.Tensor, bpm: torch.Tensor, key: torch.Tensor,
                meter: torch.Tensor) -> torch.Tensor:
        """t (B,) float in [0, 1000); bpm (B,) float, 0 = unset; key, meter (B,) int64 codes."""
        emb = self.time_mlp(sinusoidal(t, self.time_dim))  # (B, emb_dim)
        # clamp first: log(0) would put inf/NaN into the branch torch.where discards, and NaN
        # gradients flow back through a discarded branch
        u = torch.log(bpm.float().clamp(BPM_MIN, BPM_MAX) / BPM_MIN) / math.log(BPM_MAX / BPM_MIN)
        args = u[:, None] * self.tempo_freqs  # (B, F), u in [0, 1]
        feats = torch.cat([u[:, None], torch.cos(args), torch.sin(args)], dim=-1)  # (B, 2F + 1)
        tempo = torch.where((bpm > 0)[:, None], self.tempo_mlp(feats), self.tempo_null)
        return emb + tempo + self.key(key) + self.meter(meter)


class UNet1D(nn.Module):
    """Omnidirectional 1D efficient U-Net: predicts noise (or v) for a (B, K, T) latent.

    Args are the UNetConfig fields plus `latent_channels` (K). Widths per level are
    channels * channel_mults[i]; each level has res_blocks[i] residual blocks, each followed
    by self- and cross-attention where attention[i]; the frame rate halves between levels.
    The middle runs mid_blocks (res + attention if the lowest level has attention).
    """

    def __init__(self, latent_channels: int, channels: int, channel_mults: list[int],
                 res_blocks: list[int], attention: list[bool], mid_blocks: int, head_dim: int,
                 kernel_size: int, emb_dim: int, text_dim: int, dropout: float):
        super().__init__()
        if not len(channel_mults) == len(res_blocks) == len(attention) > 0:
            raise ValueError("channel_mults, res_blocks and attention need one entry per level")
        self.latent_channels, self.text_dim = latent_channels, text_dim
        self.stride = 2 ** (len(channel_mults) - 1)  # T is padded to a multiple of this
        widths = [channels * m for m in channel_mults]

        def res(in_ch: int, out_ch: int) -> ResBlock:
            return ResBlock(in_ch, out_ch, emb_dim, kernel_size, dropout)

        def attn(width: int, on: bool) -> nn.Module:
            return AttentionBlock(width, text_dim, head_dim) if on else nn.Identity()

        self.cond = ConditionEmbedding(TIME_FEATURES, emb_dim)
        self.text_norm = nn.LayerNorm(text_dim)  # encoders differ in scale (MiniLM vs T5)
        self.conv_in = OmniConv1d(2 * latent_channels + 1, channels, kernel_size)

        # down path: every res(+attn) output is kept as a skip for the up path
        self.down, self.down_attn = nn.ModuleList(), nn.ModuleList()
        self.downsample = nn.ModuleList()
        skip_widths, width = [], channels
        for i, (w, n, a) in enumerate(zip(widths, res_blocks, attention)):
            for _ in range(n):
                self.down.append(res(width, w))
                self.down_attn.append(attn(w, a))
                skip_widths.append(w)
                width = w
            if i < len(widths) - 1:
                self.downsample.append(Downsample(width, kernel_size))

        self.mid = nn.ModuleList(res(width, width) for _ in range(mid_blocks))
        self.mid_attn = nn.ModuleList(attn(width, attention[-1]) for _ in range(mid_blocks))

        # up path mirrors the down path; each block eats one skip (concatenated on channels)
        self.up, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(widths))):
            for _ in range(res_blocks[i]):
                self.up.append(res(width + skip_widths.pop(), widths[i]))
                self.up_attn.append(attn(widths[i], attention[i]))
                width = widths[i]
            if i > 0:
                self.upsample.append(Upsample(width, kernel_size))
        self.level_blocks = list(res_blocks)

        self.norm_out = ChannelNorm(width)
        self.conv_out = OmniConv1d(width, latent_channels, kernel_size)
        # zero-init: the untrained model predicts 0, the mean of its eps (or v) target, so
        # training starts from a small, stable loss
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)  # type: ignore[arg-type]

    def _check_inputs(self, x: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor,
                      text: torch.Tensor, text_mask: torch.Tensor,
                      per_example: dict[str, torch.Tensor]) -> None:
        if x.dim() != 3 or x.shape[1] != self.latent_channels:
            raise ValueError(f"x must be (B, {self.latent_channels}, T), got {tuple(x.shape)}")
        b, _, t = x.shape
        if masked.shape != x.shape:
            raise ValueError(f"masked must match x {tuple(x.shape)}, got {tuple(masked.shape)}")
        if mask.dim() != 3 or mask.shape[0] != b or mask.shape[1] != 1 or mask.shape[2] != t:
            raise ValueError(f"mask must be (B, 1, T) = ({b}, 1, {t}), got {tuple(mask.shape)}")
        if text.dim() != 3 or text.shape[0] != b or text.shape[2] != self.text_dim:
            raise ValueError(f"text must be (B, L, {self.text_dim}), got {tuple(text.shape)}")
        if text_mask.dim() != 2 or text_mask.shape[0] != b or text_mask.shape[1] != text.shape[1]:
            raise ValueError(f"text_mask must be (B, L) = ({b}, {text.shape[1]}), "
                             f"got {tuple(text_mask.shape)}")
        for name, v in per_example.items():
            if v.dim() != 1 or v.shape[0] != b:
                raise ValueError(f"{name} must be ({b},), got {tuple(v.shape)}")

    def forward(self, x: torch.Tensor, t: torch.Tensor, masked: torch.Tensor, mask: torch.Tensor,
                text: torch.Tensor, text_mask: torch.Tensor, bpm: torch.Tensor, key: torch.Tensor,
                meter: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        """Predict the diffusion target for the noisy latent.

        x (B, K, T) noisy normalized latent; t (B,) float timestep in [0, 1000);
        masked (B, K, T) clean latent where known, zeros where to generate;
        mask (B, 1, T) 1 = frame to generate, 0 = known context;
        text (B, L, text_dim) text-encoder token states; text_mask (B, L) 1 = real token,
        0 = padding (all zeros = the null text condition);
        bpm (B,) float, 0 = unset; key (B,) int64 0..25; meter (B,) int64 0..MAX_METER;
        causal (B,) float, 1 = unidirectional, 0 = bidirectional.
        Returns (B, K, T).
        """
        self._check_inputs(x, masked, mask, text, text_mask,
                           dict(t=t, bpm=bpm, key=key, meter=meter, causal=causal))
        length = x.shape[-1]
        is_causal = causal > 0.5  # (B,) bool
        emb = F.silu(self.cond(t, bpm, key, meter))  # (B, emb_dim), SiLU once for all FiLMs
        text = self.text_norm(text)
        keep = torch.cat([torch.ones_like(text_mask[:, :1]), text_mask], dim=1) > 0.5  # (B, L+1)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        text_bias = torch.where(keep, zero, neg_big(x.dtype))[:, None, None, :]  # (B, 1, 1, L+1)

        h = torch.cat([x, masked, mask.to(x.dtype)], dim=1)  # (B, 2K + 1, T)
        # pad on the right to a multiple of 2^(levels-1): right padding never reaches earlier
        # frames in causal mode, and the crop at the end removes it
        h = F.pad(h, (0, (-length) % self.stride))  # (B, 2K + 1, T')
        h = self.conv_in(h, is_causal)  # (B, C, T')

        skips: list[torch.Tensor] = []
        block = 0
        for level, n in enumerate(self.level_blocks):
            for _ in range(n):
                h = self.down[block](h, emb, is_causal)  # (B, C_level, T_level)
                h = _attend(self.down_attn[block], h, is_causal, text, text_bias)
                skips.append(h)
                block += 1
            if level < len(self.downsample):
                h = self.downsample[level](h, is_causal)  # (B, C_level, T' / 2^(level+1))

        for res, attn in zip(self.mid, self.mid_attn):
            h = _attend(attn, res(h, emb, is_causal), is_causal, text, text_bias)

        block = 0
        for level, n in enumerate(reversed(self.level_blocks)):
            for _ in range(n):
                h = torch.cat([h, skips.pop()], dim=1)  # (B, C + C_skip, T_level)
                h = self.up[block](h, emb, is_causal)  # (B, C_level, T_level)
                h = _attend(self.up_attn[block], h, is_causal, text, text_bias)
                block += 1
            if level < len(self.upsample):
                h = self.upsample[level](h, is_causal)  # (B, C_level, 2 T_level)

        h = self.conv_out(F.silu(self.norm_out(h)), is_causal)  # (B, K, T')
        return h[:, :, :length]  # crop the right padding
