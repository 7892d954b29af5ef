"""RL Tuner (Jaques et al. 2017) at its paper's scale: KL-controlled Q-, Psi- and G-learning with
many compositions acting at once and a replay of whole compositions.

- :mod:`.config`: the settings and their checks (replay ratio, epsilon schedule);
- :mod:`.acting`: B compositions, one batched generator step per note;
- :mod:`.replay`: whole compositions stored and drawn uniformly;
- :mod:`.targets`: the three backups;
- :mod:`.trainer`: rounds of acting and the gradient steps the replay ratio owes;
- :mod:`.run`: ``train(setup, algo_cfg)``, resume, logs, samples, the tuned checkpoint.

See docs/rl_tuner.md.
"""

from typing import Any

__all__ = ["train"]


def __getattr__(name: str) -> Any:
    # imported on first use: conf/__init__.py imports .config (no torch) to register it
    if name in __all__:
        from rlmusic.algos.rl_tuner import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
