"""KL controllers: how strongly the tuned policy is held to the frozen prior.

Fixed: a constant coefficient. Adaptive (Ziegler et al. 2019, "Fine-Tuning Language Models
from Human Preferences"): the coefficient follows a proportional controller so the measured
per-token KL tracks a target, ``beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The one set of names for where KL control enters, shared by every algorithm's ``kl_mode``.
KL_MODES: dict[str, str] = {
    "penalty": "-beta (log pi - log p_prior) per token, added to the reward before advantages",
    "loss": "beta * k3(pi, p_prior) in the loss (batched only)",
    "prior_reward": "RL Tuner's: +weight * log p_prior in the environment's reward, no log pi term",
}


def check_kl_mode(mode: str, algorithm: str, supported: tuple[str, ...]) -> str:
    """``mode`` if ``algorithm`` supports it, else a ValueError listing what it supports."""
    if mode not in supported:
        known = "; ".join(f"{m} ({KL_MODES[m]})" for m in supported)
        raise ValueError(f"algo.kl_mode={mode!r} is not a mode of algo={algorithm}; known: {known}")
    return mode


@dataclass
class FixedKL:
    coef: float

    def update(self, measured_kl: float, n_tokens: int) -> float:
        return self.coef


@dataclass
class AdaptiveKL:
    coef: float
    target: float
    horizon: int = 10_000  # tokens over which a full correction takes effect
    min_coef: float = 1e-3
    max_coef: float = 10.0

    def update(self, measured_kl: float, n_tokens: int) -> float:
        error = max(-0.2, min(0.2, measured_kl / self.target - 1.0))
        self.coef *= 1.0 + error * n_tokens / self.horizon
        self.coef = min(self.max_coef, max(self.min_coef, self.coef))
        return self.coef


def make_kl_controller(
    coef: float, target: float | None = None, horizon: int = 10_000
) -> FixedKL | AdaptiveKL:
    """``target=None`` gives a fixed coefficient, a number an adaptive one."""
    if coef < 0:
        raise ValueError(f"kl.coef must be >= 0, got {coef}")
    if target is None:
        return FixedKL(coef)
    if target <= 0:
        raise ValueError(f"kl.target must be > 0 (or null for a fixed coefficient), got {target}")
    return AdaptiveKL(coef, target, horizon)


def kl_k3(policy_logp: torch.Tensor, prior_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || prior) per sampled token: unbiased and >= 0.

    With r = p_prior / p_policy at the policy's own samples: ``k3 = (r - 1) - log r``.
    """
    log_ratio = prior_logp - policy_logp
    return torch.expm1(log_ratio) - log_ratio
