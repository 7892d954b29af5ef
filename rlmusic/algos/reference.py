"""The reference policy of KL control: a frozen generator every fine-tuning run is held near.

RL Tuner's reward ``log p_prior(a|s) + r_MT / c`` and the KL penalty ``beta (log pi - log
p_prior)`` both read it. It is built once by :func:`rlmusic.algos.finetune_setup.build_setup`, from the
reward preset's ``prior`` node (``{checkpoint, weight}``), and handed to every algorithm as an
object of its own, never as a reward term to be pulled back out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlmusic.models.base import sequence_log_probs
from rlmusic.rewards.composite import CompositeReward, WeightedTerm

PRIOR_TERM = "prior"  # the name the prior's share is logged under (reward/prior)


@dataclass
class Reference:
    """A frozen generator (eval mode, no gradients) and where it came from.

    Attributes:
        generator: the frozen prior.
        spec: the checkpoint spec that rebuilds it (``pretrained:<name>`` or a path); recorded in
            model.zip files and checkpoints, so a policy that reads the prior is rebuilt from it.
        weight: the reward preset's prior weight (RL Tuner: 1); the default KL coefficient.
        configured: False when the reward names no prior and the reference is the start model
            itself (KL is then only measured, with coefficient 0 unless the algorithm sets one).
    """

    generator: nn.Module
    spec: str
    weight: float
    configured: bool = True

    @property
    def vocab_size(self) -> int:
        return int(self.generator.vocab_size)

    @torch.no_grad()
    def log_probs(self, tokens: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """``log p_prior(x_t | x_<t)`` (B, T) for tokens (B, T) on the prior's device, after a
        conditioning ``prefix`` (B, P) when the models are conditioned (a harmoniser)."""
        device = next(self.generator.parameters()).device
        if prefix is not None:
            prefix = prefix.to(device)
        return sequence_log_probs(self.generator, tokens.to(device), prefix)

    def prior_term(self) -> WeightedTerm:
        """The prior as a reward term (``weight * log p_prior``), for environments whose reward
        carries it (RL Tuner's Q / Psi learning, PPO with ``kl_mode=prior_reward``)."""
        from rlmusic.rewards.prior import PriorLogProb

        device = next(self.generator.parameters()).device
        return WeightedTerm(PRIOR_TERM, PriorLogProb(self.generator, device=device), self.weight)

    def with_prior_term(self, reward: CompositeReward) -> CompositeReward:
        """``reward`` plus this prior's term: the paper's full composite."""
        return CompositeReward([*reward.terms, self.prior_term()])
