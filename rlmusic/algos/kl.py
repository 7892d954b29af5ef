"""KL control: how strongly the tuned policy is held to the frozen reference.

Controllers. Fixed: constant coefficients. Adaptive (Ziegler et al. 2019, "Fine-Tuning Language
Models from Human Preferences"): a proportional controller makes the measured per-token KL track
a target, ``beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon)``. A controller
holds the event beta (``coef``) and, when the KL is split, the pitch beta (``pitch_coef``); the
adaptive one moves both by the same factor, since it measures (and targets) the whole KL.

Estimators. ``log pi - log p`` at the policy's samples (the penalty in the reward) and k3 (for
logging) estimate KL(pi || prior) per token. As a *loss*, k3's gradient under the policy's samples
is that of KL(prior || pi), not KL(pi || prior): :func:`kl_loss` is the estimator whose gradient
is the reverse KL's (see its doc).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlmusic.data.encoding import FIRST_PITCH_TOKEN

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
    pitch_coef: float | None = None  # None: the KL is not split (coef weighs all of it)

    def update(self, measured_kl: float, n_tokens: int) -> float:
        return self.coef


@dataclass
class AdaptiveKL:
    coef: float
    target: float
    horizon: int = 10_000  # tokens over which a full correction takes effect
    pitch_coef: float | None = None
    min_coef: float = 1e-3
    max_coef: float = 10.0

    def update(self, measured_kl: float, n_tokens: int) -> float:
        """Move beta (and the pitch beta in proportion) towards the target; the new beta."""
        error = max(-0.2, min(0.2, measured_kl / self.target - 1.0))
        new = self.coef * (1.0 + error * n_tokens / self.horizon)
        new = min(self.max_coef, max(self.min_coef, new))
        if self.pitch_coef is not None and self.coef > 0:
            self.pitch_coef *= new / self.coef
        self.coef = new
        return self.coef


def make_kl_controller(
    coef: float,
    target: float | None = None,
    horizon: int = 10_000,
    pitch_coef: float | None = None,
) -> FixedKL | AdaptiveKL:
    """``target=None`` gives fixed coefficients, a number adaptive ones.

    Args:
        coef: beta (with ``pitch_coef``: the event part's beta).
        target: per-token KL target (None: fixed).
        horizon: tokens over which the adaptive controller makes a full correction.
        pitch_coef: the pitch part's beta (None: the KL is not split).
    """
    for name, value in (("kl_coef", coef), ("kl_pitch_coef", pitch_coef)):
        if value is not None and value < 0:
            raise ValueError(f"algo.{name} must be >= 0, got {value}")
    if target is None:
        return FixedKL(coef, pitch_coef)
    if target <= 0:
        raise ValueError(
            f"algo.kl_target must be > 0 (or null for a fixed coefficient), got {target}"
        )
    return AdaptiveKL(coef, target, horizon, pitch_coef)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)`` at ``tokens``: (..., V), (...) -> (...)."""
    return F.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def split_log_ratio(
    policy_logits: torch.Tensor,
    prior_logits: torch.Tensor,
    tokens: torch.Tensor,
    strikes: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``log pi(x_t) - log p(x_t)`` into an event part and a pitch part, each (...).

    The event is what happens at the step: a note struck (any pitch token), NOTE_OFF or NO_EVENT.
    For a struck pitch ``a``: ``log pi(a) / p(a) = log pi(strike) / p(strike) + log pi(a | strike)
    / p(a | strike)``; a NOTE_OFF or NO_EVENT has no pitch part. The two add up to the whole log
    ratio, so weighting them alike is the ordinary per-token KL; weighting the pitch part more
    holds the melodic line (intervals, key) to the prior while the rhythm may move.
    ``strikes`` (V,) bool marks the tokens that strike a note (``encoding.event_classes() ==
    2``: a chorale's pitch tokens lie in four voice blocks); None: the melody vocabulary's
    (token >= 2).

    >>> logits = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]])
    >>> event, pitch = split_log_ratio(logits, torch.zeros(1, 1, 4), torch.tensor([[2]]))
    >>> round(float(event + pitch), 4) == round(float(token_log_probs(logits, torch.tensor([[2]]))
    ...     - token_log_probs(torch.zeros(1, 1, 4), torch.tensor([[2]]))), 4)
    True
    """
    if strikes is None:
        strikes = torch.arange(policy_logits.shape[-1], device=tokens.device) >= FIRST_PITCH_TOKEN
    strikes = strikes.to(tokens.device)
    is_pitch = strikes[tokens]

    def parts(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logp = F.log_softmax(logits.float(), dim=-1)  # (..., V)
        strike = torch.logsumexp(logp[..., strikes], dim=-1)  # log P(a pitch is struck)
        token = logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        event = torch.where(is_pitch, strike, token)
        return event, torch.where(is_pitch, token - strike, torch.zeros_like(token))

    policy_event, policy_pitch = parts(policy_logits)
    prior_event, prior_pitch = parts(prior_logits)
    return policy_event - prior_event, policy_pitch - prior_pitch


def kl_penalty(
    log_ratio: torch.Tensor,
    coef: float,
    pitch_coef: float | None = None,
    policy_logits: torch.Tensor | None = None,
    prior_logits: torch.Tensor | None = None,
    tokens: torch.Tensor | None = None,
    strikes: torch.Tensor | None = None,
) -> torch.Tensor:
    """The per-token penalty subtracted from the reward: ``beta (log pi - log p)``, or with a
    pitch beta ``beta * event part + pitch_beta * pitch part`` (:func:`split_log_ratio`, which
    needs both models' logits at the sampled tokens)."""
    if pitch_coef is None:
        return coef * log_ratio
    if policy_logits is None or prior_logits is None or tokens is None:
        raise ValueError("a split KL penalty (kl_pitch_coef) needs both models' logits")
    event, pitch = split_log_ratio(policy_logits, prior_logits, tokens, strikes)
    return coef * event + pitch_coef * pitch


def kl_k3(policy_logp: torch.Tensor, prior_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(policy || prior) per sampled token: unbiased and >= 0.

    With r = p_prior / p_policy at the policy's own samples: ``k3 = (r - 1) - log r``.
    """
    log_ratio = prior_logp - policy_logp
    return torch.expm1(log_ratio) - log_ratio


def kl_loss(
    policy_logp: torch.Tensor, prior_logp: torch.Tensor, old_logp: torch.Tensor
) -> torch.Tensor:
    """Per-token loss whose expected gradient is that of KL(pi || prior), at samples of pi_old.

    ``sg(pi / pi_old) * (log pi - log p)^2 / 2``: its gradient is ``(pi / pi_old) (log pi - log
    p) grad log pi``, and under samples of ``pi_old`` that averages to ``E_pi[(log pi - log p)
    grad log pi]``, which is exactly ``grad KL(pi || p)`` (the score function's mean is 0). The
    importance weight keeps it right in the later epochs of an update, when pi has moved from
    the policy that sampled. (k3, ``(r - 1) - log r`` with ``r = p / pi``, estimates the same
    KL's *value* but its gradient is that of KL(p || pi).)
    """
    weight = (policy_logp - old_logp).detach().exp()
    return weight * 0.5 * (policy_logp - prior_logp) ** 2
