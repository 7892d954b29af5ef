"""The Bradley-Terry preference critic: learns a preference above chance, ties, round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlmusic.critics import (
    CausalCNN,
    PreferenceTrainConfig,
    load_cnn_critic,
    save_cnn_critic,
    train_preference,
)
from rlmusic.critics.bradley_terry import pairwise_accuracy, sample_scores
from rlmusic.critics.terms import PreferenceReward
from tests.critic_helpers import ENC, TINY, random_tokens, scale_melodies


def judged_pairs(n_pairs: int = 240, seed: int = 0):
    """Scale melodies (various lengths) are preferred over random tokens; scale vs scale ties."""
    rng = np.random.default_rng(seed)
    good = [m[: rng.integers(12, 33)] for m in scale_melodies(60, 32, seed)]
    bad = list(random_tokens(60, 24, seed + 1))
    samples = good + bad
    pairs, outcome = [], []
    for _ in range(n_pairs):
        g, b = rng.integers(0, 60), 60 + rng.integers(0, 60)
        if rng.random() < 0.1:
            pairs.append((g, rng.integers(0, 60)))
            outcome.append(0.5)
        elif rng.random() < 0.5:
            pairs.append((g, b))
            outcome.append(1.0)
        else:
            pairs.append((b, g))
            outcome.append(0.0)
    return samples, np.array(pairs), np.array(outcome, dtype=np.float32)


@pytest.fixture(scope="module")
def trained():
    samples, pairs, outcome = judged_pairs()
    cfg = PreferenceTrainConfig(steps=60, batch_size=16, log_every=0, model=TINY)
    model, figures = train_preference(samples, pairs, outcome, cfg, seed=0)
    return model, figures, samples


def test_learns_the_preference_above_chance_on_held_out_pairs(trained) -> None:
    _, figures, _ = trained
    assert figures["accuracy"] > 0.8
    assert figures["n_valid"] > 30  # the decided pairs among the 48 held out
    assert figures["n_train"] == 192 and figures["n_ties"] > 0


def test_a_sample_scores_the_same_alone_and_padded_in_a_batch(trained) -> None:
    model, _, samples = trained
    together = sample_scores(model, samples, np.arange(10)).detach()
    alone = [float(sample_scores(model, samples, np.array([i])).detach()[0]) for i in range(10)]
    np.testing.assert_allclose(together.numpy(), alone, rtol=1e-5, atol=1e-5)


def test_pairwise_accuracy_counts_decided_pairs_only(trained) -> None:
    model, _, samples = trained
    accuracy, n = pairwise_accuracy(model, samples, np.array([[0, 1], [0, 60]]), np.array([0.5, 1]))
    assert n == 1 and accuracy in (0.0, 1.0)
    assert np.isnan(pairwise_accuracy(model, samples, np.array([[0, 1]]), np.array([0.5]))[0])


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="as many outcomes as pairs"):
        train_preference([np.array([2, 3])], np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match="at least one step"):
        train_preference([np.array([], dtype=np.int64), np.array([3])], [[0, 1]], [1.0])


def test_round_trip_gives_identical_rewards(tmp_path: Path, trained) -> None:
    model, figures, _ = trained
    path = save_cnn_critic(
        tmp_path / "pref.safetensors", model, "preference", ENC, figures, {"pairs": 240}
    )
    loaded, encoding, meta = load_cnn_critic(path, "preference")
    assert isinstance(loaded, CausalCNN) and encoding == ENC
    assert meta["metrics"]["accuracy"] == figures["accuracy"] and meta["trained"]["pairs"] == 240
    tokens = random_tokens(4, 20, seed=3)
    for shaping in ("last", "potential"):
        np.testing.assert_array_equal(
            PreferenceReward(loaded, shaping)(tokens), PreferenceReward(model, shaping)(tokens)
        )


def test_the_reward_is_the_utility_on_the_last_step_or_its_telescoping_sum(trained) -> None:
    model, _, _ = trained
    tokens = scale_melodies(3, 16, seed=5)
    last, spread = (
        PreferenceReward(model, "last")(tokens),
        PreferenceReward(model, "potential")(tokens),
    )
    utility = sample_scores(model, list(tokens)).detach().numpy()
    assert not last[:, :-1].any()
    np.testing.assert_allclose(last[:, -1], utility, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(spread.sum(axis=1), utility, rtol=1e-4, atol=1e-4)
    assert PreferenceReward(model, "last").sequence_level
    assert not PreferenceReward(model, "potential").sequence_level
