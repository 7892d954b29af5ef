"""A user's own generators, written as a user would: plain torch, no import of rlmusic.

``TinyGRU`` has only a constructor and ``forward``; ``SteppingGRU`` is the same network with an
incremental ``step`` (the GRU state), so both sample the same melodies from the same weights.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyGRU(nn.Module):
    """Embedding (vocab_size + 1 rows: the start token) -> GRU -> linear head."""

    def __init__(self, vocab_size: int, hidden: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size + 1, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(tokens))  # (B, T, H)
        return self.head(out)  # (B, T, V)


class SteppingGRU(TinyGRU):
    """TinyGRU with ``step``: one token at a time through the GRU state."""

    def step(self, token: torch.Tensor, state: torch.Tensor | None):
        out, state = self.gru(self.embed(token)[:, None], state)  # (B, 1, H)
        return self.head(out[:, 0]), state


class HeadlessGRU(TinyGRU):
    """TinyGRU whose output layer is called ``out``: no temperature can be folded into it."""

    def __init__(self, vocab_size: int, hidden: int = 32) -> None:
        super().__init__(vocab_size, hidden)
        self.out = self.head
        del self.head

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(tokens))
        return self.out(out)
