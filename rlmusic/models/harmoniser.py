"""Harmonise given sopranos with a harmoniser checkpoint: alto, tenor and bass are sampled,
the soprano's tokens are forced (:mod:`rlmusic.data.harmonisation`'s layout).

>>> from rlmusic.data.chorale_encoding import ChoraleEncoding
>>> from rlmusic.models import LSTMConfig, NoteLSTM
>>> enc = ChoraleEncoding()
>>> model = NoteLSTM(LSTMConfig(vocab_size=enc.vocab_size, embed_dim=8, hidden_size=8,
...                             num_layers=1, dropout=0.0)).eval()
>>> soprano = np.array([38, 1, 1, 1, 40, 1, 1, 1])  # C5 for a quarter, then D5
>>> pieces = harmonise(model, soprano, 2, torch.Generator().manual_seed(0), enc)
>>> pieces.shape, (pieces[:, 0::4] == soprano).all()
((2, 32), np.True_)
"""

from __future__ import annotations

import numpy as np
import torch

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.harmonisation import SOPRANO, conditioning_prefix, forced_tokens
from rlmusic.models.base import Generator
from rlmusic.models.checkpoint import CheckpointError
from rlmusic.models.registry import checkpoint_conditioning
from rlmusic.models.sampling import sample_with_log_probs


class NotAHarmoniserError(CheckpointError):
    """A checkpoint that reads no soprano was given to harmonise (a user error: one line)."""


def check_harmoniser(spec: str) -> None:
    """Refuse a checkpoint that is not a harmoniser (its info records no soprano conditioning).

    Raises:
        NotAHarmoniserError: one line naming the checkpoint and what to give instead.
    """
    if checkpoint_conditioning(spec) != SOPRANO:
        raise NotAHarmoniserError(
            f"checkpoint={spec} is not a harmoniser (it reads no soprano): give one trained "
            "with `rlmusic pretrain condition=soprano` or tuned from one, e.g. "
            "pretrained:chorale_harmoniser"
        )


@torch.no_grad()
def harmonise(
    model: Generator,
    soprano: np.ndarray,
    n: int,
    rng: torch.Generator,
    encoding: ChoraleEncoding,
    temperature: float = 1.0,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """``n`` harmonisations of one soprano.

    Args:
        model: a harmoniser (reads ``[BOS, S.., BOS]``, then writes the piece).
        soprano: (steps,) block-0 tokens of the chorale encoding.
        n: harmonisations, sampled as one batch.
        rng: the only source of randomness (on ``device``).
        encoding: the chorale encoding.
        temperature: > 0; the soprano is forced at any temperature.

    Returns:
        (n, 4 steps) int64 tokens, the soprano's exactly as given.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    rows = np.repeat(np.asarray(soprano, dtype=np.int64)[None], n, axis=0)
    prefix = torch.as_tensor(conditioning_prefix(rows, encoding), device=device)
    forced = torch.as_tensor(forced_tokens(rows, encoding), device=device)
    tokens, _ = sample_with_log_probs(
        model,
        n,
        encoding.tokens_for(rows.shape[1]),
        rng,
        temperature=temperature,
        device=device,
        prefix=prefix,
        forced=forced,
    )
    return tokens.cpu().numpy()
