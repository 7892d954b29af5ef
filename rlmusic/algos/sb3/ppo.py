"""``algo=ppo``: stable-baselines3's PPO with the pretrained generator as the policy.

The policy is :class:`rlmusic.algos.sb3.ppo_policy.GeneratorPolicy` (actor = the generator's
next-token softmax; critic = :class:`rlmusic.algos.value.ValueFunction` on its *detached* hidden
state, with its own optimizer and normalised targets), trained on a ``DummyVecEnv`` of
``algo.n_envs`` :class:`~rlmusic.envs.composition.CompositionEnv` (a harmoniser:
:class:`~rlmusic.envs.harmonisation.HarmonisationEnv`, whose observations hold the soprano the
policy and the prior read first, so the KL below compares them under the same soprano).
:meth:`GeneratorPPO.train` is PPO's clipped update with the value function kept apart: the
generator's gradient and the value function's are clipped one by one, so value regression never
steers the generator.

KL control against the frozen reference (the start model unless ``reward.prior.checkpoint``
names another), ``algo.kl_mode``:

- ``penalty`` (the default; KL control as in Ziegler et al. 2019 and every RLHF library): the
  environment's reward is the task reward, and after each rollout :class:`GeneratorPPO`
  subtracts ``beta * (log pi(a|s) - log p_prior(a|s))`` from every step's reward (``log pi`` as
  sampled, ``log p_prior`` from one batched pass of the prior over the rollout) and recomputes
  returns and advantages. ``algo.kl_pitch_coef`` splits it into an event part (strike / hold /
  rest, weighted ``beta``) and a pitch part (weighted ``kl_pitch_coef``), as the batched
  trainer does. ``beta = algo.kl_coef`` (null: the prior's weight); ``algo.kl_target`` makes
  both betas adaptive.
- ``prior_reward`` (RL Tuner's objective): the prior term stays in the environment's reward,
  ``r = w log p_prior(a|s) + r_task``. That is the KL-penalised reward ``r_task - w (log pi -
  log p_prior)`` *plus* ``w log pi``: KL control with an entropy *penalty* of weight ``w``, which
  pushes the policy towards the prior's single most likely token (a held note, for the shipped
  prior). Kept to reproduce the paper.

The rollout's own KL is logged in both modes (``kl/rollout_per_token``).

Run folder and resume: :mod:`rlmusic.algos.sb3.run` (``tuned.safetensors``, ``model.zip``,
``resume.pt``, ``progress.csv``, ``tb/``, ``samples/``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv
from torch import nn

from rlmusic.algos.constraints import applied
from rlmusic.algos.finetune_setup import FinetuneResult, FinetuneSetup
from rlmusic.algos.kl import check_kl_mode, kl_penalty, make_kl_controller, token_log_probs
from rlmusic.algos.sb3.config import KL_MODES, PPO_KEYS, PPOConfig
from rlmusic.algos.sb3.positions import position_logits, position_outputs
from rlmusic.algos.sb3.ppo_policy import GeneratorPolicy, generator_policy_kwargs
from rlmusic.algos.sb3.run import RunSettings, finish, learn
from rlmusic.algos.settings import read_config, resolve_kl_coef
from rlmusic.algos.value import explained_variance

log = logging.getLogger(__name__)


class GeneratorPPO(PPO):
    """SB3 PPO with KL control against a frozen prior and a value function kept apart (module doc).

    Args:
        policy: the policy class (:class:`GeneratorPolicy`).
        env: the vectorised composition environments.
        kl_mode: ``penalty`` (added here) | ``prior_reward`` (the prior is in the env reward).
        kl_coef: beta of the penalty (with ``kl_pitch_coef``: of its event part).
        kl_pitch_coef: beta of the penalty's pitch part (None: the KL is not split).
        kl_target: a per-token KL target that makes the betas adaptive (``penalty`` only).
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
        kl_mode: str = "penalty",
        kl_coef: float = 0.0,
        kl_pitch_coef: float | None = None,
        kl_target: float | None = None,
        kl_horizon: int = 100_000,
        prior: nn.Module | None = None,
        event_classes: np.ndarray | None = None,
        **kwargs: Any,
    ) -> None:
        check_kl_mode(kl_mode, "ppo", KL_MODES)
        # which tokens strike a note (the encoding's event classes): the split KL's reading
        self.strikes = None if event_classes is None else torch.as_tensor(event_classes == 2)
        loading = not kwargs.get("_init_setup_model", True)  # SB3's load: the prior is set after
        if kl_mode == "penalty" and prior is None and not loading:
            raise ValueError("algo.kl_mode=penalty needs a prior to measure log p_prior against")
        if kl_mode != "penalty" and (kl_target is not None or kl_pitch_coef is not None):
            raise ValueError(
                "algo.kl_target and algo.kl_pitch_coef shape the KL penalty: they need "
                "algo.kl_mode=penalty"
            )
        self.kl_mode = kl_mode
        self.kl = make_kl_controller(float(kl_coef), kl_target, int(kl_horizon), kl_pitch_coef)
        self.prior = prior
        super().__init__(policy, env, **kwargs)

    @property
    def kl_coef(self) -> float:
        """The penalty's current beta (saved in resume points)."""
        return float(self.kl.coef)

    @kl_coef.setter
    def kl_coef(self, value: float) -> None:
        self.kl.coef = float(value)

    @property
    def kl_pitch_coef(self) -> float | None:
        """The pitch part's current beta (None: unsplit; saved in resume points)."""
        return self.kl.pitch_coef

    @kl_pitch_coef.setter
    def kl_pitch_coef(self, value: float | None) -> None:
        self.kl.pitch_coef = None if value is None else float(value)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "prior", "kl"]

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
    def rollout_logits(
        self, generator: nn.Module, buffer: RolloutBuffer, chunk: int = 1024
    ) -> torch.Tensor:
        """``generator``'s next-token logits at every step of the rollout -> (n_steps, n_envs, V)."""
        obs = torch.as_tensor(buffer.observations, device=self.device)
        obs = obs.reshape(-1, obs.shape[-1])  # (N, length + 1)
        length = obs.shape[-1] - 1
        logits = [
            position_logits(generator, obs[i : i + chunk], length)
            for i in range(0, len(obs), chunk)
        ]
        return torch.cat(logits).reshape(*buffer.rewards.shape, -1)

    def rollout_log_prior(self, buffer: RolloutBuffer) -> np.ndarray:
        """log p_prior(a_t | s_t) for every step of the rollout -> (n_steps, n_envs)."""
        actions = (
            torch.as_tensor(buffer.actions, device=self.device).long().reshape(buffer.rewards.shape)
        )
        return token_log_probs(self.rollout_logits(self.prior, buffer), actions).cpu().numpy()

    def _kl_control(self, buffer: RolloutBuffer) -> None:
        """Log the rollout's KL; with ``penalty`` subtract it from the rewards and redo GAE."""
        actions = (
            torch.as_tensor(buffer.actions, device=self.device).long().reshape(buffer.rewards.shape)
        )
        prior_logits = self.rollout_logits(self.prior, buffer)
        log_ratio = torch.as_tensor(buffer.log_probs, device=self.device) - token_log_probs(
            prior_logits, actions
        )  # (n_steps, n_envs): log pi - log p_prior at the sampled notes
        kl = log_ratio.cpu().numpy()
        if self.kl_mode == "penalty":
            split = self.kl.pitch_coef is not None
            penalty = kl_penalty(
                log_ratio,
                self.kl.coef,
                self.kl.pitch_coef,
                self.rollout_logits(self.policy.generator, buffer) if split else None,
                prior_logits if split else None,
                actions if split else None,
                self.strikes,
            )
            buffer.rewards -= penalty.cpu().numpy().astype(np.float32)
            # SB3 computed returns and advantages inside collect_rollouts; redo them with the
            # penalised rewards (last values and dones are what collect_rollouts used)
            with torch.no_grad():
                last_values = self.policy.predict_values(obs_as_tensor(self._last_obs, self.device))
            buffer.compute_returns_and_advantage(last_values, self._last_episode_starts)
            self.logger.record("kl/coef", self.kl.coef)
            if split:
                self.logger.record("kl/pitch_coef", self.kl.pitch_coef)
            self.kl.update(float(kl.mean()), kl.size)
        self.logger.record("kl/rollout_per_token", float(kl.mean()))

    def train(self) -> None:
        """PPO's clipped update on the rollout; the value function learns beside it, apart.

        SB3's ``PPO.train`` sums the value loss into the policy's loss and clips one gradient
        norm over both; here the value function reads a detached hidden state and has its own
        optimizer and clip, so ``vf_coef`` and the returns' scale cannot touch the generator's
        step. Before the epochs the value targets' running statistics move (PopArt).
        """
        policy: GeneratorPolicy = self.policy
        policy.set_training_mode(True)
        self._update_learning_rate(policy.optimizer)
        clip_range = float(self.clip_range(self._current_progress_remaining))
        buffer = self.rollout_buffer
        policy.value_fn.update_statistics(torch.as_tensor(buffer.returns, device=self.device))
        length = policy.length
        stats: dict[str, list[float]] = defaultdict(list)
        generator_params = list(policy.generator.parameters())
        value_params = list(policy.value_fn.parameters())
        stop = False
        for _ in range(self.n_epochs):
            for batch in buffer.get(self.batch_size):
                actions = batch.actions.long().flatten()
                logits, hidden = position_outputs(policy.generator, batch.observations, length)
                log_all = torch.log_softmax(logits, -1)  # (B, V)
                log_prob = log_all.gather(1, actions[:, None])[:, 0]
                entropy = -(log_all.exp() * log_all).sum(-1)
                advantages = batch.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                log_ratio = log_prob - batch.old_log_prob
                ratio = log_ratio.exp()
                policy_loss = -torch.min(
                    advantages * ratio, advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
                ).mean()
                with torch.no_grad():
                    approx_kl = float(((ratio - 1) - log_ratio).mean())
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    stop = True  # SB3's early stop: this minibatch is not applied
                    break
                positions = batch.observations[:, length]
                value_loss = policy.value_fn.loss(hidden, positions, batch.returns)
                loss = policy_loss - self.ent_coef * entropy.mean() + self.vf_coef * value_loss
                policy.optimizer.zero_grad(set_to_none=True)
                policy.value_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                stats["grad_norm"].append(
                    float(nn.utils.clip_grad_norm_(generator_params, self.max_grad_norm))
                )
                nn.utils.clip_grad_norm_(value_params, self.max_grad_norm)
                policy.optimizer.step()
                policy.value_optimizer.step()
                stats["policy_gradient_loss"].append(policy_loss.item())
                stats["value_loss"].append(value_loss.item())
                stats["entropy"].append(entropy.mean().item())
                stats["approx_kl"].append(approx_kl)
                stats["clip_fraction"].append(
                    float(((ratio - 1).abs() > clip_range).float().mean())
                )
            self._n_updates += 1
            if stop:
                break
        values = torch.as_tensor(buffer.values)
        returns = torch.as_tensor(buffer.returns)
        for key, value in stats.items():
            self.logger.record(f"train/{key}", float(np.mean(value)))
        self.logger.record("train/entropy_loss", -float(np.mean(stats["entropy"] or [0.0])))
        # the rollout's values (before this update) against its returns, as SB3 logs it
        self.logger.record("train/explained_variance", explained_variance(values, returns))
        self.logger.record("train/value_mean", float(policy.value_fn.mean))
        self.logger.record("train/value_std", float(policy.value_fn.std))
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)


