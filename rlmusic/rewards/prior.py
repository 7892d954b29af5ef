"""The prior term: log p_prior(x_t | x_<t) under a frozen generator, one forward for the batch."""

from __future__ import annotations

import numpy as np
import torch

from rlmusic.models.base import Generator, sequence_log_probs


class PriorLogProb:
    """``log p(x_t | x_<t)`` for every step under a frozen copy of ``generator`` (causal).

    Used with weight 1 in RL Tuner's reward ``r = log p_prior(a|s) + r_MT / c``.
    """

    sequence_level = False

    def __init__(
        self, generator: Generator, device: str | torch.device = "cpu", batch_size: int = 1024
    ) -> None:
        self.generator = generator.to(device).eval()
        for p in self.generator.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        tokens = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.generator.vocab_size):
            raise ValueError(
                f"tokens outside the prior's vocabulary 0..{self.generator.vocab_size - 1}"
            )
        chunks = [
            sequence_log_probs(self.generator, tokens[i : i + self.batch_size])
            for i in range(0, len(tokens), self.batch_size)
        ]
        return (
            torch.cat(chunks).cpu().numpy().astype(np.float64) if chunks else np.zeros(tokens.shape)
        )
