"""The preference critic: a Bradley-Terry reward model on the discriminator's network.

A :class:`CausalCNN` scores every prefix; a whole sample's utility is the score at its last
step. Bradley-Terry: ``P(a preferred over b) = sigmoid(s(a) - s(b))``, trained by binary
cross-entropy on ``d = s(a) - s(b)`` with target 1 (a), 0 (b) or 0.5 (a tie counts as half a
win each way). The validation figure is held-out pairwise ``accuracy``: the share of non-tied
held-out pairs whose preferred sample scores higher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlmusic.critics.cnn import CausalCNN, CNNTrainConfig, check_tokens
from rlmusic.critics.preference_file import Preference
from rlmusic.critics.stats import format_figures, seeded_split, seeded_torch
from rlmusic.data.encoding import NOTE_OFF
from rlmusic.data.encodings import Encoding

log = logging.getLogger(__name__)

OUTCOME = {"a": 1.0, "b": 0.0, "tie": 0.5}  # the target P(a preferred over b)


@dataclass
class PreferenceTrainConfig(CNNTrainConfig):
    """How a preference model trains (see :class:`CNNTrainConfig`); ``batch_size`` counts pairs."""

    steps: int = 500
    batch_size: int = 32
    log_every: int = 100


def pairs_from_preferences(
    preferences: Sequence[Preference], encoding: Encoding, max_length: int | None = None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Load every distinct sample once (:func:`rlmusic.data.io.load_piece`: a melody, or a
    chorale's four tracks) and index the pairs.

    Args:
        max_length: keep each sample's first this many tokens (None: whole samples).

    Returns:
        ``samples`` (token arrays), ``pairs`` (N, 2) indices into them, ``outcome`` (N,)
        target ``P(a preferred over b)``.
    """
    from rlmusic.data.io import load_piece

    index: dict[Path, int] = {}
    samples: list[np.ndarray] = []
    for path in (p for pref in preferences for p in (pref.sample_a, pref.sample_b)):
        if path not in index:
            index[path] = len(samples)
            samples.append(np.asarray(load_piece(path, encoding), dtype=np.int64)[:max_length])
    pairs = np.array([[index[p.sample_a], index[p.sample_b]] for p in preferences], np.int64)
    outcome = np.array([OUTCOME[p.preferred] for p in preferences], dtype=np.float32)
    return samples, pairs.reshape(-1, 2), outcome


def _padded(samples: Sequence[np.ndarray], rows: np.ndarray, device: torch.device):
    """(b, L) tokens padded with NOTE_OFF and (b,) last-step indices for ``samples[rows]``."""
    lengths = np.array([len(samples[i]) for i in rows], dtype=np.int64)
    tokens = np.full((len(rows), int(lengths.max())), NOTE_OFF, dtype=np.int64)
    for b, i in enumerate(rows):
        tokens[b, : lengths[b]] = samples[i]
    # padding sits after the last step, which a causal network never reads
    return torch.as_tensor(tokens, device=device), torch.as_tensor(lengths - 1, device=device)


def sample_scores(
    model: CausalCNN, samples: Sequence[np.ndarray], rows: np.ndarray | None = None
) -> torch.Tensor:
    """(b,) whole-sample utilities ``s(x) = score at x's last step`` (with grad if enabled)."""
    device = next(model.parameters()).device
    rows = np.arange(len(samples)) if rows is None else np.asarray(rows)
    tokens, last = _padded(samples, rows, device)
    check_tokens(tokens, model.vocab_size, "the preference model")
    scores = model(tokens)  # (b, L)
    return scores.gather(1, last.unsqueeze(1)).squeeze(1)


@torch.no_grad()
def pairwise_accuracy(
    model: CausalCNN, samples: Sequence[np.ndarray], pairs: np.ndarray, outcome: np.ndarray
) -> tuple[float, int]:
    """Share of non-tied pairs whose preferred sample scores higher, and how many there were."""
    decided = np.asarray(outcome) != 0.5
    if not decided.any():
        return float("nan"), 0
    model.eval()
    scores = np.concatenate(
        [
            sample_scores(model, samples, np.arange(i, min(i + 256, len(samples)))).cpu().numpy()
            for i in range(0, len(samples), 256)
        ]
    )
    pairs, wins_a = np.asarray(pairs)[decided], np.asarray(outcome)[decided] == 1.0
    return float(np.mean((scores[pairs[:, 0]] > scores[pairs[:, 1]]) == wins_a)), int(decided.sum())


def train_preference(
    samples: Sequence[np.ndarray],
    pairs: np.ndarray,
    outcome: np.ndarray,
    cfg: PreferenceTrainConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[CausalCNN, dict[str, Any]]:
    """Fit a Bradley-Terry utility on judged pairs; hold out a seeded share of the pairs.

    Args:
        samples: token arrays (any lengths >= 1).
        pairs: (N, 2) indices into ``samples``: (a, b).
        outcome: (N,) ``P(a preferred over b)``: 1, 0 or 0.5 for a tie.
        cfg: training and model settings.
        seed: seeds the weights, the split, the batches and dropout (global RNG untouched).
        device: where it trains.

    Returns:
        The model (eval mode) and its figures: held-out ``accuracy`` and ``n_valid`` (decided
        pairs), ``train_accuracy``, ``loss``, ``steps``, ``time_s``, ``n_train``, ``n_ties``.
    """
    cfg = cfg or PreferenceTrainConfig()
    device = torch.device(device)
    pairs, outcome = np.asarray(pairs, np.int64).reshape(-1, 2), np.asarray(outcome, np.float32)
    if len(pairs) == 0 or len(pairs) != len(outcome):
        raise ValueError(f"need as many outcomes as pairs (> 0), got {len(pairs)}, {len(outcome)}")
    if any(len(s) == 0 for s in samples):
        raise ValueError("every sample needs at least one step")
    fit, held = seeded_split(len(pairs), cfg.holdout, seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    recent: list[float] = []
    done = 0
    with seeded_torch(seed, device):
        model = CausalCNN(cfg.model).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        model.train()
        for step in range(cfg.steps):
            if cfg.time_s is not None and time.perf_counter() - started >= cfg.time_s:
                break
            batch = fit[rng.integers(0, len(fit), min(cfg.batch_size, len(fit)))]
            # score a's and b's in one pass: rows [a_1..a_b, b_1..b_b]
            scores = sample_scores(
                model, samples, np.concatenate([pairs[batch, 0], pairs[batch, 1]])
            )
            margin = scores[: len(batch)] - scores[len(batch) :]  # (b,) s(a) - s(b)
            target = torch.as_tensor(outcome[batch], device=device)
            loss = F.binary_cross_entropy_with_logits(margin, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            recent = (recent + [loss.item()])[-50:]
            done = step + 1
            if cfg.log_every and done % cfg.log_every == 0:
                log.info("preference step %d: loss %.4f", done, float(np.mean(recent)))
    model.eval()
    accuracy, n_valid = pairwise_accuracy(model, samples, pairs[held], outcome[held])
    train_accuracy, _ = pairwise_accuracy(model, samples, pairs[fit], outcome[fit])
    figures = {
        "accuracy": accuracy,
        "n_valid": n_valid,
        "train_accuracy": train_accuracy,
        "loss": float(np.mean(recent)) if recent else float("nan"),
        "steps": done,
        "time_s": time.perf_counter() - started,
        "n_train": len(fit),
        "n_ties": int((outcome == 0.5).sum()),
        "seed": seed,
    }
    log.info("preference: %s", format_figures(figures))
    return model, figures
