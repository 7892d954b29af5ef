"""Helpers for the critic tests: tiny critics and generators, synthetic "real" melodies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rlmusic.critics import CausalCNN, CriticConfig, save_cnn_critic
from rlmusic.data.encoding import MelodyEncoding
from tests.conftest import make_tiny_checkpoint

ENC = MelodyEncoding()
C_MAJOR = np.array([ENC.pitch_to_token(p) for p in (60, 62, 64, 65, 67, 69, 71, 72, 74, 76, 77)])
TINY = CriticConfig(embed_dim=8, channels=16, dilations=[1, 2, 4], dropout=0.0)


def scale_melodies(n: int, steps: int, seed: int = 0) -> np.ndarray:
    """(n, steps) "real" melodies: a note every 2 steps (held in between), moving by one step
    of the C major scale: a distribution uniform random tokens are easy to tell from."""
    rng = np.random.default_rng(seed)
    out = np.ones((n, steps), dtype=np.int64)
    degree = rng.integers(2, len(C_MAJOR) - 2, size=n)
    for t in range(0, steps, 2):
        degree = np.clip(degree + rng.choice([-1, 1], size=n), 0, len(C_MAJOR) - 1)
        out[:, t] = C_MAJOR[degree]
    return out


def random_tokens(n: int, steps: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, ENC.vocab_size, size=(n, steps))


def tiny_critic(kind: str, path: Path, seed: int = 0) -> Path:
    """An untrained, seeded CausalCNN critic of ``kind`` saved at ``path``."""
    torch.manual_seed(seed)
    metrics = {"accuracy": 0.5, "auc": 0.5}
    return save_cnn_critic(path, CausalCNN(TINY), kind, ENC, metrics, {"seed": seed})


def tiny_generator(path: Path, seed: int = 0) -> Path:
    """The shared tiny LSTM checkpoint (tests/conftest.py), written into ``path``'s folder."""
    return make_tiny_checkpoint(Path(path).parent, seed=seed, name=Path(path).stem)
