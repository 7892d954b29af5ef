"""The fast on-policy trainer (``algo=batched``): whole compositions sampled at once."""

from typing import Any

__all__ = ["KL_MODES", "train"]


def __getattr__(name: str) -> Any:
    # imported on first use: conf/__init__.py imports .config (no torch) to register it
    if name in __all__:
        from rlmusic.algos.batched import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
