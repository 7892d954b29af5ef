"""A replay buffer of whole compositions: tokens, per-step rewards and, for G-learning, the
prior's next-token log-probabilities at every position.

Sampling draws whole pieces uniformly (with replacement) and the trainer trains on all their
steps, each weighted 1 / (K T) in the mean loss. When every piece has the same length T, this
has the expected update of uniform transition sampling: with N pieces stored, a stored
transition enters a batch of K pieces K / N times on average (its piece is drawn K / N times,
and every drawn piece brings all its steps), exactly as often as in a batch of K T transitions
drawn uniformly from the N T stored ones, with the same weight. Only the correlation inside a
batch differs (a piece's steps arrive together), not the mean.

A piece's states need not be stored: one forward pass of its tokens gives the network's values
at every position (the state before step t is the prefix ``[BOS, x_0, .., x_{t-1}]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class PieceBatch:
    """Whole compositions drawn from the replay.

    Attributes:
        tokens: (K, T) the notes played.
        rewards: (K, T) the reward of every step.
        prior_log_probs: (K, T, V) log p_prior(. | s_t), or None (only G-learning stores it).
        units: (K, T, C) the constrained terms at weight 1, or None (a run without
            constraints); ``rewards`` then leaves them out (:mod:`.relabel`).
    """

    tokens: torch.Tensor
    rewards: torch.Tensor
    prior_log_probs: torch.Tensor | None = None
    units: torch.Tensor | None = None

    def paid(self, weights: torch.Tensor | None) -> torch.Tensor:
        """The steps' rewards with the constrained terms at ``weights`` (C,)."""
        if self.units is None or weights is None:
            return self.rewards
        return self.rewards + self.units @ weights.to(self.units.device)


class PieceReplay:
    """A ring buffer of ``capacity // length`` compositions (the oldest are overwritten).

    Args:
        capacity: transitions (the paper's 100,000); whole pieces of ``length`` fill it.
        length: steps per composition.
        vocab_size: actions (the stored log-probabilities' last dimension).
        store_prior: keep log p_prior(. | s_t) for every position (G-learning's backup).
        units: constrained terms stored apart at weight 1 (0: none).
        device: where the pieces live (batches come back there).

    Raises:
        ValueError: a capacity below one composition.
    """

    def __init__(
        self,
        capacity: int,
        length: int,
        vocab_size: int,
        store_prior: bool = False,
        device: torch.device | str = "cpu",
        units: int = 0,
    ) -> None:
        self.pieces = int(capacity) // int(length)
        if self.pieces < 1:
            raise ValueError(
                f"a replay of {capacity} transitions holds no composition of {length} steps"
            )
        self.length = int(length)
        self.device = torch.device(device)
        self.tokens = torch.zeros(self.pieces, self.length, dtype=torch.long, device=self.device)
        self.rewards = torch.zeros(self.pieces, self.length, device=self.device)
        self.prior_log_probs = (
            torch.zeros(self.pieces, self.length, int(vocab_size), device=self.device)
            if store_prior
            else None
        )
        self.units = (
            torch.zeros(self.pieces, self.length, int(units), device=self.device) if units else None
        )
        self.position = 0  # the next slot written
        self.size = 0  # slots filled

    def __len__(self) -> int:
        """Compositions stored."""
        return self.size

    @property
    def transitions(self) -> int:
        return self.size * self.length

    def add(
        self,
        tokens: torch.Tensor,
        rewards: torch.Tensor,
        prior_log_probs: torch.Tensor | None = None,
        units: torch.Tensor | None = None,
    ) -> None:
        """Store B whole compositions: tokens (B, T), rewards (B, T), log-probs (B, T, V),
        constrained terms (B, T, C)."""
        if tokens.shape[1:] != (self.length,) or rewards.shape != tokens.shape:
            raise ValueError(
                f"pieces of {self.length} steps expected, got tokens {tuple(tokens.shape)} and "
                f"rewards {tuple(rewards.shape)}"
            )
        if (prior_log_probs is None) != (self.prior_log_probs is None):
            raise ValueError("this replay stores the prior's log-probs exactly when built to")
        if (units is None) != (self.units is None):
            raise ValueError("this replay stores constrained terms exactly when built to")
        batch = len(tokens)
        if batch > self.pieces:  # only the newest fit
            tokens, rewards = tokens[-self.pieces :], rewards[-self.pieces :]
            if prior_log_probs is not None:
                prior_log_probs = prior_log_probs[-self.pieces :]
            if units is not None:
                units = units[-self.pieces :]
            batch = self.pieces
        slots = (self.position + torch.arange(batch, device=self.device)) % self.pieces
        self.tokens[slots] = tokens.to(self.device)
        self.rewards[slots] = rewards.to(self.device, torch.float32)
        if self.prior_log_probs is not None and prior_log_probs is not None:
            self.prior_log_probs[slots] = prior_log_probs.to(self.device, torch.float32)
        if self.units is not None and units is not None:
            self.units[slots] = units.to(self.device, torch.float32)
        self.position = (self.position + batch) % self.pieces
        self.size = min(self.size + batch, self.pieces)

    def sample(self, n: int, generator: torch.Generator) -> PieceBatch:
        """``n`` compositions drawn uniformly with replacement (``generator`` on the CPU)."""
        if self.size == 0:
            raise ValueError("the replay is empty")
        index = torch.randint(self.size, (int(n),), generator=generator).to(self.device)
        prior = self.prior_log_probs[index] if self.prior_log_probs is not None else None
        units = self.units[index] if self.units is not None else None
        return PieceBatch(self.tokens[index], self.rewards[index], prior, units)

    # ---- exact resume --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The filled slots and the write position (tensors and ints only)."""
        state: dict[str, Any] = {
            "position": self.position,
            "size": self.size,
            "tokens": self.tokens[: self.size].to(torch.int16).cpu(),  # 38 tokens fit int16
            "rewards": self.rewards[: self.size].cpu(),
        }
        if self.prior_log_probs is not None:
            state["prior_log_probs"] = self.prior_log_probs[: self.size].cpu()
        if self.units is not None:
            state["units"] = self.units[: self.size].cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output into a buffer of the same shape.

        Raises:
            ValueError: a saved buffer of another capacity, length or content.
        """
        size = int(state["size"])
        saved = tuple(state["tokens"].shape)
        if size > self.pieces or saved != (size, self.length):
            raise ValueError(
                f"the saved replay holds {saved} pieces x steps, which does not fit this run's "
                f"({self.pieces} x {self.length})"
            )
        if ("prior_log_probs" in state) != (self.prior_log_probs is not None):
            raise ValueError("the saved replay and this run differ in storing the prior")
        if ("units" in state) != (self.units is not None):
            raise ValueError("the saved replay and this run differ in reward.constraints")
        self.tokens[:size] = state["tokens"].to(self.device, torch.long)
        self.rewards[:size] = state["rewards"].to(self.device)
        if self.prior_log_probs is not None:
            self.prior_log_probs[:size] = state["prior_log_probs"].to(self.device)
        if self.units is not None:
            self.units[:size] = state["units"].to(self.device)
        self.position = int(state["position"])
        self.size = size
