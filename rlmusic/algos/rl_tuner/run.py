"""``algo=rl_tuner``: :func:`train` runs :class:`RLTunerTrainer` rounds to ``algo.total_timesteps``.

Rewards per variant (w: ``algo.kl_coef``, by default the reward preset's prior weight, 1 in
the paper, where all three are the paper's rewards):

- ``q``: ``setup.env_reward()``, i.e. ``w log p_prior(a|s) + r_task`` (the paper's
  ``log p_prior + r_MT / c``);
- ``psi``: the same over w, ``log p_prior(a|s) + r_task / w``: with c_T = 1 its policy
  softmax(Psi) maximises ``(E[sum r_task] - w KL(pi || p_prior)) / w``, and the network's
  initial values (the generator's logits) are the prior's policy whatever w is (a temperature
  of w would start from the prior flattened by w);
- ``g``: ``r_task / w``, with ``log p_prior`` inside the soft backup (targets.py): G-learning's
  policy ``p_prior exp(G)`` maximises the same objective.

Run folder: ``tuned.safetensors`` (the trained network; its ``info.policy`` makes every task
load the trained policy: see :mod:`rlmusic.models.policy`), ``resume.pt`` (exact resume:
weights, target network, optimizer, replay buffer, random generators, counters; re-run the same
command with the same ``hydra.run.dir``), ``metrics.csv`` and ``tb/`` (one row per round),
``samples/step_NNNNNNNN/*.mid``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from torch import nn

from rlmusic.algos.constraints import applied
from rlmusic.algos.finetune_setup import FinetuneResult, FinetuneSetup
from rlmusic.algos.harness import crossed, finish, run_trainer, setup_hooks
from rlmusic.algos.harness import interval as _interval
from rlmusic.algos.outputs import constraint_pieces, policy_statistics
from rlmusic.algos.reference import PRIOR_TERM
from rlmusic.algos.rl_tuner.config import RLTunerConfig, rl_tuner_config
from rlmusic.algos.rl_tuner.relabel import ConstrainedTerms
from rlmusic.algos.rl_tuner.trainer import RewardFn, RewardOut, RLTunerTrainer
from rlmusic.config import ConfigError
from rlmusic.models.policy import g_policy_info, psi_policy_info

log = logging.getLogger(__name__)


def reward_function(setup: FinetuneSetup, config: RLTunerConfig) -> RewardFn:
    """The variant's learning reward of whole compositions, and the shares it logs.

    Every variant logs the same terms, the prior's included (``reward/prior``: w log p_prior),
    so ``reward/total`` is the paper's ``log p_prior + r_MT / c`` in every run.

    Raises:
        ValueError: ``g`` without a prior, or with a prior weight <= 0.
    """
    reference = setup.reference
    if config.variant != "g":
        if not reference.configured:
            log.warning("no prior in the reward: %s-learning without KL control", config.variant)
        # reward.constraints scale the same term objects (the multipliers reach both scores);
        # they move on the policy's own pieces (_Rounds), not on these exploring ones
        score = setup.env_reward().score if reference.configured else setup.reward.score
        scale = task_scale(setup, config)  # psi learns on the paper's reward over w

        def reward(tokens: np.ndarray, prior_log_probs: np.ndarray | None) -> RewardOut:
            total, shares = score(tokens)  # the prior's term scores the pieces in one pass
            return total * scale, {"total": total, **shares}

        return reward
    if not reference.configured or reference.weight <= 0:
        raise ValueError(
            "algo.variant=g needs a prior with a weight > 0 (reward.prior.checkpoint, "
            f"reward.prior.weight or algo.kl_coef; got weight {reference.weight}): G-learning's "
            "policy is p_prior exp(G)"
        )
    weight = reference.weight
    task_score = setup.reward.score

    def g_reward(tokens: np.ndarray, prior_log_probs: np.ndarray | None) -> RewardOut:
        task, shares = task_score(tokens)
        if prior_log_probs is not None:  # logged only: acting stepped the prior already
            shares = {**shares, PRIOR_TERM: weight * prior_log_probs}
        return task / weight, {"total": sum(shares.values()), **shares}

    return g_reward


def task_scale(setup: FinetuneSetup, config: RLTunerConfig) -> float:
    """What the variant's learning reward multiplies the task reward by: psi and g learn on
    it over w (the module docstring), q on it as it is."""
    weight = setup.reference.weight if setup.reference.configured else 0.0
    if config.variant in ("psi", "g") and weight > 0:
        return 1.0 / weight
    return 1.0


def run_identity(setup: FinetuneSetup, config: RLTunerConfig) -> dict[str, Any]:
    """What a resume point must share with the run resuming it."""
    return {
        "algo": "rl_tuner",
        "variant": config.variant,
        "length": setup.length,
        "vocab_size": int(setup.generator.vocab_size),
        "n_envs": config.n_envs,
        "buffer_size": config.buffer_size,
    }


def train(setup: FinetuneSetup, algo_cfg: Mapping[str, Any]) -> FinetuneResult:
    """``rlmusic finetune algo=rl_tuner``: train (or resume) to ``algo.total_timesteps``."""
    if setup.conditions is not None:  # its replayed passes read no conditioning prefix
        raise ConfigError(
            f"rlmusic finetune: algo=rl_tuner cannot tune a harmoniser ({setup.checkpoint} reads "
            "the soprano first): use algo=batched or algo=ppo"
        )
    setup = applied(setup, algo_cfg, "rl_tuner", default=False)
    config = rl_tuner_config(algo_cfg, setup.length)
    if setup.reference.configured:
        config = config.with_kl_weight(setup.reference.weight)
        # w is the prior's weight everywhere: in the reward, the logs and the checkpoint's info
        setup = replace(setup, reference=replace(setup.reference, weight=config.kl_coef))
        source = "algo.kl_coef" if algo_cfg.get("kl_coef") is not None else "reward.prior.weight"
        log.info("KL weight w = %g (%s)", config.kl_coef, source)
    elif config.kl_coef is not None:
        log.warning("algo.kl_coef=%g is unused: the reward has no prior", config.kl_coef)
    checkpoint_every = _interval(algo_cfg, "checkpoint_every")
    sample_every = _interval(algo_cfg, "sample_every")
    stats_every = _interval(algo_cfg, "stats_every")
    stats_samples = config.stats_samples
    constrained = None
    if setup.constraints is not None:  # replayed at the weights of now (relabel.py)
        names = [c.term for c in setup.constraints.constraints]
        constrained = ConstrainedTerms(setup.reward, names, task_scale(setup, config))
    trainer = RLTunerTrainer(
        setup.generator,
        reward_function(setup, config),
        config,
        prior=setup.reference.generator,
        seed=setup.seed,
        device=setup.device,
        constrained=constrained,
    )
    log.info(
        "%s-learning: %d compositions per round, %d transitions per gradient step, replayed "
        "passes in %s",
        config.variant,
        config.n_envs,
        config.batch_size,
        trainer.precision,
    )
    # reward.constraints: the multipliers move once per round on algo.constraint_samples pieces
    # of the policy itself (what `rlmusic evaluate` counts), not on the round's acting pieces:
    # under e-greedy those are mostly random early on, and the multipliers chased them (tonic
    # starts 16.9% at the end against a band of 32-36%); as a hook (setup_hooks) they log and
    # ride in the resume point, as in batched
    rounds = _Rounds(trainer, setup, stats_every, stats_samples, config.constraint_samples)
    outcome = run_trainer(
        setup,
        rounds,
        run_identity(setup, config),
        hooks=setup_hooks(setup),
        checkpoint_every=checkpoint_every,
        sample_every=sample_every,
        sample_folder="step_{step:08d}",
        desc="rl_tuner",
        postfix={"td": "losses/td"},
    )
    info = {
        "algo": "rl_tuner",
        "variant": config.variant,
        "env_steps": trainer.env_steps,
        "gradient_steps": trainer.gradient_steps,
        **_policy_info(setup, config),
    }
    speed = {"charts/steps_per_s": outcome.steps_per_s}
    return finish(setup, rounds, outcome, trainer.q_network, info, speed, {"trainer": trainer})


class _Rounds:
    """The trainer's rounds as the harness's :class:`~rlmusic.algos.harness.Trainer`, with the
    policy's statistics after the first round and every ``stats_every`` env steps."""

    unit = "env_steps"

    def __init__(
        self,
        trainer: RLTunerTrainer,
        setup: FinetuneSetup,
        stats_every: int,
        stats_samples: int,
        constraint_samples: int = 64,
    ) -> None:
        self.trainer, self.setup = trainer, setup
        self.stats_every, self.stats_samples = stats_every, stats_samples
        self.constraint_samples = constraint_samples
        self.total = trainer.config.total_timesteps

    @property
    def steps(self) -> int:
        return self.trainer.env_steps

    def step(self) -> dict[str, float]:
        before = self.trainer.env_steps
        metrics = self.trainer.round()
        if self.setup.constraints is not None:
            self._move_constraints()
        if self.trainer.rounds == 1 or crossed(before, self.trainer.env_steps, self.stats_every):
            setup = self.setup
            metrics.update(
                policy_statistics(
                    self.trainer.policy(),
                    setup,
                    self.stats_samples,
                    setup.seed + 7,
                    with_reward=False,
                )
            )
        return metrics

    def _move_constraints(self) -> None:
        """Move the multipliers on pieces the policy samples now."""
        tokens = constraint_pieces(
            self.trainer.policy(), self.setup, self.constraint_samples, self.trainer.rounds
        )
        self.setup.constraints.update(tokens)

    def policy(self) -> nn.Module:
        return self.trainer.policy()

    def state_dict(self) -> dict[str, Any]:
        return self.trainer.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.trainer.load_state_dict(dict(state))


def _policy_info(setup: FinetuneSetup, config: RLTunerConfig) -> dict[str, Any]:
    """``info["policy"]`` of the tuned checkpoint: what every task must sample."""
    if config.variant == "g":
        return {"policy": g_policy_info(setup.reference.spec)}
    if config.variant == "psi":
        return {"policy": psi_policy_info(config.psi_temperature)}
    return {}
