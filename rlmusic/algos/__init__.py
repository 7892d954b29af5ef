"""RL fine-tuning: one contract for every algorithm.

:func:`rlmusic.algos.finetune_setup.build_setup` builds a :class:`~rlmusic.algos.finetune_setup.FinetuneSetup`
(start model, task reward, reference prior, device, seed, length, run folder) and each
algorithm is ``train(setup, algo_cfg) -> FinetuneResult``:

- ``batched`` (:mod:`rlmusic.algos.batched`): the fast path, whole compositions at once
  (RLOO / GRPO / PPO with KL control);
- ``ppo`` (:mod:`rlmusic.algos.sb3.ppo`): stable-baselines3 PPO, the generator as its policy;
- ``rl_tuner`` (:mod:`rlmusic.algos.rl_tuner`): RL Tuner's Q / Psi / G-learning, many
  compositions acting at once, a replay of whole compositions.

Each algorithm's settings are one typed dataclass (:data:`CONFIGS`: every key of its ``algo``
node with the shipped default and its checks; :mod:`rlmusic.algos.settings`), which Hydra
composes conf/algo/<name>.yaml onto and the task checks a composed node against.

A new algorithm is one module with a ``train`` function, its config class, and one entry in
:data:`ALGORITHMS` and :data:`CONFIGS`.
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


# name -> "module:class" of its config (a light module: conf/__init__.py imports it)
CONFIGS: dict[str, str] = {
    "batched": "rlmusic.algos.batched.config:BatchedConfig",
    "ppo": "rlmusic.algos.sb3.config:PPOConfig",
    "rl_tuner": "rlmusic.algos.rl_tuner.config:RLTunerConfig",
}


def get_config_class(name: str) -> type:
    """The config dataclass of algorithm ``name``; unknown names list the known ones."""
    if name not in CONFIGS:
        raise ValueError(f"algo={name!r} is not available; known: {', '.join(CONFIGS)}")
    module, _, cls = CONFIGS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def resumable_algo_keys() -> tuple[str, ...]:
    """``algo.<key>`` for every key a resumed run may change, in any algorithm's config."""
    from rlmusic.algos.settings import resumable_keys

    keys = {key for name in CONFIGS for key in resumable_keys(get_config_class(name))}
    return tuple(f"algo.{key}" for key in sorted(keys))


def get_train(name: str) -> Callable[[Any, Mapping[str, Any]], Any]:
    """The ``train`` function of algorithm ``name``; unknown names list the known ones."""
    if name not in ALGORITHMS:
        raise ValueError(f"algo={name!r} is not available; known: {', '.join(ALGORITHMS)}")
    return importlib.import_module(ALGORITHMS[name]).train