def env_factory(setup: FinetuneSetup, reward: Any) -> tuple[Callable[[], gym.Env], int]:
    """What a run's environments are, and the agent's actions per episode.

    A generator composes whole pieces (:class:`~rlmusic.envs.composition.CompositionEnv`,
    ``setup.length`` actions); a harmoniser (``setup.conditions``) harmonises their sopranos
    (:class:`~rlmusic.envs.harmonisation.HarmonisationEnv`: the env writes the soprano, the
    agent the other three voices, and the observation holds the conditioning prefix the
    harmoniser and its reference read first).
    """
    if setup.conditions is None:
        from rlmusic.envs.composition import CompositionEnv

        def composition() -> gym.Env:
            return CompositionEnv(reward=reward, encoding=setup.encoding, length=setup.length)

        return composition, setup.length
    from rlmusic.envs.harmonisation import HarmonisationEnv

    sopranos = np.asarray(setup.conditions.sopranos)
    if sopranos.shape[1] != setup.steps:
        raise ValueError(
            f"the sopranos have {sopranos.shape[1]} steps, the run harmonises length="
            f"{setup.steps}: give sopranos of {setup.steps} steps"
        )

    def harmonisation() -> gym.Env:
        return HarmonisationEnv(sopranos, reward=reward, encoding=setup.encoding)

    return harmonisation, setup.length - setup.steps  # A, T and B of every step


