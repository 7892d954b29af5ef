"""Fine-tuning setup (temporary home of split_prior while the contract is built)."""

from __future__ import annotations

from typing import Any

from rlmusic.rewards.composite import CompositeReward


def split_prior(reward: CompositeReward) -> tuple[CompositeReward, Any | None, float]:
    """The composite without its prior term, the prior's generator (or None) and its weight."""
    others = [t for t in reward.terms if t.name != "prior"]
    prior = next((t for t in reward.terms if t.name == "prior"), None)
    if prior is None:
        return CompositeReward(others), None, 0.0
    return CompositeReward(others), prior.term.generator, prior.weight
