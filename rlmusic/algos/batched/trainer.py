"""The fast on-policy trainer: B compositions sampled at once, PPO / GRPO / RLOO with KL control.

One iteration reads top to bottom (cleanrl style):

1. **Rollout** — sample ``B`` compositions of ``T`` steps with the generator's incremental
   ``step`` (LSTM state / KV cache), keeping each token's log-probability.
2. **Reward** — the reward composite scores all ``B x T`` steps in one call; the frozen prior
   scores them in one forward pass; the per-token KL ``log pi - log p_prior`` enters the reward
   (``kl_mode=penalty``, RL Tuner / Ziegler et al.) or the loss as k3 (``kl_mode=loss``).
3. **Advantages** — GAE with a value head on the generator's hidden state (``ppo``), or group
   baselines without a critic (``grpo``, ``rloo``).
4. **Update** — a few epochs of clipped policy-gradient minibatches, one forward pass per
   sequence per minibatch, gradient clipping; bf16 autocast on CUDA.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlmusic.algos.advantages import gae, group_advantages
from rlmusic.algos.kl import check_kl_mode, kl_k3, make_kl_controller
from rlmusic.data.encoding import FIRST_PITCH_TOKEN
from rlmusic.models.base import frozen, with_bos
from rlmusic.models.sampling import sample_with_log_probs

# tokens (B, T) int -> (total reward (B, T), {term name: (B, T)})
RewardFn = Callable[[np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass
class BatchedConfig:
    method: str = "ppo"  # ppo (value head + GAE) | grpo | rloo (group baselines, no critic)
    batch_size: int = 256  # compositions per iteration
    group_size: int = 16  # grpo / rloo: compositions sharing a baseline
    length: int = 32  # steps per composition
    lr: float = 2e-5
    value_lr: float = 1e-3
    epochs: int = 2
    minibatch_size: int = 128
    clip_range: float = 0.2
    gamma: float = 1.0
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    kl_coef: float = 0.2  # beta: weight of KL(pi || prior) per token
    # beta on the pitch part of the KL (which pitch, given that a note is struck); None: kl_coef.
    # kl_coef then weighs only the event part (strike / hold / rest): see split_log_ratio.
    # Applies to kl_mode=penalty; an adaptive kl_target moves kl_coef, not this one.
    kl_pitch_coef: float | None = None
    kl_target: float | None = None  # a number makes the coefficient adaptive (Ziegler et al.)
    kl_horizon: int = 100_000
    kl_mode: str = "penalty"  # penalty (per-token, in the reward) | loss (k3 in the loss)
    max_grad_norm: float = 1.0
    normalize_advantages: bool = True
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("ppo", "grpo", "rloo"):
            raise ValueError(f"algo.method={self.method!r}; known: ppo, grpo, rloo")
        check_kl_mode(self.kl_mode, "batched", ("penalty", "loss"))
        if self.method != "ppo" and self.batch_size % self.group_size:
            raise ValueError(
                f"algo.batch_size={self.batch_size} must be a multiple of algo.group_size={self.group_size}"
            )
        if self.batch_size % self.minibatch_size:
            raise ValueError(
                f"algo.batch_size={self.batch_size} must be a multiple of algo.minibatch_size={self.minibatch_size}"
            )


class ValueHead(nn.Module):
    """A linear value on the generator's last hidden layer, started at zero."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden).squeeze(-1)  # (B, T)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def split_log_ratio(
    policy_logits: torch.Tensor, prior_logits: torch.Tensor, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``log pi(x_t) - log p(x_t)`` into an event part and a pitch part, each (B, T).

    The event is what happens at the step: a note struck (any pitch token), NOTE_OFF or NO_EVENT.
    For a struck pitch ``a``: ``log pi(a) / p(a) = log pi(strike) / p(strike) + log pi(a | strike)
    / p(a | strike)``; a NOTE_OFF or NO_EVENT has no pitch part. The two add up to the whole log
    ratio, so weighting them alike is the ordinary per-token KL; weighting the pitch part more
    holds the melodic line (intervals, key) to the prior while the rhythm may move.

    >>> logits = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])
    >>> event, pitch = split_log_ratio(logits, torch.zeros(1, 1, 4), torch.tensor([[2]]))
    >>> round(float(event + pitch), 4) == round(float(token_log_probs(logits, torch.tensor([[2]]))
    ...     - token_log_probs(torch.zeros(1, 1, 4), torch.tensor([[2]]))), 4)
    True
    """
    first = FIRST_PITCH_TOKEN

    def parts(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
        strike = torch.logsumexp(logp[..., first:], dim=-1)  # log P(a pitch is struck)
        token = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        is_pitch = tokens >= first
        event = torch.where(is_pitch, strike, token)
        return event, torch.where(is_pitch, token - strike, torch.zeros_like(token))

    policy_event, policy_pitch = parts(policy_logits)
    prior_event, prior_pitch = parts(prior_logits)
    return policy_event - prior_event, policy_pitch - prior_pitch


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
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.policy = policy.to(self.device)
        self.prior = frozen(prior if prior is not None else policy, copy=prior is None)
        self.prior.to(self.device)
        hidden = self._hidden_size()
        self.value_head = ValueHead(hidden).to(self.device)
        self.reward_fn = reward_fn
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.policy.parameters(), "lr": config.lr},
                {"params": self.value_head.parameters(), "lr": config.value_lr},
            ],
            eps=1e-5,
        )
        self.kl = make_kl_controller(config.kl_coef, config.kl_target, config.kl_horizon)
        self.rng = torch.Generator(device=self.device).manual_seed(seed)
        self.minibatch_rng = np.random.default_rng(seed)
        self.iteration = 0
        self.autocast = self.device.type == "cuda"

    def _hidden_size(self) -> int:
        probe = torch.full((1, 1), self.policy.bos_token, dtype=torch.long, device=self.device)
        with torch.no_grad():
            _, hidden = self.policy.forward_with_hidden(probe)
        return hidden.shape[-1]

    def _forward(self, model: nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return model.forward_with_hidden(with_bos(tokens, model.bos_token))

    # ---- one iteration -----------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """Rollout, reward, advantages, update: returns the iteration's metrics."""
        cfg = self.config
        started = time.perf_counter()
        self.policy.eval()
        tokens, old_logp = sample_with_log_probs(
            self.policy, cfg.batch_size, cfg.length, self.rng, cfg.temperature, self.device
        )
        sampled = time.perf_counter()
        reward_np, terms = self.reward_fn(tokens.cpu().numpy())
        task_reward = torch.as_tensor(reward_np, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            prior_logits, _ = self._forward(self.prior, tokens)
            prior_logp = token_log_probs(prior_logits, tokens)
            # the policy's own pass is needed only by the critic and the split KL
            if cfg.method == "ppo" or cfg.kl_pitch_coef is not None:
                policy_logits, hidden = self._forward(self.policy, tokens)
                old_values = self.value_head(hidden.float())
        kl_per_token = old_logp - prior_logp  # (B, T), its mean estimates KL(pi || prior)
        beta = self.kl.coef
        if cfg.kl_pitch_coef is None:
            penalty = beta * kl_per_token
        else:
            event_kl, pitch_kl = split_log_ratio(policy_logits, prior_logits, tokens)
            penalty = beta * event_kl + cfg.kl_pitch_coef * pitch_kl
        rewards = task_reward - penalty if cfg.kl_mode == "penalty" else task_reward
        if cfg.method == "ppo":
            advantages, returns = gae(rewards, old_values, cfg.gamma, cfg.gae_lambda)
        else:
            advantages = group_advantages(rewards, cfg.group_size, cfg.gamma, cfg.method)
            returns = advantages
        if cfg.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        # dropout stays off: the ratio must compare the same function that sampled the tokens
        self.policy.eval()
        stats: dict[str, list[float]] = {
            k: [] for k in ("pg", "vf", "entropy", "k3", "clipfrac", "approx_kl")
        }
        for _ in range(cfg.epochs):
            order = torch.as_tensor(
                self.minibatch_rng.permutation(cfg.batch_size), device=self.device
            )
            for start in range(0, cfg.batch_size, cfg.minibatch_size):
                idx = order[start : start + cfg.minibatch_size]
                logits, hidden = self._forward(self.policy, tokens[idx])
                logp_all = F.log_softmax(logits.float(), dim=-1)
                logp = logp_all.gather(-1, tokens[idx].unsqueeze(-1)).squeeze(-1)
                log_ratio = logp - old_logp[idx]
                ratio = log_ratio.exp()
                adv = advantages[idx]
                pg_loss = -torch.min(
                    ratio * adv, ratio.clamp(1 - cfg.clip_range, 1 + cfg.clip_range) * adv
                ).mean()
                entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
                k3 = kl_k3(logp, prior_logp[idx]).mean()
                loss = pg_loss - cfg.ent_coef * entropy
                if cfg.kl_mode == "loss":
                    loss = loss + beta * k3
                if cfg.method == "ppo":
                    vf_loss = F.mse_loss(self.value_head(hidden.float()), returns[idx])
                    loss = loss + cfg.vf_coef * vf_loss
                    stats["vf"].append(vf_loss.item())
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(
                    list(self.policy.parameters()) + list(self.value_head.parameters()),
                    cfg.max_grad_norm,
                )
                self.optimizer.step()
                stats["pg"].append(pg_loss.item())
                stats["entropy"].append(entropy.item())
                stats["k3"].append(k3.item())
                stats["clipfrac"].append(((ratio - 1).abs() > cfg.clip_range).float().mean().item())
                stats["approx_kl"].append(((ratio - 1) - log_ratio).mean().item())
        self.iteration += 1
        measured_kl = kl_per_token.mean().item()
        new_beta = self.kl.update(measured_kl, cfg.batch_size * cfg.length)
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
            "policy/onsets_per_piece": (tokens >= FIRST_PITCH_TOKEN).sum(1).float().mean().item(),
            "losses/policy": float(np.mean(stats["pg"])),
            "losses/k3": float(np.mean(stats["k3"])),
            "losses/clipfrac": float(np.mean(stats["clipfrac"])),
            "losses/approx_kl": float(np.mean(stats["approx_kl"])),
            "charts/tokens_per_s": cfg.batch_size * cfg.length / elapsed,
            "charts/rollout_s": sampled - started,
            "charts/iteration_s": elapsed,
        }
        if stats["vf"]:
            metrics["losses/value"] = float(np.mean(stats["vf"]))
        return metrics

    # ---- state for checkpoints and exact resume ----------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "value_head": self.value_head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "kl_coef": torch.tensor(self.kl.coef, dtype=torch.float64),
            "iteration": torch.tensor(self.iteration),
            "rng": self.rng.get_state(),
            "minibatch_rng": self.minibatch_rng.bit_generator.state,  # plain dict of ints
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value_head.load_state_dict(state["value_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        # the config is the source of truth: a resume allowed to change the learning rates
        # (allow_config_change=true) trains with the new ones, not the saved optimizer's
        for group, lr in zip(self.optimizer.param_groups, (self.config.lr, self.config.value_lr)):
            group["lr"] = lr
        self.kl.coef = float(state["kl_coef"])
        self.iteration = int(state["iteration"])
        self.rng.set_state(state["rng"])
        self.minibatch_rng.bit_generator.state = state["minibatch_rng"]
