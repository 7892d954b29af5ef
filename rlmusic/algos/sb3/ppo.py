"""``algo=ppo``: stable-baselines3's PPO with the pretrained generator as the policy.

The policy is :class:`rlmusic.algos.sb3.ppo_policy.GeneratorPolicy` (actor = the generator's next-token
softmax, critic = a zero-initialised linear value head on its last hidden layer), trained on
a ``DummyVecEnv`` of ``algo.n_envs`` :class:`~rlmusic.envs.composition.CompositionEnv`.

KL control against the frozen prior (``reward.prior.checkpoint``), ``algo.kl_mode``:

- ``prior_reward`` (RL Tuner): the prior term stays in the environment's reward, ``r = log
  p_prior(a|s) + r_MT / c``; PPO maximises it as it is.
- ``penalty``: the environment's reward is the composite without the prior, and after each
  rollout :class:`GeneratorPPO` subtracts ``beta * (log pi(a|s) - log p_prior(a|s))`` from every
  step's reward (``log pi`` as sampled, ``log p_prior`` from one batched pass of the prior over
  the rollout) and recomputes returns and advantages. ``beta = algo.kl_coef`` (null: the prior
  term's weight); ``algo.kl_target`` makes it adaptive (Ziegler et al. 2019). The rollout's
  own KL is logged in both modes (``kl/rollout_per_token``).

Run folder and resume: :mod:`rlmusic.algos.sb3.common` (``tuned.safetensors``, ``model.zip``,
``resume.pt``, ``progress.csv``, ``tb/``, ``samples/``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch import nn

from rlmusic.algos.kl import check_kl_mode, make_kl_controller
from rlmusic.algos.sb3.common import RunSettings, finish, learn
from rlmusic.algos.sb3.positions import position_logits
from rlmusic.algos.sb3.ppo_policy import GeneratorPolicy, generator_policy_kwargs
from rlmusic.algos.setup import FinetuneResult, FinetuneSetup

log = logging.getLogger(__name__)
KL_MODES = ("prior_reward", "penalty")  # see rlmusic.algos.kl.KL_MODES
PPO_KEYS = (
    "learning_rate",
    "n_steps",
    "batch_size",
    "n_epochs",
    "gamma",
    "gae_lambda",
    "clip_range",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "normalize_advantage",
    "target_kl",
)


class GeneratorPPO(PPO):
    """SB3 PPO with KL control against a frozen prior (see the module doc).

    Args:
        policy: the policy class (:class:`GeneratorPolicy`).
        env: the vectorised composition environments.
        kl_mode: ``prior_reward`` (the prior is in the env reward) | ``penalty`` (added here).
        kl_coef: beta of the penalty.
        kl_target: a per-token KL target that makes beta adaptive (``penalty`` only).
        kl_horizon: tokens over which the adaptive controller makes a full correction.
        prior: the frozen prior (required by ``penalty``; with ``prior_reward`` only for logging).
        **kwargs: SB3 PPO's arguments.

    The prior and the KL controller are not pickled into ``model.zip``: a ``GeneratorPPO.load``
    has neither (set ``model.prior`` and ``model.kl`` to train it further in ``penalty`` mode).
    """

    def __init__(
        self,
        policy: type[GeneratorPolicy],
        env: VecEnv,
        kl_mode: str = "prior_reward",
        kl_coef: float = 0.0,
        kl_target: float | None = None,
        kl_horizon: int = 100_000,
        prior: nn.Module | None = None,
        **kwargs: Any,
    ) -> None:
        check_kl_mode(kl_mode, "ppo", KL_MODES)
        if kl_mode == "penalty" and prior is None:
            raise ValueError("algo.kl_mode=penalty needs a prior to measure log p_prior against")
        if kl_target is not None and kl_mode != "penalty":
            raise ValueError("algo.kl_target adapts the penalty's beta: it needs kl_mode=penalty")
        self.kl_mode = kl_mode
        self.kl = make_kl_controller(float(kl_coef), kl_target, int(kl_horizon))
        self.prior = prior
        super().__init__(policy, env, **kwargs)

    @property
    def kl_coef(self) -> float:
        """The penalty's current beta (saved in resume points)."""
        return float(self.kl.coef)

    @kl_coef.setter
    def kl_coef(self, value: float) -> None:
        self.kl.coef = float(value)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "prior", "kl"]

    def _update_learning_rate(
        self, optimizers: list[torch.optim.Optimizer] | torch.optim.Optimizer
    ) -> None:
        """SB3's schedule, times each parameter group's ``lr_scale`` (the value head's own lr)."""
        lr = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", lr)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False
        if self.prior is not None:
            self._kl_control(rollout_buffer)
        return True

    @torch.no_grad()
    def rollout_log_prior(self, buffer: RolloutBuffer, chunk: int = 1024) -> np.ndarray:
        """log p_prior(a_t | s_t) for every step of the rollout -> (n_steps, n_envs)."""
        obs = torch.as_tensor(buffer.observations, device=self.device)
        obs = obs.reshape(-1, obs.shape[-1])  # (N, length + 1)
        actions = torch.as_tensor(buffer.actions, device=self.device).long().reshape(-1, 1)
        length = obs.shape[-1] - 1
        out = []
        for i in range(0, len(obs), chunk):
            logits = position_logits(self.prior, obs[i : i + chunk], length)  # (n, V)
            out.append(torch.log_softmax(logits, -1).gather(1, actions[i : i + chunk])[:, 0])
        return torch.cat(out).cpu().numpy().reshape(buffer.rewards.shape)

    def _kl_control(self, buffer: RolloutBuffer) -> None:
        """Log the rollout's KL; with ``penalty`` subtract it from the rewards and redo GAE."""
        kl = buffer.log_probs - self.rollout_log_prior(buffer)  # (n_steps, n_envs)
        beta = self.kl.coef
        if self.kl_mode == "penalty":
            buffer.rewards -= (beta * kl).astype(np.float32)
            # SB3 computed returns and advantages inside collect_rollouts; redo them with the
            # penalised rewards (last values and dones are what collect_rollouts used)
            with torch.no_grad():
                last_values = self.policy.predict_values(obs_as_tensor(self._last_obs, self.device))
            buffer.compute_returns_and_advantage(last_values, self._last_episode_starts)
            self.kl.update(float(kl.mean()), kl.size)
        self.logger.record("kl/rollout_per_token", float(kl.mean()))
        self.logger.record("kl/coef", beta)


