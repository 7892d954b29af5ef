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
SMALL_BATCH = 32  # below this many sequences, step() on CPU uses the written-out cell


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
        x = self.drop(self.embed(token))  # (B, E)
        if not self.training and x.device.type == "cpu" and x.shape[0] < SMALL_BATCH:
            hidden, state = self._cell_step(x, state)  # (B, H)
        else:
            out, state = self.lstm(x.unsqueeze(1), state)  # (B, 1, H)
            hidden = out[:, 0]
        return self.head(self.drop(hidden)), state

    def _cell_step(
        self, x: torch.Tensor, state: LSTMState | None
    ) -> tuple[torch.Tensor, LSTMState]:
        """nn.LSTM's equations for one step, written out: at small batches on CPU the oneDNN
        kernel behind nn.LSTM spends ~0.5 ms per call on setup, 5x this (eval mode only: no
        dropout between layers)."""
        cfg = self.config
        if state is None:
            zeros = x.new_zeros(cfg.num_layers, x.shape[0], cfg.hidden_size)
            state = (zeros, zeros)
        h_prev, c_prev = state  # each (layers, B, H)
        hs, cs = [], []
        for layer in range(cfg.num_layers):
            w_ih = getattr(self.lstm, f"weight_ih_l{layer}")  # (4H, in)
            w_hh = getattr(self.lstm, f"weight_hh_l{layer}")  # (4H, H)
            bias = getattr(self.lstm, f"bias_ih_l{layer}") + getattr(self.lstm, f"bias_hh_l{layer}")
            gates = torch.addmm(bias, x, w_ih.t()) + h_prev[layer] @ w_hh.t()  # (B, 4H)
            i, f, g, o = gates.chunk(4, dim=1)  # nn.LSTM's gate order
            c = torch.sigmoid(f) * c_prev[layer] + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c)  # (B, H): this layer's h, the next one's input
            hs.append(x)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))
