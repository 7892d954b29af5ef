"""A two-sample critic test: can a small discriminator tell a model's pieces from real ones?

A fresh, small :class:`rlmusic.critics.CausalCNN` discriminator
(:func:`rlmusic.critics.train_discriminator`) is trained on a seeded share of the pieces
against a seeded share of the held-out melodies, and scored on the rest of both (whole pieces:
the last position's logit). The figure is its **held-out balanced accuracy**: the mean of the
share of real melodies called real and the share of the model's pieces caught. 0.5 means the
critic cannot tell them apart (a two-sample test passed); 1.0 means every piece gives itself
away. Its interval resamples the held-out rows of each side (seeded), so it shows the test set's
uncertainty, not the spread of retraining.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rlmusic.critics import CriticConfig, DiscriminatorTrainConfig, train_discriminator
from rlmusic.critics.discriminator import score_all
from rlmusic.critics.stats import seeded_split
from rlmusic.evaluation.bootstrap import Interval, bootstrap_weights, interval


@dataclass
class CriticTestConfig:
    """The critic's size and budget: small and short, a few seconds per model on a CPU."""

    steps: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    holdout: float = 0.3
    embed_dim: int = 16
    channels: int = 32
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])

    def train_config(self, vocab_size: int) -> DiscriminatorTrainConfig:
        model = CriticConfig(
            vocab_size=vocab_size,
            embed_dim=self.embed_dim,
            channels=self.channels,
            dilations=list(self.dilations),
        )
        return DiscriminatorTrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            holdout=self.holdout,
            log_every=0,
            model=model,
        )


def _weighted_share(correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return (weights @ correct) / weights.sum(axis=1)


def critic_accuracy(
    pieces: np.ndarray,
    reference: np.ndarray,
    vocab_size: int,
    cfg: CriticTestConfig | None = None,
    seed: int = 0,
    resamples: int = 1000,
    confidence: float = 0.95,
) -> tuple[Interval, dict]:
    """The held-out balanced accuracy of a discriminator of ``pieces`` (N, T) against
    ``reference`` (R, T), with its bootstrap interval, and the training figures.

    Raises:
        ValueError: fewer than two pieces or melodies on a side (nothing to hold out).
    """
    cfg = cfg or CriticTestConfig()
    pieces, reference = np.asarray(pieces, np.int64), np.asarray(reference, np.int64)
    if len(pieces) < 2 or len(reference) < 2:
        raise ValueError(
            f"the critic test needs >= 2 pieces and >= 2 real melodies, "
            f"got {len(pieces)} and {len(reference)}"
        )
    fit_real, held_real = seeded_split(len(reference), cfg.holdout, seed)
    fit_fake, held_fake = seeded_split(len(pieces), cfg.holdout, seed + 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny CNN: handing work between threads costs more than it saves
    try:
        model, figures = train_discriminator(
            reference[fit_real],
            pieces[fit_fake],
            cfg.train_config(vocab_size),
            seed=seed,
            valid=(reference[held_real], pieces[held_fake]),
        )
    finally:
        torch.set_num_threads(threads)
    real_logits = score_all(model, torch.as_tensor(reference[held_real]))[:, -1].numpy()
    fake_logits = score_all(model, torch.as_tensor(pieces[held_fake]))[:, -1].numpy()
    real_ok = (real_logits > 0).astype(np.float64)  # real melodies called real
    fake_ok = (fake_logits <= 0).astype(np.float64)  # the model's pieces caught
    value = 0.5 * (real_ok.mean() + fake_ok.mean())
    w_real = bootstrap_weights(len(real_ok), resamples, seed)
    w_fake = bootstrap_weights(len(fake_ok), resamples, seed + 1)
    resampled = 0.5 * (_weighted_share(real_ok, w_real) + _weighted_share(fake_ok, w_fake))
    return interval(float(value), resampled, confidence, (0.0, 1.0)), figures
