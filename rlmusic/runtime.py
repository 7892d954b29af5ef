"""Where a run executes: its device, its numeric precision and its output folder (one helper
each, used by every task and trainer)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when present (this process's GPU under torchrun), else CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def _cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: where CPU bf16 matmuls are faster than fp32 (elsewhere emulated)."""
    checks = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    return any(check is not None and check() for check in checks)


@dataclass(frozen=True)
class Autocast:
    """The mixed precision of a run's forward passes: bf16 autocast or none (fp32).

    Attributes:
        device_type: ``cpu`` | ``cuda`` | ... (the autocast's device type).
        enabled: whether forward passes run under bf16 autocast.
    """

    device_type: str
    enabled: bool

    @property
    def name(self) -> str:
        """``bf16`` or ``fp32`` (as logged and as ``precision`` spells it)."""
        return "bf16" if self.enabled else "fp32"

    @property
    def dtype(self) -> torch.dtype:
        """The dtype autocast computes in (float32 when off)."""
        return torch.bfloat16 if self.enabled else torch.float32

    def __call__(self) -> contextlib.AbstractContextManager:
        """A fresh context for one forward pass. Off, it is a null context: ``torch.autocast``
        refuses device types without autocast (``meta``), even disabled."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16)


def choose_autocast(
    device: torch.device | str, precision: str = "auto", native_cpu_bf16: bool = False
) -> Autocast:
    """The one rule for bf16 autocast, used by every trainer and by validation.

    ``precision``:

    - ``fp32``: off.
    - ``bf16``: on, wherever torch can compute it (GPUs before Ampere emulate it, slowly); a
      ValueError where it cannot, or on a device type other than ``cpu`` and ``cuda``.
    - ``auto``: on for CUDA GPUs with native bf16 (Ampere and later); off on older GPUs, where
      the fast type is fp16, which needs loss scaling none of the trainers do, so fp32 is the
      safe choice there. On a CPU, on only when ``native_cpu_bf16`` is asked for and the CPU
      computes bf16 natively (AVX512-BF16, AMX): RL Tuner measured that faster at the same
      learning (docs/results/rl_tuner.md); the batched trainer and pretraining keep fp32 on
      CPUs, where their defaults were measured. Other devices (``mps``, ``meta``): off.

    Args:
        device: where the forward passes run.
        precision: ``auto`` | ``fp32`` | ``bf16``.
        native_cpu_bf16: let ``auto`` choose bf16 on a CPU with native bf16.

    Raises:
        ValueError: an unknown ``precision``, or ``bf16`` where the device cannot run it.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    kind = device.type
    if precision == "fp32":
        return Autocast(kind, False)
    if kind == "cuda":
        if precision == "auto":
            return Autocast(kind, torch.cuda.is_bf16_supported(including_emulation=False))
        if not torch.cuda.is_bf16_supported(including_emulation=True):
            raise ValueError(f"precision=bf16 but {device} cannot compute bf16: use fp32 or auto")
        return Autocast(kind, True)  # asked for: kept, emulated (slowly) on GPUs before Ampere
    if kind == "cpu":
        if precision == "bf16":
            return Autocast(kind, True)
        return Autocast(kind, native_cpu_bf16 and _cpu_has_native_bf16())
    if precision == "bf16":
        raise ValueError(f"precision=bf16 is supported on cpu and cuda devices, not {device}")
    return Autocast(kind, False)


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
