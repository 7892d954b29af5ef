"""RL Tuner (Jaques et al. 2017): KL-controlled Q-, Psi- and G-learning on SB3's DQN.

The Q-network is a copy of the pretrained generator (its logits are the action values), the
target network a soft-updated copy (tau = 0.01 after every gradient step), the prior a frozen
generator. Per-step reward and one-step targets (``d`` = episode end: no bootstrap across pieces):

- ``q``:   r = log p_prior(a|s) + r_MT / c;  y = r + g (1 - d) max_a' Q_T(s', a')
  (``double_q``: Q_T(s', argmax_a' Q(s', a')));  policy: argmax Q / softmax(Q / T).
- ``psi``: same r;  y = r + g (1 - d) c_T logsumexp_a' Psi_T(s', a') / c_T  (c_T =
  ``psi_temperature``, 1 in the original);  policy: softmax(Psi / c_T).
- ``g``:   r = r_MT / c (no prior term);  y = r + g (1 - d) log sum_a' p_prior(a'|s')
  exp(G_T(s', a'));  policy: softmax(G + log p_prior).

Exploration: ``egreedy`` (SB3's linear epsilon schedule) or ``boltzmann`` (sample the variant's
policy); either way the replay buffer stores the note actually played. Acting steps each
environment's generator state one token per env step; gradient steps and targets read whole
prefixes (see :mod:`rlmusic.algos.sb3.rl_tuner_policy`).

Run folder (:mod:`rlmusic.algos.sb3.common`): ``tuned.safetensors`` (the Q-network as a
generator; for ``g`` the policy also needs the prior, recorded in the checkpoint's info),
``model.zip`` (SB3; no pickled modules: the policy is rebuilt from the architecture's config
and the prior's checkpoint spec), ``resume.pt`` (exact resume, replay buffer included: re-run the
same command with the same output folder), ``progress.csv`` and ``tb/`` (TensorBoard),
``samples/``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import DQN
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from rlmusic.algos.sb3.common import RunSettings, finish, learn
from rlmusic.algos.sb3.rl_tuner_policy import (
    VARIANTS,
    PolicyGenerator,
    RLTunerPolicy,
    prior_spec,
    rl_tuner_policy_kwargs,
)
from rlmusic.algos.setup import FinetuneResult, FinetuneSetup

log = logging.getLogger(__name__)


def td_targets(
    variant: str,
    rewards: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    next_target: torch.Tensor,
    next_online: torch.Tensor | None = None,
    next_prior_log_probs: torch.Tensor | None = None,
    psi_temperature: float = 1.0,
) -> torch.Tensor:
    """One-step targets (B,) from rewards/dones (B,) and next-state values (B, V).

    ``next_online`` (the online network at s') selects the action for Double DQN (``q`` only);
    ``next_prior_log_probs`` (log p_prior(. | s')) is needed by ``g``.
    """
    if variant == "q":
        if next_online is not None:
            best = next_online.argmax(dim=1, keepdim=True)
            value = next_target.gather(1, best).squeeze(1)
        else:
            value = next_target.max(dim=1).values
    elif variant == "psi":
        value = psi_temperature * torch.logsumexp(next_target / psi_temperature, dim=1)
    elif variant == "g":
        if next_prior_log_probs is None:
            raise ValueError("G-learning targets need log p_prior(. | s')")
        value = torch.logsumexp(next_prior_log_probs + next_target, dim=1)
    else:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return rewards.reshape(-1) + gamma * (1.0 - dones.reshape(-1).float()) * value


class RLTunerDQN(DQN):
    """SB3 DQN with RL Tuner's targets, MSE (or Huber) loss and Boltzmann exploration."""

    def __init__(
        self,
        policy: type[RLTunerPolicy],
        env: Any,
        variant: str = "q",
        exploration: str = "egreedy",
        boltzmann_temperature: float = 1.0,
        psi_temperature: float = 1.0,
        double_q: bool = False,
        loss: str = "mse",
        **kwargs: Any,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if exploration not in ("egreedy", "boltzmann"):
            raise ValueError(f"exploration must be egreedy or boltzmann, got {exploration!r}")
        if double_q and variant != "q":
            raise ValueError("double_q applies to variant=q only (psi/g back up a soft value)")
        if loss not in ("mse", "huber"):
            raise ValueError(f"loss must be mse or huber, got {loss!r}")
        self.variant = variant
        self.exploration = exploration
        self.boltzmann_temperature = float(boltzmann_temperature)
        self.psi_temperature = float(psi_temperature)
        self.double_q = bool(double_q)
        self.loss = loss
        policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
        policy_kwargs.update(variant=variant, psi_temperature=self.psi_temperature)
        super().__init__(policy, env, policy_kwargs=policy_kwargs, **kwargs)

    def compute_targets(self, replay_data: Any) -> torch.Tensor:
        with torch.no_grad():
            next_obs = replay_data.next_observations
            next_target = self.q_net_target(next_obs)
            next_online = self.q_net(next_obs) if self.double_q else None
            prior_lp = self.q_net.prior_log_probs(next_obs) if self.variant == "g" else None
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            if torch.is_tensor(discounts):
                discounts = discounts.reshape(-1)
            return td_targets(
                self.variant,
                replay_data.rewards,
                replay_data.dones,
                discounts,
                next_target,
                next_online=next_online,
                next_prior_log_probs=prior_lp,
                psi_temperature=self.psi_temperature,
            )

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses, q_means, target_means = [], [], []
        for _ in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            targets = self.compute_targets(replay_data)
            q_values = self.q_net(replay_data.observations)
            chosen = q_values.gather(1, replay_data.actions.long().reshape(-1, 1)).squeeze(1)
            if self.loss == "mse":
                loss = F.mse_loss(chosen, targets)
            else:
                loss = F.smooth_l1_loss(chosen, targets)
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            losses.append(loss.item())
            q_means.append(chosen.mean().item())
            target_means.append(targets.mean().item())
        if gradient_steps > 0:
            self.q_net.forget_acting_state()  # new weights: the acting states are stale
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))
        self.logger.record("train/q_mean", float(np.mean(q_means)))
        self.logger.record("train/target_mean", float(np.mean(target_means)))

    def predict(
        self,
        observation: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Epsilon-greedy (SB3), or with Boltzmann exploration a sample of the policy.

        ``_sample_action`` stores what this returns, so the buffer holds the note played.
        """
        if deterministic or self.exploration == "egreedy":
            return super().predict(observation, state, episode_start, deterministic)
        self.policy.set_training_mode(False)
        obs, vectorized = self.policy.obs_to_tensor(observation)
        with torch.no_grad():
            logits = self.q_net.policy_logits(obs, self.boltzmann_temperature)  # incremental
            actions = torch.multinomial(F.softmax(logits, dim=-1), 1).squeeze(1)
        actions = actions.cpu().numpy()
        if not vectorized:
            actions = actions.squeeze(0)
        return actions, state

    def policy_generator(self) -> torch.nn.Module:
        """The behaviour policy (greedy: argmax; sampled: softmax) as a generator."""
        net = self.q_net
        if self.variant == "g":
            return PolicyGenerator(net.generator, prior=net.prior)
        if self.variant == "psi" and self.psi_temperature != 1.0:
            return PolicyGenerator(net.generator, temperature=self.psi_temperature)
        return net.generator


DQN_KEYS = (
    "learning_rate",
    "buffer_size",
    "learning_starts",
    "batch_size",
    "tau",
    "gamma",
    "train_freq",
    "gradient_steps",
    "target_update_interval",
    "exploration_fraction",
    "exploration_initial_eps",
    "exploration_final_eps",
    "max_grad_norm",
)


def train(setup: FinetuneSetup, algo_cfg: Mapping[str, Any]) -> FinetuneResult:
    """``rlmusic finetune algo=rl_tuner``: train (or resume) to ``algo.total_timesteps``."""
    from rlmusic.envs.composition import CompositionEnv

    algo = dict(algo_cfg)
    settings = RunSettings.from_setup(setup, algo)
    variant = str(algo["variant"])
    reference = setup.reference
    if variant == "g":
        if not reference.configured:
            raise ValueError("algo.variant=g needs a prior (reward.prior.checkpoint)")
        env_reward = setup.reward  # r_MT / c; the prior enters the backup instead
    else:
        if not reference.configured:
            log.warning("no prior in the reward: %s-learning without KL control", variant)
        env_reward = setup.env_reward() if reference.configured else setup.reward
    env = DummyVecEnv(
        [
            lambda: Monitor(
                CompositionEnv(reward=env_reward, encoding=setup.encoding, length=setup.length)
            )
        ]
    )
    # plain values: model.zip rebuilds the networks from them, never from a pickled module
    prior_checkpoint = prior_spec(reference.spec) if variant == "g" else None
    model = RLTunerDQN(
        RLTunerPolicy,
        env,
        variant=variant,
        exploration=str(algo["exploration"]),
        boltzmann_temperature=float(algo["boltzmann_temperature"]),
        psi_temperature=float(algo["psi_temperature"]),
        double_q=bool(algo["double_q"]),
        loss=str(algo["loss"]),
        policy_kwargs=rl_tuner_policy_kwargs(setup.generator, prior_checkpoint),
        seed=setup.seed,
        device=setup.device,
        **{key: algo[key] for key in DQN_KEYS},
    )
    model.policy.load_generator(setup.generator)  # Q- and target networks start as the model
    result = learn(model, settings, setup, model.policy_generator)
    info: dict[str, Any] = {
        "algo": "rl_tuner",
        "variant": variant,
        "policy": {
            "q": "softmax(logits)",
            "psi": f"softmax(logits / {model.psi_temperature})",
            "g": "softmax(logits + log p_prior)",
        }[variant],
    }
    if variant == "g":
        info["prior"] = prior_checkpoint
    return finish(model, setup, result, model.q_net.generator, model.policy_generator(), info)
