"""RL fine-tuning: one contract for every algorithm.

:func:`rlmusic.algos.setup.build_setup` builds a :class:`~rlmusic.algos.setup.FinetuneSetup`
(start model, task reward, reference prior, device, seed, length, run folder) and each
algorithm is ``train(setup, algo_cfg) -> FinetuneResult``:

- ``batched`` (:mod:`rlmusic.algos.batched`): the fast path, whole compositions at once
  (RLOO / GRPO / PPO with KL control);
- ``ppo`` (:mod:`rlmusic.algos.sb3.ppo`): stable-baselines3 PPO, the generator as its policy;
- ``rl_tuner`` (:mod:`rlmusic.algos.rl_tuner`): RL Tuner's Q / Psi / G-learning, many
  compositions acting at once, a replay of whole compositions.

A new algorithm is one module with a ``train`` function and one entry in :data:`ALGORITHMS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

# name -> module defining train(setup, algo_cfg) -> FinetuneResult (imported on first use:
# the SB3 glue costs seconds to import)
ALGORITHMS: dict[str, str] = {
    "batched": "rlmusic.algos.batched",
    "ppo": "rlmusic.algos.sb3.ppo",
    "rl_tuner": "rlmusic.algos.rl_tuner",
}


def get_train(name: str) -> Callable[[Any, Mapping[str, Any]], Any]:
    """The ``train`` function of algorithm ``name``; unknown names list the known ones."""
    if name not in ALGORITHMS:
        raise ValueError(f"algo={name!r} is not available; known: {', '.join(ALGORITHMS)}")
    return importlib.import_module(ALGORITHMS[name]).train
