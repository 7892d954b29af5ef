"""Validation figures of the critics (numpy, no sklearn), seeded held-out splits, seeded torch.

>>> float(binary_auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0])))
1.0
>>> float(binary_auc(np.array([0.5, 0.5]), np.array([1, 0])))  # a tie counts one half
0.5
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def binary_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank statistic: P(score of a positive > a negative's).

    Args:
        scores: (N,) any real scores (higher = more positive).
        labels: (N,) 1 for positives, 0 for negatives.

    Returns:
        The AUC in [0, 1]; NaN when one class is absent.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = average_ranks(scores)[labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``logit > 0`` decisions that match ``labels`` (1 = positive)."""
    logits = np.asarray(logits, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    return float(np.mean((logits > 0) == labels)) if len(labels) else float("nan")


def seeded_split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, held_out)`` of a seeded permutation of ``range(n)``.

    ``held_out`` gets ``round(holdout * n)`` items, at least one when ``holdout > 0`` and
    ``n >= 2``; ``fit`` always keeps at least one.
    """
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(holdout * n))
    if holdout > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    return np.sort(order[k:]), np.sort(order[:k])


@contextmanager
def seeded_torch(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch inside the block only: weights and dropout follow ``seed`` and the caller's
    global RNG state is restored afterwards (no hidden global seeding)."""
    device = torch.device(device)
    cuda = []
    if device.type == "cuda":
        cuda = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=cuda):
        # only the generators forked above: torch.manual_seed would also seed every GPU (or
        # queue that seed for CUDA's first use), which the fork would not put back
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def format_figures(figures: dict[str, Any]) -> str:
    """``key value`` pairs for a log line (floats to 4 places)."""
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()
    )
