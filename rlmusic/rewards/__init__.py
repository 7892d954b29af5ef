"""Rewards: pure, batched, causal terms and their weighted composite.

A term maps ``tokens (B, T) int`` to ``rewards (B, T) float`` (see :mod:`rlmusic.rewards.base`).
``build_reward(cfg, encoding)`` makes a :class:`CompositeReward` from a ``reward`` config;
``composite.score(tokens) -> (total (B, T), {term: weighted share (B, T)})`` is what
environments and trainers call.
"""

from rlmusic.rewards.base import RewardError, RewardTerm
from rlmusic.rewards.build import build_reward
from rlmusic.rewards.composite import CompositeReward, WeightedTerm
from rlmusic.rewards.registry import build_term, known_terms, register_term

__all__ = [
    "CompositeReward",
    "RewardError",
    "RewardTerm",
    "WeightedTerm",
    "build_reward",
    "build_term",
    "known_terms",
    "register_term",
]
