"""The discriminator: a :class:`CausalCNN` trained to tell real windows from generated ones.

Loss: binary cross-entropy on **every prefix position**, real and generated halves weighted
equally (each batch draws half its rows from each side), so the score at step ``t`` is a
calibrated ``logit P(real | tokens[:t+1])`` -- what a dense reward reads at every step.
Validation figures are measured on held-out rows at the **last** position (the whole window):
``accuracy`` (logit > 0) and ``auc``; ``accuracy_prefixes`` averages over every position.

:func:`refresh` retrains a discriminator in place on the current policy's samples
(SeqGAN-style adversarial refresh); the batched trainer calls it every K iterations.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlmusic.critics.cnn import CausalCNN, CNNTrainConfig, check_tokens
from rlmusic.critics.stats import (
    binary_accuracy,
    binary_auc,
    format_figures,
    seeded_split,
    seeded_torch,
)

log = logging.getLogger(__name__)


@dataclass
class DiscriminatorTrainConfig(CNNTrainConfig):
    """How a discriminator trains (see :class:`CNNTrainConfig`); a batch is half real rows,
    half generated ones, so it needs at least two."""

    min_batch = 2


def _as_tokens(rows: np.ndarray, vocab_size: int, who: str, device: torch.device) -> torch.Tensor:
    tokens = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=device)
    check_tokens(tokens, vocab_size, who)
    if len(tokens) == 0:
        raise ValueError(f"{who}: no rows to train or score on")
    return tokens


@torch.no_grad()
def score_all(model: CausalCNN, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """(N, T) tokens -> (N, T) logits, in eval mode and in chunks."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(tokens[i : i + batch_size]) for i in range(0, len(tokens), batch_size)])
    model.train(was_training)
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def evaluate_discriminator(
    model: CausalCNN, real: np.ndarray, fake: np.ndarray, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Held-out figures on whole windows (the last position): ``accuracy`` over all rows,
    ``accuracy_real`` / ``accuracy_fake`` per side and their mean ``balanced_accuracy``,
    ``auc``; ``accuracy_prefixes`` over every position; the mean ``P(real)`` of each side."""
    device = torch.device(device)
    real_t = _as_tokens(real, model.vocab_size, "real rows", device)
    fake_t = _as_tokens(fake, model.vocab_size, "generated rows", device)
    real_logits = score_all(model, real_t).cpu().numpy()  # (Nr, T)
    fake_logits = score_all(model, fake_t).cpu().numpy()  # (Nf, T')
    last = np.concatenate([real_logits[:, -1], fake_logits[:, -1]])
    labels = np.concatenate([np.ones(len(real_logits)), np.zeros(len(fake_logits))])
    prefixes = np.concatenate([real_logits.ravel(), fake_logits.ravel()])
    prefix_labels = np.concatenate([np.ones(real_logits.size), np.zeros(fake_logits.size)])
    accuracy_real = binary_accuracy(real_logits[:, -1], np.ones(len(real_logits)))
    accuracy_fake = binary_accuracy(fake_logits[:, -1], np.zeros(len(fake_logits)))
    return {
        "accuracy": binary_accuracy(last, labels),
        # per side: real windows called real, generated ones caught (a two-sample test per model)
        "accuracy_real": accuracy_real,
        "accuracy_fake": accuracy_fake,
        "balanced_accuracy": 0.5 * (accuracy_real + accuracy_fake),
        "auc": binary_auc(last, labels),
        "accuracy_prefixes": binary_accuracy(prefixes, prefix_labels),
        "p_real_on_real": float(_sigmoid(real_logits[:, -1]).mean()),
        "p_real_on_fake": float(_sigmoid(fake_logits[:, -1]).mean()),
        "n_valid_real": len(real_logits),
        "n_valid_fake": len(fake_logits),
    }


def _fit(
    model: CausalCNN,
    real: torch.Tensor,
    fake: torch.Tensor,
    cfg: DiscriminatorTrainConfig,
    steps: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """``steps`` AdamW steps of per-prefix BCE on balanced batches; the mean of the last losses."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    half = cfg.batch_size // 2
    started = time.perf_counter()
    model.train()
    recent: list[float] = []
    done = 0
    for step in range(steps):
        if cfg.time_s is not None and time.perf_counter() - started >= cfg.time_s:
            break
        real_logits = model(real[torch.as_tensor(rng.integers(0, len(real), half))])  # (b, T)
        fake_logits = model(fake[torch.as_tensor(rng.integers(0, len(fake), half))])  # (b, T')
        # each side averages over its own prefixes, so unequal lengths stay balanced
        loss = 0.5 * (
            F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recent = (recent + [loss.item()])[-50:]
        done = step + 1
        if cfg.log_every and done % cfg.log_every == 0:
            log.info("discriminator step %d: loss %.4f", done, float(np.mean(recent)))
    model.eval()
    return {
        "loss": float(np.mean(recent)) if recent else float("nan"),
        "steps": done,
        "time_s": time.perf_counter() - started,
    }


def train_discriminator(
    real: np.ndarray,
    fake: np.ndarray,
    cfg: DiscriminatorTrainConfig | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    valid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[CausalCNN, dict[str, Any]]:
    """Train a fresh discriminator on real windows against generated ones.

    Args:
        real: (Nr, T) real token windows.
        fake: (Nf, T') generated token windows.
        cfg: training and model settings.
        seed: seeds the weights, the split, the batches and dropout (global RNG untouched).
        device: where it trains.
        valid: held-out ``(real, fake)`` rows (e.g. windows of other tunes); None holds out a
            seeded ``cfg.holdout`` share of each side instead.

    Returns:
        The model (eval mode) and its figures: the held-out ones of
        :func:`evaluate_discriminator` plus ``loss``, ``steps``, ``time_s``, ``n_train_*``.
    """
    cfg = cfg or DiscriminatorTrainConfig()
    device = torch.device(device)
    real, fake = np.asarray(real), np.asarray(fake)
    if valid is None:
        fit_r, held_r = seeded_split(len(real), cfg.holdout, seed)
        fit_f, held_f = seeded_split(len(fake), cfg.holdout, seed + 1)
        valid = (real[held_r], fake[held_f])
        real, fake = real[fit_r], fake[fit_f]
    vocab = cfg.model.vocab_size
    real_t = _as_tokens(real, vocab, "real rows", device)
    fake_t = _as_tokens(fake, vocab, "generated rows", device)
    with seeded_torch(seed, device):
        model = CausalCNN(cfg.model).to(device)
        figures = _fit(model, real_t, fake_t, cfg, cfg.steps, np.random.default_rng(seed))
    if len(valid[0]) and len(valid[1]):
        figures.update(evaluate_discriminator(model, valid[0], valid[1], device))
    figures.update(n_train_real=len(real), n_train_fake=len(fake), seed=seed)
    log.info("discriminator: %s", format_figures(figures))
    return model, figures


def refresh(
    model: CausalCNN,
    real: np.ndarray,
    fake: np.ndarray,
    steps: int,
    cfg: DiscriminatorTrainConfig | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Retrain ``model`` in place on fresh samples (SeqGAN-style adversarial refresh).

    A seeded ``cfg.holdout`` share of both sides is scored before and after the update, so the
    log shows how well the old discriminator caught the current policy (``accuracy_before``)
    and how well the refreshed one does (``accuracy``). The model's config is kept; ``cfg``
    only sets the optimizer (a fresh AdamW per refresh: no optimizer state between calls).

    Returns:
        ``accuracy_before``, ``auc_before``, the held-out figures after, ``loss``, ``steps``,
        ``time_s``.
    """
    cfg = cfg or DiscriminatorTrainConfig(model=model.config)
    device = next(model.parameters()).device
    real, fake = np.asarray(real), np.asarray(fake)
    fit_r, held_r = seeded_split(len(real), cfg.holdout, seed)
    fit_f, held_f = seeded_split(len(fake), cfg.holdout, seed + 1)
    can_score = len(held_r) > 0 and len(held_f) > 0
    before = evaluate_discriminator(model, real[held_r], fake[held_f], device) if can_score else {}
    real_t = _as_tokens(real[fit_r], model.vocab_size, "real rows", device)
    fake_t = _as_tokens(fake[fit_f], model.vocab_size, "generated rows", device)
    with seeded_torch(seed, device):
        figures = _fit(model, real_t, fake_t, cfg, steps, np.random.default_rng(seed))
    if can_score:
        figures.update(evaluate_discriminator(model, real[held_r], fake[held_f], device))
        figures.update(accuracy_before=before["accuracy"], auc_before=before["auc"])
    log.info("discriminator refresh: %s", format_figures(figures))
    return figures
