"""Exact resume for the SB3 runs: everything a run's future depends on, in a weights-only file.

``resume.pt`` is the run harness's resume format (:func:`rlmusic.algos.harness.write_resume` /
:func:`~rlmusic.algos.harness.read_resume`: format, version, run identity, this module's trainer
state, the hooks' states), written with ``torch.save`` and read with
``torch.load(weights_only=True)``
(tensors and plain values only; SB3's ``model.zip`` is pickled and is never needed to resume).
It holds the policy's state dict and optimizer state, SB3's counters (steps, updates, episodes,
training progress), the last observation, the episode-statistics window, every random generator
a run draws from (torch, numpy's global generator that SB3's buffers sample with, Python's, the
action space's and each environment's) and algorithm extras (PPO: the KL coefficient).

Resume points are taken only where nothing else is in flight: at the start of a rollout (after
the previous update) when every environment has just begun a composition, so the environments
are rebuilt from the observation and their generators, and no reward-term state (the prior's
LSTM state, ...) needs saving. A run resumed from such a point takes the same steps with the same
random draws as one that never stopped: on the same machine and torch build, with the same
thread count, the weights match bit for bit (tested, after a crash, a kill -9 and a spent time
budget). Not restored, because nothing trained depends on them: wall-clock log fields
(``time/fps``, ``time/time_elapsed``, episode times) and, for PPO, the ``train/*`` values of the
update just before the resume point (SB3 dumps them with the next rollout, so the first CSV row
after a resume has them empty). Different hardware, torch builds or thread counts change float
rounding, and the runs then drift apart like any two runs with the same seed would.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv

from rlmusic.algos.harness import RESUME_FILE, read_resume, write_resume

__all__ = ["RESUME_FILE", "load_resume", "save_resume"]
log = logging.getLogger(__name__)
# SB3 (and our subclasses') attributes that change while learning; saved when the model has them
COUNTERS = (
    "num_timesteps",
    "_n_updates",
    "_episode_num",
    "_current_progress_remaining",
    "kl_coef",  # GeneratorPPO: adaptive KL coefficient ...
    "kl_pitch_coef",  # ... and its pitch part's
)
# the policy's optimizers (GeneratorPolicy: the generator's and the value function's)
OPTIMIZERS = ("optimizer", "value_optimizer")


def _dummy_envs(model: BaseAlgorithm) -> list[Any]:
    env = model.get_env()
    if not isinstance(env, DummyVecEnv):
        raise TypeError(f"exact resume needs a DummyVecEnv (its envs' state is saved), got {env}")
    return list(env.envs)


def rng_state(model: BaseAlgorithm) -> dict[str, Any]:
    """Every generator a run draws from, as tensors and plain values."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
        "action_space": model.action_space.np_random.bit_generator.state,
        "envs": [env.unwrapped.np_random.bit_generator.state for env in _dummy_envs(model)],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(model: BaseAlgorithm, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    random.setstate(state["python"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    saved_gpus = len(state.get("cuda", []))
    if saved_gpus and torch.cuda.is_available():
        if saved_gpus == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:  # another machine: its GPUs' streams cannot be matched one to one
            log.warning(
                "resume.pt holds the RNG states of %d GPU(s), this machine has %d: the GPUs' "
                "random streams restart",
                saved_gpus,
                torch.cuda.device_count(),
            )


def restart_options(env: Any, observation: np.ndarray) -> dict[str, Any] | None:
    """``reset`` options that restart the episode ``observation`` (taken as it began) shows:
    the env's own ``resume_options`` (a harmonisation: its soprano), else a composition's
    primer (``observation[-1]`` tokens: none, or a primer)."""
    if hasattr(env, "resume_options"):
        return env.resume_options(observation)
    position = int(observation[-1])
    return {"primer": observation[:position]} if position else None


def save_resume(
    model: BaseAlgorithm, path: Path, run: dict[str, Any], constraints: Any = None
) -> None:
    """Write the resume point (call only at a clean point: rollout start, episodes just begun).

    Args:
        model: the SB3 algorithm.
        path: the ``resume.pt`` to write (atomically: a kill mid-save keeps the previous one).
        run: what this run is (``algo``, ``length``, ``vocab_size``, ``n_envs``), checked on load.
        constraints: the run's ``reward.constraints`` multipliers (None: none), saved as the
            harness saves a hook's state.
    """
    state: dict[str, Any] = {
        "policy": model.policy.state_dict(),
        "optimizers": {
            name: getattr(model.policy, name).state_dict()
            for name in OPTIMIZERS
            if hasattr(model.policy, name)
        },
        "counters": {k: getattr(model, k) for k in COUNTERS if hasattr(model, k)},
        "last_obs": torch.as_tensor(np.asarray(model._last_obs)),
        "episode_stats": [dict(e) for e in (model.ep_info_buffer or [])],
        "rng": rng_state(model),
    }
    write_resume(path, run, state, [] if constraints is None else [constraints])


def load_resume(
    model: BaseAlgorithm, path: Path, run: dict[str, Any], constraints: Any = None
) -> int:
    """Put a freshly built ``model`` (same settings) back at the saved point; returns its step.

    Raises:
        ValueError: the file was written by another kind of run (algorithm, composition length,
            vocabulary or number of environments), named with both values, or with(out)
            ``reward.constraints`` when this run is not.
        CheckpointError: a damaged file or one holding pickled objects.
    """
    state = read_resume(path, run, [] if constraints is None else [constraints])
    model.policy.load_state_dict(state["policy"])
    for name, optimizer_state in state["optimizers"].items():
        getattr(model.policy, name).load_state_dict(optimizer_state)
    for name, value in state["counters"].items():
        setattr(model, name, value)
    last_obs = state["last_obs"].numpy()
    model._last_obs = last_obs
    model._last_original_obs = last_obs
    model._last_episode_starts = np.ones(len(last_obs), dtype=bool)  # resume points: all start
    model.ep_info_buffer = deque(state["episode_stats"], maxlen=model._stats_window_size)
    model.ep_success_buffer = deque(maxlen=model._stats_window_size)
    for env, obs, rng in zip(_dummy_envs(model), last_obs, state["rng"]["envs"]):
        env.reset(options=restart_options(env.unwrapped, obs))
        env.unwrapped.np_random.bit_generator.state = rng
    restore_rng(model, state["rng"])
    return int(model.num_timesteps)
