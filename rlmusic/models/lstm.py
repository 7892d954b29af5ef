"""NoteLSTM: token embedding -> stacked LSTM -> linear head (the RL Tuner's Note RNN, grown up).

It implements the :class:`rlmusic.models.base.Generator` protocol: ``forward`` scores whole
sequences (training, log-probs, value heads) and ``step`` advances the LSTM state one token at a
time for sampling. Inputs may hold BOS (``vocab_size``); outputs never do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, hidden_size)


@dataclass
class LSTMConfig:
    """Everything that shapes a NoteLSTM; saved in its checkpoints.

    Args:
        vocab_size: output classes (the encoding's vocabulary; BOS is one extra input row).
        embed_dim: width of the token embedding.
        hidden_size: width of every LSTM layer.
        num_layers: stacked LSTM layers.
        dropout: on the embedding, between LSTM layers and before the head (training only).
    """

    vocab_size: int = 38
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1


class NoteLSTM(nn.Module):
    """Stacked-LSTM next-token model over the melody grid."""

    arch = "lstm"  # checkpoints name the architecture so a mismatch is caught on load

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.embed = nn.Embedding(config.vocab_size + 1, config.embed_dim)  # +1: the BOS row
        self.lstm = nn.LSTM(
            config.embed_dim,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            # nn.LSTM only applies dropout between layers; one layer would warn
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)

    @property
    def bos_token(self) -> int:
        return self.vocab_size

    def forward_with_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) int64 -> logits (B, T, V) and the last LSTM layer's output (B, T, H)."""
        x = self.drop(self.embed(tokens))  # (B, T, E)
        hidden, _ = self.lstm(x)  # (B, T, H)
        return self.head(self.drop(hidden)), hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 -> logits (B, T, V); position t sees tokens[:, :t+1] only."""
        return self.forward_with_hidden(tokens)[0]

    def step(self, token: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        """(B,) int64 and (h, c) (None: a fresh sequence) -> logits (B, V) and the new (h, c).

        States are never modified in place, so one state may be stepped many times (branching).
        """
        x = self.drop(self.embed(token)).unsqueeze(1)  # (B, 1, E)
        hidden, state = self.lstm(x, state)  # (B, 1, H)
        return self.head(self.drop(hidden[:, 0])), state
