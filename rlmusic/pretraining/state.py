"""The resume checkpoint (``last.pt``): weights, optimizer, scheduler, progress and RNG states.

Written atomically by the main process and read with ``torch.load(weights_only=True)``: every
entry is a tensor or a plain value. RNG states of every process are gathered, so a resumed run
continues each process's dropout stream exactly where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models.checkpoint import (
    TRAIN_FORMAT,
    CheckpointError,
    atomic_torch_save,
    generator_record,
    read_torch_file,
)
from rlmusic.pretraining.distributed import DistInfo, all_gather_tensor


def capture_rng(info: DistInfo) -> dict[str, list[torch.Tensor]]:
    """Every process's torch RNG states (collective under DDP: all processes must call it)."""
    states = {"cpu": all_gather_tensor(torch.get_rng_state(), info)}
    if info.device.type == "cuda":
        states["cuda"] = all_gather_tensor(torch.cuda.get_rng_state(info.device), info)
    return states


def restore_rng(states: dict[str, list[torch.Tensor]], info: DistInfo) -> bool:
    """Put this process's saved RNG states back; False when the world size changed."""
    cpu = states.get("cpu", [])
    if len(cpu) != info.world_size:
        return False
    torch.set_rng_state(cpu[info.rank])
    if info.device.type == "cuda" and len(states.get("cuda", [])) == info.world_size:
        torch.cuda.set_rng_state(states["cuda"][info.rank], info.device)
    return True


def save_train_state(
    path: Path,
    model: torch.nn.Module,
    encoding: MelodyEncoding,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: dict[str, Any],
    rng: dict[str, list[torch.Tensor]],
    run_config: dict[str, Any],
    info: dict[str, Any] | None = None,
) -> None:
    atomic_torch_save(
        {
            "format": TRAIN_FORMAT,
            "generator": generator_record(model, encoding, info),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "progress": progress,
            "rng": rng,
            "run_config": run_config,
        },
        path,
    )


def load_train_state(path: Path) -> dict[str, Any]:
    """A training checkpoint's dict (weights_only), or CheckpointError naming the file."""
    state = read_torch_file(Path(path))
    if not isinstance(state, dict) or state.get("format") != TRAIN_FORMAT:
        raise CheckpointError(
            f"{path}: not an rlmusic training checkpoint (format != {TRAIN_FORMAT!r})"
        )
    missing = {"generator", "optimizer", "scheduler", "progress", "rng"} - set(state)
    if missing:
        raise CheckpointError(f"{path}: training checkpoint lacks {', '.join(sorted(missing))}")
    return state
