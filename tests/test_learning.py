"""Slow guards of learning itself: every algorithm raises its own objective on a short run.

Each run starts from the shipped Note LSTM on ``reward=rl_tuner`` through the task entry point
(``rlmusic finetune``) and is judged by the objective its algorithm maximises, measured on fresh
samples of the start model and of the tuned policy (the same seed, many pieces):

KL control (``kl_mode=penalty``, one beta): ``J = E[sum_t r_t] - beta * T * KL per token``,
with each run's beta.

A learner that lowers its own objective has a bug until shown otherwise: these tests make that
a red CI instead of a README warning. They also check the run still plays (onsets, distinct).
RL Tuner's three variants have the same guard, each with its own objective, in
``tests/test_rl_tuner.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from rlmusic.algos.finetune_setup import build_setup
from rlmusic.models import load_generator
from rlmusic.models.sampling import sample_seeded
from rlmusic.tasks import finetune

SAMPLES = 1024
LENGTH = 32


def one_beta(beta: float) -> list[str]:
    """One KL coefficient, unsplit, so the objective is the plain KL-regularised return."""
    return [f"algo.kl_coef={beta}", "algo.kl_pitch_coef=null"]


def objective(model, setup, beta: float) -> tuple[np.ndarray, dict[str, float]]:
    """Per-piece objective (n,) of ``model``'s samples and the music figures behind it."""
    tokens, log_pi = sample_seeded(model, SAMPLES, LENGTH, seed=4321)
    rewards = setup.reward.score(tokens)[0].sum(1)  # the task reward per piece
    log_prior = setup.reference.log_probs(torch.as_tensor(tokens)).cpu().numpy()
    per_piece = rewards - beta * (log_pi - log_prior).sum(1)
    onsets = float((tokens >= 2).sum(1).mean())
    distinct = len({row.tobytes() for row in tokens}) / len(tokens)
    return per_piece, {"onsets": onsets, "distinct": distinct}


RUNS = {  # name: (overrides, beta: one KL coefficient on the whole log ratio)
    "batched_rloo": (["algo=batched", "algo.iterations=30"], 1.0),
    "batched_ppo": (["algo=batched", "algo.method=ppo", "algo.iterations=30"], 1.0),
    # algo=ppo's shipped beta: at lr 1e-4, beta 1 on reward=rl_tuner reaches in 16k steps what
    # the paper's 1M-step runs reach (the objective rises, 98.5 -> 131.8, but half the pieces
    # are duplicates: the objective's optimum, not a learner's bug)
    "ppo": (["algo=ppo", "algo.total_timesteps=16384"], 2.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_algorithm_raises_its_own_objective(name: str, tmp_path: Path) -> None:
    overrides, beta = RUNS[name]
    base = [
        "checkpoint=pretrained:note_lstm",
        "reward=rl_tuner",
        "algo.sample_every=0",
        "n_samples=1",
        "device=cpu",
        "seed=0",
    ]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=[*base, *overrides, *one_beta(beta)])
    result = finetune.run(cfg, output_dir=tmp_path / "run")
    setup = build_setup(str(cfg.checkpoint), cfg.reward, tmp_path / "measure", device="cpu")
    start, _ = load_generator("pretrained:note_lstm")
    tuned, _ = load_generator(str(result.tuned))
    before, _ = objective(start, setup, beta)
    after, music = objective(tuned, setup, beta)
    stderr = float(np.sqrt(before.var() / len(before) + after.var() / len(after)))
    print(
        f"{name}: objective per piece {before.mean():.2f} -> {after.mean():.2f} (se {stderr:.2f})"
    )
    assert after.mean() - before.mean() > 3 * stderr
    print(f"{name}: onsets per piece {music['onsets']:.2f}, distinct {music['distinct']:.3f}")
    # still music, not the old shared value head's collapse (0.99 onsets, 7% distinct)
    assert music["onsets"] >= 8 and music["distinct"] >= 0.9
