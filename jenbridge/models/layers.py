"""Building blocks of the omnidirectional 1D U-Net (models/unet.py), bottom-up.

Every layer here runs each batch element in its own mode, chosen by a per-example flag
`causal` (B,) bool: True = unidirectional (frame t sees only frames <= t), False =
bidirectional. The mode is applied with tensor ops (torch.where, masks), never with Python
branching on data, so one exported ONNX graph serves both modes and mixed batches.

Layout: convolutional layers take (B, C, T); attention works on (B, T, C) internally.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def neg_big(dtype: torch.dtype) -> float:
    """A large finite negative for additive attention masks. Not -inf: a row whose entries are
    all -inf gives NaN in softmax, and finfo.min / 2 leaves headroom before the logits add."""
    return torch.finfo(dtype).min / 2


class ChannelNorm(nn.Module):
    """LayerNorm over channels, separately for each frame: (B, C, T) -> (B, C, T).

    Never GroupNorm/BatchNorm here: their statistics pool over time, so in causal mode frame t
    would see the mean and variance of future frames.
    """

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(channels, elementwise_affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class OmniConv1d(nn.Conv1d):
    """Conv1d whose padding is causal or "same", chosen per example, in one conv call.

    Causal pads k-1 zeros in front; same pads p = (k-1)/2 on each side. Stride 1: one conv
    with k-1 zeros on both sides (inside the conv, no copy) gives T + k - 1 outputs, where
    output j reads inputs [j-k+1, j]; the causal result is outputs [0, T), the same result
    outputs [p, p+T), picked per example with torch.where. Stride 2 (downsampling): the two
    padded *inputs* are blended instead, since the same-padded outputs fall off the stride
    grid; output j then reads inputs <= 2j in causal mode. Kernel must be odd.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1):
        if kernel_size % 2 != 1:
            raise ValueError(f"OmniConv1d needs an odd kernel_size, got {kernel_size}")
        if stride not in (1, 2):
            raise ValueError(f"OmniConv1d supports stride 1 or 2, got {stride}")
        k1 = kernel_size - 1
        super().__init__(in_ch, out_ch, kernel_size, stride=stride,
                         padding=k1 if stride == 1 else 0)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """x (B, C_in, T), causal (B,) bool -> (B, C_out, ceil(T / stride))."""
        k1 = self.kernel_size[0] - 1
        if k1 == 0:
            return super().forward(x)
        flag = causal[:, None, None]  # (B, 1, 1)
        if self.stride[0] == 1:
            y = super().forward(x)  # (B, C_out, T + k - 1)
            length = x.shape[-1]
            return torch.where(flag, y[:, :, :length], y[:, :, k1 // 2:k1 // 2 + length])
        front = F.pad(x, (k1, 0))  # (B, C, T + k - 1): zeros in front only
        same = F.pad(x, (k1 // 2, k1 // 2))  # (B, C, T + k - 1): centered
        return super().forward(torch.where(flag, front, same))  # (B, C_out, T / 2)


class Downsample(nn.Module):
    """Halve the frame rate causally: omni conv with stride 2. (B, C, T) -> (B, C, T/2), T even.

    Output frame j is the conv at input frame 2j, which in causal mode reads frames <= 2j only.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv = OmniConv1d(channels, channels, kernel_size, stride=2)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        return self.conv(x, causal)


class Upsample(nn.Module):
    """Double the frame rate: nearest repeat x2, then omni conv. (B, C, T) -> (B, C, 2T).

    Output frames 2j and 2j+1 copy low-rate frame j, which (after Downsample) has seen input
    frames <= 2j only; the causal conv that follows looks back only. A transposed conv would
    spread frame j forward and would need its own causal bookkeeping.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv = OmniConv1d(channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(-1).expand(-1, -1, -1, 2).flatten(2)  # (B, C, 2T): f0 f0 f1 f1 ...
        return self.conv(x, causal)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention over frames, residual: (B, T, C) -> (B, T, C).

    Causal examples get a lower-triangular additive mask; bidirectional ones none. The
    diagonal is never masked, so every row keeps at least one finite logit.
    """

    def __init__(self, width: int, head_dim: int):
        super().__init__()
        if width % head_dim:
            raise ValueError(f"attention width {width} is not a multiple of head_dim {head_dim}")
        self.heads, self.head_dim = width // head_dim, head_dim
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), causal (B,) bool."""
        width = x.shape[-1]
        q, k, v = self.qkv(self.norm(x)).split(width, dim=-1)  # 3 x (B, T, C)
        # unflatten (not view(B, T, ...)) so the exported graph never hard-codes B or T
        q, k, v = (z.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2) for z in (q, k, v))
        idx = torch.arange(x.shape[1], device=x.device)
        future = (idx[None, :] > idx[:, None]).to(x.dtype)  # (T, T): 1 where key is after query
        mask = causal.to(x.dtype)[:, None, None, None] * future * neg_big(x.dtype)  # (B, 1, T, T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
        return x + self.proj(y.transpose(1, 2).flatten(2))


class CrossAttention(nn.Module):
    """Pre-norm multi-head cross-attention from frames to text tokens, residual.

    A learned null key/value is prepended to the text and never masked: with an all-zero
    text_mask (the classifier-free-guidance null condition) every query attends to it alone,
    so the softmax stays finite and "no text" is a condition the model learns.
    """

    def __init__(self, width: int, text_dim: int, head_dim: int):
        super().__init__()
        if width % head_dim:
            raise ValueError(f"attention width {width} is not a multiple of head_dim {head_dim}")
        self.heads, self.head_dim = width // head_dim, head_dim
        self.norm = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(text_dim, 2 * width)
        self.null_kv = nn.Parameter(torch.randn(1, 1, 2 * width) * 0.02)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_bias: torch.Tensor) -> torch.Tensor:
        """x (B, T, C); text (B, L, text_dim); text_bias (B, 1, 1, L + 1) additive (0 = keep)."""
        width = x.shape[-1]
        kv = self.kv(text)  # (B, L, 2C)
        kv = torch.cat([self.null_kv.expand(text.shape[0], -1, -1), kv], dim=1)  # (B, L+1, 2C)
        k, v = kv.split(width, dim=-1)
        q = self.q(self.norm(x))
        q, k, v = (z.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=text_bias)  # (B, nh, T, hs)
        return x + self.proj(y.transpose(1, 2).flatten(2))


class AttentionBlock(nn.Module):
    """Self-attention then cross-attention to text, on (B, C, T) -> (B, C, T).

    No feed-forward MLP: in an efficient U-Net the neighbouring residual conv blocks already
    do the per-frame mixing, and an MLP would cost more compute than a res block on CPU.
    """

    def __init__(self, width: int, text_dim: int, head_dim: int):
        super().__init__()
        self.self_attn = SelfAttention(width, head_dim)
        self.cross_attn = CrossAttention(width, text_dim, head_dim)

    def forward(self, x: torch.Tensor, causal: torch.Tensor, text: torch.Tensor,
                text_bias: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, T, C)
        h = self.self_attn(h, causal)
        h = self.cross_attn(h, text, text_bias)
        return h.transpose(1, 2)  # (B, C, T)


class ResBlock(nn.Module):
    """Residual conv block with FiLM from the condition embedding: (B, C_in, T) -> (B, C_out, T).

    norm -> SiLU -> omni conv -> norm * (1 + scale) + shift -> SiLU -> dropout -> omni conv,
    plus a 1x1 skip when widths differ. Norms are per frame (ChannelNorm), so causal mode holds.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, kernel_size: int, dropout: float):
        super().__init__()
        self.norm1 = ChannelNorm(in_ch)
        self.conv1 = OmniConv1d(in_ch, out_ch, kernel_size)
        self.film = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = ChannelNorm(out_ch, affine=False)  # FiLM supplies the affine part
        self.drop = nn.Dropout(dropout)
        self.conv2 = OmniConv1d(out_ch, out_ch, kernel_size)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, T); emb (B, emb_dim), already passed through SiLU; causal (B,) bool."""
        h = self.conv1(F.silu(self.norm1(x)), causal)  # (B, C_out, T)
        scale, shift = self.film(emb)[:, :, None].chunk(2, dim=1)  # 2 x (B, C_out, 1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)), causal)
        return h + self.skip(x)
