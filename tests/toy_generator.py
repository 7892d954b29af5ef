"""A tiny GRU that implements the Generator protocol: a fast test double for trainers."""

from __future__ import annotations

import torch
from torch import nn


class ToyGenerator(nn.Module):
    def __init__(self, vocab_size: int = 38, hidden: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size + 1, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    @property
    def bos_token(self) -> int:
        return self.vocab_size

    def forward_with_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, _ = self.rnn(self.embed(tokens))  # (B, T, H)
        return self.head(hidden), hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(tokens)[0]

    def step(
        self, token: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, state = self.rnn(self.embed(token).unsqueeze(1), state)
        return self.head(hidden[:, 0]), state
