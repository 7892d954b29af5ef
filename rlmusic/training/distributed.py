"""Multi-process data parallelism through torchrun (DDP): gloo on CPU, nccl on CUDA.

``torchrun --nproc_per_node=N --no-python rlmusic pretrain ...`` starts N copies; each reads
RANK / WORLD_SIZE / LOCAL_RANK from the environment. Without torchrun everything here is a
no-op with rank 0 of 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rlmusic.runtime import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when started by torchrun; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world_size, local_rank, resolved)


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(values: list[float], info: DistInfo) -> list[float]:
    """Sum a few numbers over all processes (float64 so token counts stay exact)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_tensor(tensor: torch.Tensor, info: DistInfo) -> list[torch.Tensor]:
    """Every process's copy of a same-shaped tensor (RNG states for the checkpoint)."""
    if not info.enabled:
        return [tensor]
    # gloo gathers CPU tensors; nccl needs them on the GPU
    local = tensor.to(info.device) if info.device.type == "cuda" else tensor
    out = [torch.empty_like(local) for _ in range(info.world_size)]
    dist.all_gather(out, local)
    return [t.cpu() for t in out]
