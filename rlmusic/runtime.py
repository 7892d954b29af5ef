"""Where a run executes: its device and its output folder (one helper each, used by every task)."""

from __future__ import annotations

from pathlib import Path

import torch


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when present (this process's GPU under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def run_folder(
    explicit: str | Path | None = None, fallback: str | Path | None = None
) -> Path | None:
    """The folder a task writes to: ``explicit`` if given, else Hydra's run (or sweep job)
    folder when Hydra is running, else ``fallback`` (None: the task writes no files)."""
    if explicit:
        return Path(str(explicit))
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(str(fallback)) if fallback is not None else None
