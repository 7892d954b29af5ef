"""The prior term: log p_prior(x_t | x_<t) under a frozen generator, one forward for the batch."""

from __future__ import annotations

from typing import Any

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
        self.bos = int(generator.bos_token)

    def _tensor(self, tokens: np.ndarray) -> torch.Tensor:
        tokens = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.generator.vocab_size):
            raise ValueError(
                f"tokens outside the prior's vocabulary 0..{self.generator.vocab_size - 1}"
            )
        return tokens

    @torch.no_grad()
    def score_last(self, tokens: np.ndarray, state: Any | None) -> tuple[np.ndarray, Any]:
        """``log p(x_t | x_<t)`` for the last column ``t`` of ``tokens (B, t + 1)`` only.

        The incremental path environments use: ``state`` (None to start) is what the previous
        call on the same, one-token-shorter sequences returned; the generator steps over the
        inputs it has not read yet (``[BOS, x_0, .., x_{t-1}]``) instead of the whole prefix.
        """
        tokens = self._tensor(tokens)  # (B, T)
        batch, steps = tokens.shape
        generator_state, fed, logits = state if state is not None else (None, 0, None)
        if fed > steps or (logits is not None and logits.shape[0] != batch):
            generator_state, fed, logits = None, 0, None  # a new sequence: start over
        for j in range(fed, steps):  # input j is BOS, then x_{j-1}; its logits predict x_j
            inputs = tokens[:, j - 1] if j else torch.full_like(tokens[:, 0], self.bos)
            logits, generator_state = self.generator.step(inputs, generator_state)
        log_p = torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[:, -1:])[:, 0]
        return log_p.cpu().numpy().astype(np.float64), (generator_state, steps, logits)

    @torch.no_grad()
    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        tokens = self._tensor(tokens)
        chunks = [
            sequence_log_probs(self.generator, tokens[i : i + self.batch_size])
            for i in range(0, len(tokens), self.batch_size)
        ]
        return (
            torch.cat(chunks).cpu().numpy().astype(np.float64) if chunks else np.zeros(tokens.shape)
        )
