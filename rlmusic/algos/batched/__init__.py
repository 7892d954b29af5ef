"""The fast on-policy trainer (``algo=batched``): whole compositions sampled at once."""

from rlmusic.algos.batched.run import KL_MODES, train

__all__ = ["KL_MODES", "train"]