def train(setup: FinetuneSetup, algo_cfg: Mapping[str, Any]) -> FinetuneResult:
    """``rlmusic finetune algo=ppo``: train (or resume) to ``algo.total_timesteps`` env steps."""
    from rlmusic.envs.composition import CompositionEnv

    algo = dict(algo_cfg)
    settings = RunSettings.from_setup(setup, algo)
    length = setup.length
    if int(algo["n_steps"]) % length:
        raise ValueError(
            f"algo.n_steps={algo['n_steps']} must be a multiple of length={length}: every "
            "rollout then holds whole compositions, and resume points fall between them"
        )
    kl_mode = check_kl_mode(str(algo["kl_mode"]), "ppo", KL_MODES)
    reference = setup.reference
    kl_coef = algo["kl_coef"]
    if kl_coef is None:
        kl_coef = reference.weight
    if not reference.configured:
        log.warning("no prior in the reward: KL is measured against the start model")
    env_reward = setup.env_reward() if kl_mode == "prior_reward" else setup.reward

    def make_env() -> Monitor:
        return Monitor(CompositionEnv(reward=env_reward, encoding=setup.encoding, length=length))

    env = DummyVecEnv([make_env] * int(algo["n_envs"]))
    model = GeneratorPPO(
        GeneratorPolicy,
        env,
        kl_mode=kl_mode,
        kl_coef=float(kl_coef),
        kl_target=algo["kl_target"],
        kl_horizon=int(algo["kl_horizon"]),
        prior=reference.generator,
        policy_kwargs=generator_policy_kwargs(setup.generator, algo["value_lr"]),
        seed=setup.seed,
        device=setup.device,
        **{key: algo[key] for key in PPO_KEYS},
    )
    model.policy.load_generator(setup.generator)  # a resume point overwrites these weights
    result = learn(model, settings, setup, lambda: model.policy.generator)
    tuned = model.policy.generator
    return finish(model, setup, result, tuned, tuned, {"algo": "ppo", "kl_mode": kl_mode})
