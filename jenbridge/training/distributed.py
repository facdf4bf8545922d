"""torchrun/DDP plumbing: one CPU process, or many GPU processes and nodes, with one code path.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them we are a single process. The backend
is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # noqa: RUF009 (immutable value)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed(device: str | None = None) -> Dist:
    """Join the process group if launched by torchrun; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= d.world
    return value


def replica_checksums(model: torch.nn.Module, d: Dist) -> list[float]:
    """Each rank's float64 checksum of its weights (position-weighted so swaps show up)."""
    total = torch.zeros((), dtype=torch.float64)
    for i, p in enumerate(model.parameters()):
        w = p.detach().double().cpu().flatten()
        total += (w * torch.arange(1, w.numel() + 1, dtype=torch.float64)).sum() * (i + 1)
    if not d.enabled:
        return [float(total)]
    out = [torch.zeros_like(total) for _ in range(d.world)]
    dist.all_gather(out, total)
    return [float(t) for t in out]


def shutdown(d: Dist) -> None:
    """Leave the process group together: a rank that tears down its gloo connections while a
    peer is still finishing (writing the last checkpoint) can make that peer abort."""
    if d.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
