"""The fast on-policy trainer: B compositions sampled at once, PPO / GRPO / RLOO with KL control.

One iteration reads top to bottom (cleanrl style):

1. **Rollout** — sample ``B`` compositions of ``T`` steps with the generator's incremental
   ``step`` (LSTM state / KV cache), keeping each token's log-probability.
2. **Reward** — the reward composite scores all ``B x T`` steps in one call; the frozen prior
   scores them in one forward pass; the per-token KL ``log pi - log p_prior`` enters the reward
   (``kl_mode=penalty``, RL Tuner / Ziegler et al.) or the loss (``kl_mode=loss``, an estimator
   whose gradient is KL(pi || prior)'s: :func:`rlmusic.algos.kl.kl_loss`).
3. **Advantages** — GAE with :class:`rlmusic.algos.value.ValueFunction` on the generator's
   *detached* hidden state (``ppo``), or group baselines without a critic (``grpo``, ``rloo``).
4. **Update** — a few epochs of clipped policy-gradient minibatches, one forward pass per
   sequence per minibatch; the generator's and the value function's gradients are clipped and
   stepped apart (the value loss never moves the generator); bf16 autocast on CUDA.

``temperature`` != 1 is folded into the generator's output layer before the first update
(:func:`rlmusic.models.base.fold_temperature`): the tempered model is the policy that acts, is
trained, is held to the prior and is saved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlmusic.algos.advantages import gae, group_advantages
from rlmusic.algos.batched.config import BatchedConfig
from rlmusic.algos.kl import (
    kl_k3,
    kl_loss,
    kl_penalty,
    make_kl_controller,
    token_log_probs,
)
from rlmusic.algos.value import ValueFunction, explained_variance
from rlmusic.models.base import fold_temperature, frozen, with_bos
from rlmusic.models.conditions import Conditions
from rlmusic.models.sampling import sample_with_log_probs
from rlmusic.runtime import choose_autocast

# tokens (B, T) int -> (total reward (B, T), {term name: (B, T)})
RewardFn = Callable[[np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]]


class BatchedTrainer:
    """PPO / GRPO / RLOO on whole compositions, with a frozen copy of the start model as prior."""

    def __init__(
        self,
        policy: nn.Module,
        reward_fn: RewardFn,
        config: BatchedConfig,
        seed: int = 0,
        prior: nn.Module | None = None,
        device: str | torch.device = "cpu",
        event_classes: np.ndarray | None = None,
        conditions: Conditions | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.policy = policy.to(self.device)
        self.prior = frozen(prior if prior is not None else policy, copy=prior is None)
        self.prior.to(self.device)
        if config.temperature != 1.0:
            fold_temperature(self.policy, config.temperature)  # after the prior's copy
        self.value_fn = ValueFunction(self._hidden_size(), config.length).to(self.device)
        self.reward_fn = reward_fn
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr, eps=1e-5)
        self.value_optimizer = torch.optim.Adam(
            self.value_fn.parameters(), lr=config.value_lr, eps=1e-5
        )
        self.kl = make_kl_controller(
            config.kl_coef, config.kl_target, config.kl_horizon, config.kl_pitch_coef
        )
        # the encoding's events per token (0 off, 1 hold, 2 strike): the split KL's and the
        # onsets' reading of the vocabulary; None: the melody vocabulary's
        vocab = int(self.policy.vocab_size)
        classes = np.minimum(np.arange(vocab), 2) if event_classes is None else event_classes
        if len(classes) != vocab:
            raise ValueError(
                f"event_classes has {len(classes)} tokens, the policy's vocabulary {vocab}"
            )
        self.strikes = torch.as_tensor(np.asarray(classes) == 2, device=self.device)
        self.rng = torch.Generator(device=self.device).manual_seed(seed)
        self.minibatch_rng = np.random.default_rng(seed)
        # a conditioned policy (a harmoniser): what each rollout is given (its own stream, so
        # an unconditional run's draws do not move)
        self.conditions = conditions
        self.condition_rng = np.random.default_rng([seed, 1])
        self.iteration = 0
        self.autocast = choose_autocast(self.device)  # bf16 on GPUs that have it; CPU fp32

    def _hidden_size(self) -> int:
        probe = torch.full((1, 1), self.policy.bos_token, dtype=torch.long, device=self.device)
        with torch.no_grad():
            _, hidden = self.policy.forward_with_hidden(probe)
        return hidden.shape[-1]

    def _forward(
        self, model: nn.Module, tokens: torch.Tensor, prefix: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and hidden states (B, T, .) at the piece's tokens; a ``prefix`` (B, P) is
        read between BOS and the piece (a conditioning) and its positions dropped."""
        if prefix is None:
            with self.autocast():
                return model.forward_with_hidden(with_bos(tokens, model.bos_token))
        with self.autocast():
            logits, hidden = model.forward_with_hidden(
                with_bos(torch.cat([prefix, tokens], dim=1), model.bos_token)
            )
        skip = prefix.shape[1]
        return logits[:, skip:], hidden[:, skip:]

    def _draw_conditions(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The rollout's prefix (B, P) and forced tokens (B, T), or None, None."""
        if self.conditions is None:
            return None, None
        cfg = self.config
        group = cfg.group_size if cfg.method != "ppo" else 1
        prefix, forced = self.conditions.draw(cfg.batch_size // group, group, self.condition_rng)
        if forced.shape != (cfg.batch_size, cfg.length):
            raise ValueError(
                f"the conditions force {forced.shape[1]} tokens a piece, the run writes "
                f"{cfg.length}: give sopranos of {cfg.length // 4} steps"
            )
        return (
            torch.as_tensor(prefix, device=self.device),
            torch.as_tensor(forced, device=self.device),
        )

    # ---- one iteration -----------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """Rollout, reward, advantages, update: returns the iteration's metrics."""
        cfg = self.config
        started = time.perf_counter()
        self.policy.eval()
        prefix, forced = self._draw_conditions()
        # temperature 1: a configured temperature is already folded into the policy
        tokens, old_logp = sample_with_log_probs(
            self.policy, cfg.batch_size, cfg.length, self.rng, 1.0, self.device, prefix, forced
        )
        # the tokens the policy chose: a forced token is no action (no loss, KL or entropy)
        acts = (forced < 0).float() if forced is not None else torch.ones_like(old_logp)
        sampled = time.perf_counter()
        reward_np, terms = self.reward_fn(tokens.cpu().numpy())
        task_reward = torch.as_tensor(reward_np, dtype=torch.float32, device=self.device)
        positions = torch.arange(cfg.length, device=self.device).expand(cfg.batch_size, -1)
        split = cfg.kl_mode == "penalty" and self.kl.pitch_coef is not None
        with torch.no_grad():
            prior_logits, _ = self._forward(self.prior, tokens, prefix)
            prior_logp = token_log_probs(prior_logits, tokens)
            # the policy's own pass is needed only by the critic and the split KL
            if cfg.method == "ppo" or split:
                policy_logits, hidden = self._forward(self.policy, tokens, prefix)
                old_values = self.value_fn(hidden.float(), positions)
        # (B, T), its mean over actions estimates KL(pi || prior)
        kl_per_token = (old_logp - prior_logp) * acts
        beta, pitch_beta = self.kl.coef, self.kl.pitch_coef
        rewards = task_reward
        if cfg.kl_mode == "penalty":
            penalty = kl_penalty(
                kl_per_token,
                beta,
                pitch_beta,
                policy_logits if split else None,
                prior_logits if split else None,
                tokens if split else None,
                self.strikes,
            )
            rewards = task_reward - penalty * acts
        if cfg.method == "ppo":
            advantages, returns = gae(rewards, old_values, cfg.gamma, cfg.gae_lambda)
            self.value_fn.update_statistics(returns)  # PopArt: predictions unchanged
        else:
            advantages = group_advantages(rewards, cfg.group_size, cfg.gamma, cfg.method)
            returns = advantages
        if cfg.normalize_advantages:
            chosen = advantages[acts.bool()]
            advantages = (advantages - chosen.mean()) / (chosen.std() + 1e-8)

        # dropout stays off: the ratio must compare the same function that sampled the tokens
        self.policy.eval()
        stats: dict[str, list[float]] = {
            k: [] for k in ("pg", "vf", "entropy", "k3", "clipfrac", "approx_kl", "grad_norm")
        }
        policy_params = list(self.policy.parameters())
        value_params = list(self.value_fn.parameters())
        for _ in range(cfg.epochs):
            order = torch.as_tensor(
                self.minibatch_rng.permutation(cfg.batch_size), device=self.device
            )
            for start in range(0, cfg.batch_size, cfg.minibatch_size):
                idx = order[start : start + cfg.minibatch_size]
                logits, hidden = self._forward(
                    self.policy, tokens[idx], None if prefix is None else prefix[idx]
                )
                mask = acts[idx]
                n_acts = mask.sum().clamp(min=1.0)
                logp_all = F.log_softmax(logits.float(), dim=-1)
                logp = logp_all.gather(-1, tokens[idx].unsqueeze(-1)).squeeze(-1)
                log_ratio = logp - old_logp[idx]
                ratio = log_ratio.exp()
                adv = advantages[idx]
                surrogate = torch.min(
                    ratio * adv, ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * adv
                )
                pg_loss = -(surrogate * mask).sum() / n_acts
                entropy = (-(logp_all.exp() * logp_all).sum(-1) * mask).sum() / n_acts
                loss = pg_loss - cfg.ent_coef * entropy
                if cfg.kl_mode == "loss":
                    kl_term = kl_loss(logp, prior_logp[idx], old_logp[idx])
                    loss = loss + beta * (kl_term * mask).sum() / n_acts
                if cfg.method == "ppo":
                    # detached hidden state: this loss reaches only the value function
                    vf_loss = self.value_fn.loss(hidden.float(), positions[idx], returns[idx])
                    loss = loss + cfg.vf_coef * vf_loss
                    stats["vf"].append(vf_loss.item())
                self.optimizer.zero_grad(set_to_none=True)
                self.value_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # apart: a large value gradient must not shrink the policy's step
                grad_norm = nn.utils.clip_grad_norm_(policy_params, cfg.max_grad_norm)
                self.optimizer.step()
                if cfg.method == "ppo":
                    nn.utils.clip_grad_norm_(value_params, cfg.max_grad_norm)
                    self.value_optimizer.step()
                stats["grad_norm"].append(float(grad_norm))
                stats["pg"].append(pg_loss.item())
                stats["entropy"].append(entropy.item())
                k3 = kl_k3(logp.detach(), prior_logp[idx])
                stats["k3"].append(((k3 * mask).sum() / n_acts).item())
                clipped = ((ratio - 1).abs() > cfg.clip_range).float()
                stats["clipfrac"].append(((clipped * mask).sum() / n_acts).item())
                approx = (ratio - 1) - log_ratio
                stats["approx_kl"].append(((approx.detach() * mask).sum() / n_acts).item())
        self.iteration += 1
        n_chosen = int(acts.sum().item())
        measured_kl = kl_per_token.sum().item() / max(1, n_chosen)
        new_beta = self.kl.update(measured_kl, n_chosen)
        elapsed = time.perf_counter() - started
        metrics = {
            "reward/total": task_reward.sum(1).mean().item(),
            **{f"reward/{name}": float(np.asarray(v).sum(1).mean()) for name, v in terms.items()},
            "kl/prior_per_token": measured_kl,
            "kl/coef": new_beta,
            "policy/entropy": float(np.mean(stats["entropy"])),
            "policy/distinct_share": len({row.tobytes() for row in tokens.cpu().numpy()})
            / cfg.batch_size,
            # notes struck per composition: falls toward 1 when a run collapses to held notes
            "policy/onsets_per_piece": self.strikes[tokens].sum(1).float().mean().item(),
            "losses/policy": float(np.mean(stats["pg"])),
            "losses/k3": float(np.mean(stats["k3"])),
            "losses/clipfrac": float(np.mean(stats["clipfrac"])),
            "losses/approx_kl": float(np.mean(stats["approx_kl"])),
            "losses/grad_norm": float(np.mean(stats["grad_norm"])),
            "charts/tokens_per_s": cfg.batch_size * cfg.length / elapsed,
            "charts/rollout_s": sampled - started,
            "charts/iteration_s": elapsed,
        }
        if self.kl.pitch_coef is not None:
            metrics["kl/pitch_coef"] = float(self.kl.pitch_coef)
        if stats["vf"]:
            metrics["losses/value"] = float(np.mean(stats["vf"]))
            metrics["losses/explained_variance"] = explained_variance(old_values, returns)
        return metrics

    # ---- state for checkpoints and exact resume ----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "policy": self.policy.state_dict(),
            "value_fn": self.value_fn.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "value_optimizer": self.value_optimizer.state_dict(),
            "kl_coef": torch.tensor(self.kl.coef, dtype=torch.float64),
            "iteration": torch.tensor(self.iteration),
            "rng": self.rng.get_state(),
            "minibatch_rng": self.minibatch_rng.bit_generator.state,  # plain dict of ints
            "condition_rng": self.condition_rng.bit_generator.state,
            "config": asdict(self.config),
        }
        if self.kl.pitch_coef is not None:
            state["kl_pitch_coef"] = torch.tensor(self.kl.pitch_coef, dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "value_fn" not in state:
            raise ValueError(
                "this trainer state was written by an older release (a value head shared with "
                "the generator): start the run again in a new output folder (hydra.run.dir)"
            )
        self.policy.load_state_dict(state["policy"])
        self.value_fn.load_state_dict(state["value_fn"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.value_optimizer.load_state_dict(state["value_optimizer"])
        # the config is the source of truth: a resume allowed to change the learning rates
        # (allow_config_change=true) trains with the new ones, not the saved optimizer's
        for optimizer, lr in (
            (self.optimizer, self.config.lr),
            (self.value_optimizer, self.config.value_lr),
        ):
            for group in optimizer.param_groups:
                group["lr"] = lr
        self.kl.coef = float(state["kl_coef"])
        if "kl_pitch_coef" in state:
            self.kl.pitch_coef = float(state["kl_pitch_coef"])
        self.iteration = int(state["iteration"])
        self.rng.set_state(state["rng"])
        self.minibatch_rng.bit_generator.state = state["minibatch_rng"]
        if "condition_rng" in state:  # older resume points: unconditional runs
            self.condition_rng.bit_generator.state = state["condition_rng"]
