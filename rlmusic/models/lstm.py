"""NoteLSTM: token embedding -> stacked LSTM -> linear head (the RL Tuner's Note RNN, grown up).

It implements the :class:`rlmusic.models.base.Generator` protocol: ``forward`` scores whole
sequences (training, log-probs, value heads), ``step`` advances the LSTM state one token at a
time for sampling and ``prefill`` reads a prefix and returns the state to step on from. Inputs
may hold BOS (``vocab_size``); outputs never do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, hidden_size)
SMALL_BATCH = 32  # below this many sequences, step() on CPU steps torch.lstm_cell per layer
SHORT_PREFIX = 6  # prefill() on CPU steps the cell through prefixes this short (see there)


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

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, LSTMState]:
        """(B, T) int64 -> logits (B, T, V) and the (h, c) after the last token.

        ``step`` goes on from the returned state as if it had read ``tokens`` itself. Short
        prefixes at small batches on CPU step the cell instead: each nn.LSTM call pays a fixed
        oneDNN setup (~5 cell steps' worth at batch 1), which a few tokens never earn back.
        """
        batch, steps = tokens.shape
        if steps == 0:
            raise ValueError("prefill needs at least one token (BOS starts a sequence)")
        small = not self.training and tokens.device.type == "cpu" and batch < SMALL_BATCH
        if small and steps <= SHORT_PREFIX:
            state, logits = None, []
            for t in range(steps):
                step_logits, state = self.step(tokens[:, t], state)
                logits.append(step_logits)
            return torch.stack(logits, dim=1), state  # (B, T, V)
        hidden, state = self.lstm(self.drop(self.embed(tokens)))  # (B, T, H)
        return self.head(self.drop(hidden)), state

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
        """nn.LSTM's equations for one step, one fused ``torch.lstm_cell`` per layer: at small
        batches on CPU the oneDNN kernel behind nn.LSTM spends ~0.5 ms per call on setup, 5x
        this (eval mode only: no dropout between layers). ``lstm_cell`` takes nn.LSTM's own
        weights and gate order; it is ~15% faster than the cell written out in tensor ops."""
        cfg = self.config
        if state is None:
            zeros = x.new_zeros(cfg.num_layers, x.shape[0], cfg.hidden_size)
            state = (zeros, zeros)
        h_prev, c_prev = state  # each (layers, B, H)
        hs, cs = [], []
        for layer in range(cfg.num_layers):
            h, c = torch.lstm_cell(
                x,
                (h_prev[layer], c_prev[layer]),
                getattr(self.lstm, f"weight_ih_l{layer}"),  # (4H, in)
                getattr(self.lstm, f"weight_hh_l{layer}"),  # (4H, H)
                getattr(self.lstm, f"bias_ih_l{layer}"),
                getattr(self.lstm, f"bias_hh_l{layer}"),
            )
            x = h  # (B, H): this layer's h, the next one's input
            hs.append(h)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))