def train(setup: FinetuneSetup, algo_cfg: Mapping[str, Any]) -> FinetuneResult:
    """``rlmusic finetune algo=ppo``: train (or resume) to ``algo.total_timesteps`` env steps."""
    algo = asdict(read_config(PPOConfig, algo_cfg))  # every key, typed and checked
    setup = applied(setup, algo, "ppo", default=False)
    settings = RunSettings.from_setup(setup, algo)
    kl_mode = check_kl_mode(str(algo["kl_mode"]), "ppo", KL_MODES)
    if setup.conditions is not None and kl_mode == "prior_reward":
        raise ValueError(
            "algo.kl_mode=prior_reward puts log p_prior in the environment's reward, which "
            "scores the piece without the soprano a harmoniser reads first: use "
            "algo.kl_mode=penalty (its prior reads the same soprano)"
        )
    reference = setup.reference
    kl_coef = resolve_kl_coef(algo["kl_coef"], reference.weight)
    if not reference.configured:
        log.warning("the reward names no prior: KL to the start model is measured, not paid")
    env_reward = setup.env_reward() if kl_mode == "prior_reward" else setup.reward
    make_one, episode = env_factory(setup, env_reward)
    if int(algo["n_steps"]) % episode:
        what = (
            f"length={setup.length}"
            if setup.conditions is None
            else f"the {episode} actions of a harmonisation ({setup.steps} steps x alto, tenor, "
            "bass)"
        )
        raise ValueError(
            f"algo.n_steps={algo['n_steps']} must be a multiple of {what}: every rollout then "
            "holds whole compositions, and resume points fall between them"
        )

    def make_env() -> Monitor:
        return Monitor(make_one())

    env = DummyVecEnv([make_env] * int(algo["n_envs"]))
    model = GeneratorPPO(
        GeneratorPolicy,
        env,
        kl_mode=kl_mode,
        kl_coef=kl_coef,
        kl_pitch_coef=algo.get("kl_pitch_coef"),
        kl_target=algo["kl_target"],
        kl_horizon=int(algo["kl_horizon"]),
        prior=reference.generator,
        event_classes=setup.encoding.event_classes(),
        policy_kwargs=generator_policy_kwargs(setup.generator, algo["value_lr"]),
        seed=setup.seed,
        device=setup.device,
        **{key: algo[key] for key in PPO_KEYS},
    )
    model.policy.load_generator(setup.generator)  # a resume point overwrites these weights
    result = learn(model, settings, setup, lambda: model.policy.generator)
    tuned = model.policy.generator
    return finish(model, setup, result, tuned, tuned, {"algo": "ppo", "kl_mode": kl_mode})
