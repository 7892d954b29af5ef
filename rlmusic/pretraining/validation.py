"""Validation numbers: NLL per token, perplexity and next-token accuracy over tune windows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlmusic.pretraining.windows import (
    IGNORE,
    BatchFn,
    iter_batches,
    make_batch,
    valid_windows,
    with_bos_np,
)
from rlmusic.runtime import choose_autocast


@torch.no_grad()
def window_sums(
    model: nn.Module,
    seqs: Sequence[np.ndarray],
    rows: np.ndarray,
    window: int,
    batch_size: int,
    device: torch.device,
    batch_fn: BatchFn | None = None,
) -> tuple[float, float, float]:
    """(NLL sum in nats, correct next-token guesses, tokens) over ``rows`` of (tune, offset).

    ``batch_fn`` lays a batch of rows out as (inputs, targets); None: the windows as read."""
    autocast = choose_autocast(device)
    was_training = model.training
    model.eval()
    nll, correct, count = 0.0, 0.0, 0.0
    for batch in iter_batches(rows, batch_size, drop_last=False):
        inputs, targets = batch_fn(batch) if batch_fn else make_batch(seqs, batch, window)
        x, y = torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device)
        with autocast():  # the trainer's (rlmusic.runtime.choose_autocast)
            logits = model(x).float()  # (B, L, V)
        mask = y != IGNORE
        nll += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            y.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        ).item()
        correct += ((logits.argmax(-1) == y) & mask).sum().item()
        count += mask.sum().item()
    model.train(was_training)
    return nll, correct, count


def nll_metrics(nll: float, correct: float, count: float) -> dict[str, float]:
    """Sums -> NLL per token, perplexity and accuracy (NaN without tokens)."""
    if count == 0:
        return {"valid_nll": math.nan, "valid_ppl": math.nan, "valid_acc": math.nan}
    return {
        "valid_nll": nll / count,
        "valid_ppl": math.exp(nll / count),
        "valid_acc": correct / count,
    }


def evaluate_tunes(
    model: nn.Module,
    tunes: Sequence[np.ndarray],
    window: int,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """NLL per token, perplexity and accuracy of ``model`` on whole tunes, read as the trainer
    validates: from BOS, in non-overlapping windows of ``window`` tokens."""
    seqs = with_bos_np(tunes, model.bos_token)
    rows = valid_windows([len(s) - 1 for s in seqs], window)
    return nll_metrics(*window_sums(model, seqs, rows, window, batch_size, torch.device(device)))
