"""Replayed rewards paid at today's constraint weights, not at the weights of the round that
played them.

``reward.constraints`` move the weights of a few rule terms every round. A replay that keeps
the reward each piece was paid when it was played (100,000 transitions: the last 12 rounds, 6
on average) teaches the Q-network a blend of the last dozen rewards, so it answers a new weight
rounds late and the multipliers, chasing the statistic, overshoot (measured:
docs/results/finetuning.md, "One default reward for every learner"). The rewards are linear in
those weights, so the replay stores each step's reward *without* the constrained terms, plus
those terms' values at weight 1; a replayed batch is paid ``rest + units @ weights`` with the
weights of now. What the learner is trained on is then the reward it is being held to.
"""

from __future__ import annotations

import numpy as np
import torch

from rlmusic.rewards.composite import CompositeReward, WeightedTerm


class ConstrainedTerms:
    """The constrained terms of a reward, at weight 1, and their current weights.

    Args:
        reward: the composite whose terms the constraints re-weight (in place).
        names: the constrained terms.
        scale: what the learner multiplies the task reward by (psi and g: 1 / w; q: 1).
    """

    def __init__(self, reward: CompositeReward, names: list[str], scale: float = 1.0) -> None:
        by_name = {t.name: t for t in reward.terms}
        self.terms = [by_name[name] for name in names]
        self.unit = CompositeReward([WeightedTerm(t.name, t.term, 1.0) for t in self.terms])
        self.scale = float(scale)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    def units(self, tokens: np.ndarray) -> np.ndarray:
        """(B, T, K): each constrained term's per-step value at weight 1, times the scale."""
        _, shares = self.unit.score(tokens)
        return np.stack([shares[name] for name in self.names], axis=-1) * self.scale

    def weights(self) -> torch.Tensor:
        """(K,): the terms' weights now (float32)."""
        return torch.tensor([t.weight for t in self.terms], dtype=torch.float32)
