"""Rewards: pure, batched, causal terms and their weighted composite.

A term maps ``tokens (B, T) int`` to ``rewards (B, T) float``: the reward each step earns given
its prefix (see :mod:`rlmusic.rewards.base`); a plain function with that signature is a term.
End-of-piece terms (``sequence_level = True``) pay on the last column only.

The stable API (trainers and environments rely on these names and signatures):

* ``build_reward(cfg, encoding, device="cpu") -> CompositeReward`` from a ``reward`` config
  node (``conf/reward/*.yaml``: ``c``, ``tonic``, ``mode``, ``rules``, ``rule_params``,
  ``prior``, ``extra``).
* ``composite.score(tokens (B, T), include_sequence_level=True) -> (total (B, T),
  {term name: weighted share (B, T)})``: whole sequences in one call (one forward of the prior
  for the batch). Shares add up to the total. A term returning NaN/inf or a wrong shape raises
  :class:`RewardError` naming it.
* ``composite.score_last(tokens (B, t + 1), final, state) -> (total (B,), {name: (B,)})``: the
  last step only, for environments; the prior steps its generator one token per call
  (``state``: a dict kept for the episode, ``{}`` to start).
* The prior term is named ``"prior"``; its ``.generator`` is the frozen model.
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
