"""RL Tuner's trainer: rounds of B compositions acting together, then the gradient steps the
replay ratio owes, on whole compositions drawn from the replay.

One round reads top to bottom:

1. **Act** — ``n_envs`` compositions, one batched generator step per note (acting.py), with
   epsilon at each step taken from the env-step count (or Boltzmann exploration).
2. **Reward** — the reward function scores the round's B x T steps in one call.
3. **Store** — the whole compositions (and G-learning's prior log-probs) enter the replay.
4. **Learn** — ``gradient_steps_due(env_steps)`` minus those taken: each draws
   ``batch_size / length`` pieces, reads them in one forward pass of the online network (Q at
   every position, with gradients) and one of the target network (no gradients), regresses
   Q(s_t, a_t) on the variant's backup (targets.py), clips the gradient, steps Adam and
   soft-updates the target network by ``tau``.

Dropout is off everywhere, training included: the online network trains in eval mode, the mode
its targets and its acting run in (see docs/rl_tuner.md, "Dropout").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlmusic.algos.rl_tuner.acting import act
from rlmusic.algos.rl_tuner.config import RLTunerConfig
from rlmusic.algos.rl_tuner.relabel import ConstrainedTerms
from rlmusic.algos.rl_tuner.replay import PieceReplay
from rlmusic.algos.rl_tuner.targets import piece_targets
from rlmusic.models.base import fold_temperature, frozen, with_bos
from rlmusic.models.policy import PriorProductGenerator
from rlmusic.runtime import choose_autocast

# (learning reward (B, T), {logged term: (B, T) share})
RewardOut = tuple[np.ndarray, dict[str, np.ndarray]]
# tokens (B, T) int and, when acting stepped the prior, log p_prior of each note played (B, T)
RewardFn = Callable[[np.ndarray, "np.ndarray | None"], RewardOut]


def adam(params: Any, lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch build has a fused kernel for the parameters' device (one
    kernel instead of a dozen per step: ~3% of a gradient step on CPU), else the foreach one."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # torch < 2.4 has no fused CPU Adam
        return torch.optim.Adam(params, lr=lr)


class RLTunerTrainer:
    """Q / Psi / G-learning with a target network, a frozen prior and a whole-piece replay.

    Args:
        q_network: the generator to tune; its logits are the action values (trained in place).
        reward_fn: per-step rewards of whole compositions (the variant's learning reward) and
            the logged terms' shares, from the tokens and (G-learning) the prior's log p of
            each note played.
        config: the run's settings.
        prior: the frozen KL prior (G-learning's backup and policy; logged KL for every variant).
        seed: seeds the acting and replay generators.
        device: where everything runs.
        constrained: the terms ``reward.constraints`` re-weight: replayed pieces are paid at
            their weights of now (:mod:`.relabel`); None: as they were paid when played.
    """

    def __init__(
        self,
        q_network: nn.Module,
        reward_fn: RewardFn,
        config: RLTunerConfig,
        prior: nn.Module,
        seed: int = 0,
        device: torch.device | str = "cpu",
        constrained: ConstrainedTerms | None = None,
    ) -> None:
        self.config = config
        self.constrained = constrained
        self.device = torch.device(device)
        self.q_network = q_network.to(self.device).eval()  # dropout off, for good
        self.target_network = frozen(self.q_network, copy=True)
        self.prior = frozen(prior).to(self.device)
        self.reward_fn = reward_fn
        self.optimizer = adam(self.q_network.parameters(), config.learning_rate)
        # bf16 autocast of the replayed passes where it is native (CPUs included: measured
        # faster at the same learning, docs/results/rl_tuner.md)
        self.autocast = choose_autocast(self.device, config.precision, native_cpu_bf16=True)
        self.precision = self.autocast.name
        self.replay = PieceReplay(
            config.buffer_size,
            config.length,
            int(q_network.vocab_size),
            store_prior=config.variant == "g",
            device=self.device,
            units=len(constrained.terms) if constrained is not None else 0,
        )
        self.act_rng = torch.Generator(device=self.device).manual_seed(int(seed))
        self.replay_rng = torch.Generator().manual_seed(int(seed) + 1)  # CPU: indices
        self.env_steps = 0
        self.gradient_steps = 0
        self.rounds = 0
        self._online = list(self.q_network.parameters())
        self._target = list(self.target_network.parameters())

    # ---- the policy the run trains ---------------------------------------------------------
    def policy(self) -> nn.Module:
        """The trained policy as a generator: q softmax(Q), psi softmax(Psi / c_T) (a copy with
        the temperature folded in, as a loaded checkpoint folds it), g p_prior exp(G)."""
        cfg = self.config
        if cfg.variant == "g":
            return PriorProductGenerator(self.q_network, self.prior).eval()
        if cfg.variant == "psi" and cfg.psi_temperature != 1.0:
            return fold_temperature(frozen(self.q_network, copy=True), cfg.psi_temperature)
        return self.q_network

    # ---- one round ------------------------------------------------------------------------
    def round_size(self) -> int:
        """Compositions the next round plays: ``n_envs``, fewer when the budget ends sooner."""
        left = self.config.total_timesteps - self.env_steps
        return max(0, min(self.config.n_envs, math.ceil(left / self.config.length)))

    def round(self) -> dict[str, float]:
        """Act, reward, store, learn; returns the round's metrics."""
        cfg = self.config
        n = self.round_size()
        if n == 0:
            return {}
        started = time.perf_counter()
        epsilons = None
        if cfg.exploration == "egreedy":
            epsilons = [cfg.epsilon(self.env_steps + t * n) for t in range(cfg.length)]
        rollout = act(
            self.q_network,
            n,
            cfg.length,
            cfg.variant,
            self.act_rng,
            epsilons,
            prior=self.prior if cfg.variant == "g" else None,
            temperature=cfg.boltzmann_temperature,
            psi_temperature=cfg.psi_temperature,
        )
        acted = time.perf_counter()
        played_prior = None
        if rollout.prior_log_probs is not None:
            played_prior = rollout.prior_log_probs.gather(-1, rollout.tokens.unsqueeze(-1))
            played_prior = played_prior.squeeze(-1).cpu().numpy().astype(np.float64)
        rewards, shares = self.reward_fn(rollout.tokens.cpu().numpy(), played_prior)
        units = rest = None
        if self.constrained is not None:  # stored apart, paid at the weights of each replay
            units = torch.as_tensor(self.constrained.units(rollout.tokens.cpu().numpy()))
            units = units.float()
            rest = (
                torch.as_tensor(rewards, dtype=torch.float32) - units @ self.constrained.weights()
            )
        rewarded = time.perf_counter()
        self.replay.add(
            rollout.tokens,
            rest if rest is not None else torch.as_tensor(rewards, dtype=torch.float32),
            rollout.prior_log_probs,
            units,
        )
        self.env_steps += n * cfg.length
        self.rounds += 1
        due = cfg.gradient_steps_due(self.env_steps) - self.gradient_steps
        losses = [self.gradient_step() for _ in range(due)]
        elapsed = time.perf_counter() - started
        metrics = {
            **{f"reward/{name}": float(np.asarray(v).sum(1).mean()) for name, v in shares.items()},
            "reward/learning": float(np.asarray(rewards).sum(1).mean()),
            "rollout/explored_share": rollout.explored,
            "rollout/epsilon": epsilons[-1] if epsilons is not None else 0.0,
            "replay/pieces": float(len(self.replay)),
            "charts/gradient_steps": float(self.gradient_steps),
            "charts/env_steps_per_s": n * cfg.length / elapsed,
            "charts/act_s": acted - started,
            "charts/reward_s": rewarded - acted,
            "charts/learn_s": time.perf_counter() - rewarded,
        }
        if losses:
            for key in losses[0]:
                metrics[key] = float(np.mean([loss[key] for loss in losses]))
        return metrics

    # ---- one gradient step ----------------------------------------------------------------
    def gradient_step(self) -> dict[str, float]:
        """One regression of Q(s_t, a_t) on the backup over ``batch_size / length`` pieces."""
        cfg = self.config
        batch = self.replay.sample(cfg.pieces_per_batch, self.replay_rng)
        inputs = with_bos(batch.tokens, int(self.q_network.bos_token))  # (K, T)
        with self.autocast():
            values = self.q_network(inputs)  # (K, T, V): Q(s_t, .) at every position
            with torch.no_grad():
                target_values = self.target_network(inputs)
        values = values.float()
        with torch.no_grad():
            weights = self.constrained.weights() if self.constrained is not None else None
            targets = piece_targets(
                cfg.variant,
                batch.paid(weights),
                cfg.gamma,
                target_values.float(),
                online_values=values.detach() if cfg.double_q else None,
                prior_log_probs=batch.prior_log_probs,
                psi_temperature=cfg.psi_temperature,
            )
        chosen = values.gather(-1, batch.tokens.unsqueeze(-1)).squeeze(-1)  # (K, T)
        if cfg.loss == "mse":
            loss = F.mse_loss(chosen, targets)
        else:
            loss = F.smooth_l1_loss(chosen, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self._online, cfg.max_grad_norm)
        self.optimizer.step()
        with torch.no_grad():  # Polyak: target <- (1 - tau) target + tau online
            torch._foreach_lerp_(self._target, self._online, cfg.tau)
        self.gradient_steps += 1
        return {
            "losses/td": loss.item(),
            "losses/q_mean": chosen.mean().item(),
            "losses/target_mean": targets.mean().item(),
            "losses/grad_norm": float(grad_norm),
        }

    # ---- exact resume ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything the next update depends on (tensors and plain values only)."""
        return {
            "q_network": self.q_network.state_dict(),
            "target_network": self.target_network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "replay": self.replay.state_dict(),
            "env_steps": self.env_steps,
            "gradient_steps": self.gradient_steps,
            "rounds": self.rounds,
            "act_rng": self.act_rng.get_state(),
            "replay_rng": self.replay_rng.get_state(),
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q_network.load_state_dict(state["q_network"])
        self.target_network.load_state_dict(state["target_network"])
        self.optimizer.load_state_dict(state["optimizer"])
        # the config is the source of truth: a resume allowed to change the learning rate
        # (allow_config_change=true) trains with the new one, not the saved optimizer's
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate
        self.replay.load_state_dict(state["replay"])
        self.env_steps = int(state["env_steps"])
        self.gradient_steps = int(state["gradient_steps"])
        self.rounds = int(state["rounds"])
        self.act_rng.set_state(state["act_rng"])
        self.replay_rng.set_state(state["replay_rng"])
