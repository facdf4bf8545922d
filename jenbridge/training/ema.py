"""Exponential moving average of a model's weights (the weights we evaluate, export and ship)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps `shadow`, a frozen copy of `model` whose floats track decay*shadow + (1-decay)*model.

    Buffers (e.g. latent normalization statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """Warm-up: (1 + step) / (10 + step), capped at `decay`, so early checkpoints' EMA is
        not dominated by the random initialization (at 0.999 it would be for ~1000 steps)."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        decay = self.decay if step is None else self.decay_at(step)
        for s, p in zip(self.shadow.parameters(), model.parameters()):
            s.lerp_(p.detach(), 1.0 - decay)
        for sb, b in zip(self.shadow.buffers(), model.buffers()):
            sb.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.shadow.load_state_dict(state)
