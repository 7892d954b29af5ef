"""Multi-process data parallelism through torchrun (DDP): gloo on CPU, nccl on CUDA.

``torchrun --nproc_per_node=N --no-python rlmusic pretrain ...`` starts N copies; each reads
RANK / WORLD_SIZE / LOCAL_RANK from the environment. Without torchrun everything here is a
no-op with rank 0 of 1.

Teardown must really free the process group, while the interpreter is still alive. gloo has no
``shutdown``: its worker and TCP threads stop only in the group's destructor, and a worker
drops its last finished collective (whose captured thread-local state holds Python objects)
a little after the caller has seen it complete. If the group outlives
``destroy_process_group`` it is destroyed during interpreter finalization instead; a worker
that then takes the GIL is ended by CPython with ``pthread_exit``, whose forced unwind through
a ``noexcept`` C++ destructor calls ``std::terminate``: "terminate called without an active
exception", SIGABRT, now and then, more often on a loaded machine. Two things kept the group
alive: ``torch.distributed.nn.functional`` binds ``group=group.WORLD`` as default arguments
when it is imported, and torch imports it lazily (through ``torch._dynamo``, from the first
optimizer or DDP) after ``init_process_group``; and a DDP wrapper holds the group until it is
freed. :func:`setup` imports that module before the group exists, callers drop their DDP
wrappers before :func:`teardown`, and :func:`teardown` checks that the group is gone.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import weakref
from dataclasses import dataclass

import torch
import torch.distributed as dist

from rlmusic.runtime import resolve_device

log = logging.getLogger(__name__)


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


def ddp_backend(device: torch.device) -> str:
    """The process group's backend for this process's device: nccl on CUDA, gloo elsewhere."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when started by torchrun; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)  # nccl's collectives run on the current device
        # before the group exists: imported later, its ``group=group.WORLD`` defaults would
        # pin the world group until interpreter exit (see the module docstring)
        importlib.import_module("torch.distributed.nn")
        dist.init_process_group(backend=ddp_backend(resolved))
    return DistInfo(rank, world_size, local_rank, resolved)


def teardown(info: DistInfo) -> bool:
    """Destroy the process group and check that it is freed now, its threads joined.

    Call it after every collective has finished on every process (a :func:`barrier`) and after
    dropping any DistributedDataParallel wrapper, which holds the group.

    Returns:
        False if something still holds the group: its threads then stop only at interpreter
        exit, where gloo can abort the process (logged as a warning). True otherwise.
    """
    if not (info.enabled and dist.is_initialized()):
        return True
    world = weakref.ref(dist.group.WORLD)
    dist.destroy_process_group()
    if world() is not None:
        gc.collect()  # wrappers caught in reference cycles free the group only here
    if world() is not None:
        log.warning(
            "the process group is still referenced after destroy_process_group: its threads "
            "will be stopped at interpreter exit, where gloo can abort the process "
            "(rlmusic.pretraining.distributed explains)"
        )
        return False
    return True


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
