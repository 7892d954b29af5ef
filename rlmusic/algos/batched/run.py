"""``algo=batched``: :func:`train` runs :class:`BatchedTrainer` for ``algo.iterations``.

Per-token reward: the task reward (rules / c and extra terms) minus the KL control against the
reference, ``beta * (log pi - log p_prior)`` (``kl_mode=penalty``; with ``kl_pitch_coef`` the
strike / hold / rest part and the pitch part get their own betas) or k3 in the loss
(``kl_mode=loss``). ``kl_coef: null`` takes the reward preset's prior weight. With beta = 1 this
is RL Tuner's reward ``log p_prior + r_MT / c`` plus the policy's entropy.

Run folder: ``tuned.safetensors``, ``resume.pt`` (exact resume: run the same command with
the same ``hydra.run.dir``; :mod:`rlmusic.algos.harness` runs the loop), ``metrics.csv``,
``tb/``, ``samples/iter_NNNNN/*.mid``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from rlmusic.algos.batched.trainer import BatchedConfig, BatchedTrainer
from rlmusic.algos.constraints import applied
from rlmusic.algos.finetune_setup import FinetuneResult, FinetuneSetup
from rlmusic.algos.harness import finish, run_trainer, setup_hooks
from rlmusic.algos.settings import read_config, resolve_kl_coef, run_keys

log = logging.getLogger(__name__)
KL_MODES = ("penalty", "loss")  # see rlmusic.algos.kl.KL_MODES
RUN_KEYS = run_keys(BatchedConfig)  # the run's keys around the trainer (BatchedConfig marks them)


def batched_config(algo_cfg: Mapping[str, Any], setup: FinetuneSetup) -> BatchedConfig:
    """The trainer's config from ``algo`` (every key; ``kl_coef: null``: the prior's weight)."""
    config = read_config(BatchedConfig, algo_cfg, length=setup.length)
    return replace(config, kl_coef=resolve_kl_coef(config.kl_coef, setup.reference.weight))


def train(setup: FinetuneSetup, algo_cfg: Mapping[str, Any]) -> FinetuneResult:
    """Train (or resume) to ``algo.iterations``, stopping early at ``setup.time_s``."""
    setup = applied(setup, algo_cfg, "batched", default=True)
    config = batched_config(algo_cfg, setup)
    iterations = config.iterations
    checkpoint_every = config.checkpoint_every
    sample_every = int(config.sample_every or 0)
    # reward.constraints: rule weights scaled by multipliers that follow their targets; their
    # state rides in the resume point with the other hooks' (setup_hooks)
    constraints = setup.constraints
    trainer = BatchedTrainer(
        setup.generator,
        constraints.wrap(setup.reward.score) if constraints is not None else setup.reward.score,
        config,
        seed=setup.seed,
        prior=setup.reference.generator,
        device=setup.device,
        event_classes=setup.encoding.event_classes(),
        conditions=setup.conditions,
    )
    steps = _Steps(trainer, iterations)
    run = {"algo": "batched", "length": setup.length, "vocab_size": int(setup.generator.vocab_size)}
    outcome = run_trainer(
        setup,
        steps,
        run,
        hooks=setup_hooks(setup),
        checkpoint_every=checkpoint_every,
        sample_every=sample_every,
        sample_folder="iter_{step:05d}",
        desc="finetune",
        postfix={"kl": "kl/prior_per_token"},
    )
    info = {"algo": "batched", "iterations": trainer.iteration}
    return finish(setup, steps, outcome, trainer.policy, info, extras={"trainer": trainer})


class _Steps:
    """The batched trainer as the harness's :class:`~rlmusic.algos.harness.Trainer`."""

    unit = "iterations"

    def __init__(self, trainer: BatchedTrainer, total: int) -> None:
        self.trainer, self.total = trainer, int(total)

    @property
    def steps(self) -> int:
        return self.trainer.iteration

    def step(self) -> dict[str, float]:
        return self.trainer.step()

    def policy(self) -> Any:
        return self.trainer.policy

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.trainer.load_state_dict(dict(state))
