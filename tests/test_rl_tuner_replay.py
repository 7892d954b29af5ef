"""The whole-composition replay of algo=rl_tuner: ring order, uniform draws, exact round trip,
and the replay ratio counted exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlmusic.algos.rl_tuner.config import RLTunerConfig, rl_tuner_config
from rlmusic.algos.rl_tuner.replay import PieceReplay

LENGTH = 4
VOCAB = 5


def pieces(first: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n pieces whose every token is the piece's number (first, first + 1, ...) mod VOCAB, and
    whose rewards are the piece's number: a stored piece tells which it was."""
    ids = torch.arange(first, first + n)
    tokens = (ids % VOCAB)[:, None].expand(n, LENGTH).clone()
    return tokens, ids[:, None].float().expand(n, LENGTH).clone()


def test_the_ring_keeps_the_newest_whole_pieces() -> None:
    replay = PieceReplay(capacity=3 * LENGTH + 2, length=LENGTH, vocab_size=VOCAB)
    assert replay.pieces == 3  # 14 transitions hold 3 whole pieces of 4
    replay.add(*pieces(0, 2))
    assert len(replay) == 2 and replay.transitions == 2 * LENGTH
    replay.add(*pieces(2, 2))  # wraps: piece 0 is overwritten by piece 3
    assert len(replay) == 3
    assert sorted(replay.rewards[:, 0].tolist()) == [1.0, 2.0, 3.0]
    replay.add(*pieces(4, 5))  # more than fit at once: the newest three
    assert sorted(replay.rewards[:, 0].tolist()) == [6.0, 7.0, 8.0]
    with pytest.raises(ValueError, match="pieces of 4 steps"):
        replay.add(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="no composition"):
        PieceReplay(capacity=3, length=LENGTH, vocab_size=VOCAB)


def test_pieces_are_drawn_uniformly_and_whole() -> None:
    replay = PieceReplay(capacity=10 * LENGTH, length=LENGTH, vocab_size=VOCAB)
    replay.add(*pieces(0, 10))
    batch = replay.sample(20_000, torch.Generator().manual_seed(0))
    ids = batch.rewards[:, 0].long()
    # every step of a drawn piece comes with it, tokens and rewards alike
    assert (batch.rewards == ids[:, None].float()).all()
    assert (batch.tokens == (ids % VOCAB)[:, None]).all()
    counts = np.bincount(ids.numpy(), minlength=10)
    assert abs(counts / len(ids) - 0.1).max() < 0.01  # uniform over the stored pieces


def test_whole_piece_draws_weigh_every_transition_as_uniform_transition_draws() -> None:
    """The docs' argument, measured: each stored transition's expected share of a batch."""
    replay = PieceReplay(capacity=6 * LENGTH, length=LENGTH, vocab_size=VOCAB)
    replay.add(*pieces(0, 6))
    gen = torch.Generator().manual_seed(1)
    hits = torch.zeros(6, LENGTH)
    draws, k = 4000, 3
    for _ in range(draws):
        batch = replay.sample(k, gen)
        for piece in batch.rewards[:, 0].long():
            hits[piece] += 1  # all LENGTH steps of the piece enter the batch
    # uniform transition sampling: k * LENGTH draws from 6 * LENGTH transitions
    expected = draws * k * LENGTH / (6 * LENGTH)
    assert (hits / expected - 1).abs().max() < 0.05


def test_state_round_trip_is_exact_and_refuses_another_shape() -> None:
    replay = PieceReplay(5 * LENGTH, LENGTH, VOCAB, store_prior=True)
    prior = torch.log_softmax(torch.randn(7, LENGTH, VOCAB), -1)
    replay.add(*pieces(0, 7), prior)
    copy = PieceReplay(5 * LENGTH, LENGTH, VOCAB, store_prior=True)
    copy.load_state_dict(replay.state_dict())
    assert (copy.position, copy.size) == (replay.position, replay.size)
    for name in ("tokens", "rewards", "prior_log_probs"):
        torch.testing.assert_close(getattr(copy, name), getattr(replay, name), rtol=0, atol=0)
    a, b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(
        copy.sample(8, a).prior_log_probs, replay.sample(8, b).prior_log_probs
    )
    with pytest.raises(ValueError, match="does not fit"):
        PieceReplay(3 * LENGTH, LENGTH, VOCAB, store_prior=True).load_state_dict(
            replay.state_dict()
        )
    with pytest.raises(ValueError, match="storing the prior"):
        PieceReplay(5 * LENGTH, LENGTH, VOCAB).load_state_dict(replay.state_dict())


def test_the_replay_ratio_is_counted_exactly() -> None:
    """6.4 transitions per env step (the paper's 32 every 5): no float drift over 1M steps."""
    config = RLTunerConfig(batch_size=1024, replay_ratio=6.4, length=32)
    assert config.pieces_per_batch == 32
    for steps in (0, 160, 8192, 999_936, 1_000_000):
        due = config.gradient_steps_due(steps)
        assert due * 1024 <= steps * 6.4 < (due + 1) * 1024
    assert config.gradient_steps_due(1_000_000) == 6250  # 6.4M transitions in 1,024s
    late = RLTunerConfig(batch_size=64, replay_ratio=6.4, length=32, learning_starts=1000)
    assert late.gradient_steps_due(1000) == 0 and late.gradient_steps_due(1010) == 1


def test_epsilon_falls_linearly_then_stays() -> None:
    config = RLTunerConfig(total_timesteps=1000, exploration_fraction=0.5)
    assert config.epsilon(0) == 1.0
    assert config.epsilon(250) == pytest.approx(0.55)
    assert config.epsilon(500) == pytest.approx(0.1) and config.epsilon(900) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("variant", "dqn", "algo.variant='dqn' is not known; known: q, psi, g"),
        ("exploration", "ucb", "algo.exploration='ucb'"),
        ("loss", "l1", "algo.loss='l1'"),
        ("precision", "fp16", "algo.precision='fp16'"),
        ("batch_size", 48, "algo.batch_size=48 must be a multiple of length=32"),
        ("buffer_size", 512, "algo.buffer_size=512 must hold at least one batch"),
        ("tau", 0.0, "algo.tau=0.0 must be in"),
        ("gamma", 1.5, "algo.gamma=1.5 must be in"),
        ("replay_ratio", 0, "algo.replay_ratio=0 must be > 0"),
        ("n_envs", 0, "algo.n_envs=0 must be >= 1"),
        ("psi_temperature", -1.0, "algo.psi_temperature=-1.0 must be > 0"),
        ("exploration_fraction", 0.0, "algo.exploration_fraction=0.0"),
        ("double_q", True, "algo.double_q=true applies to algo.variant=q only"),
    ],
)
def test_bad_settings_are_refused_by_key_and_value(key: str, value: object, message: str) -> None:
    values = {"variant": "psi"} if key == "double_q" else {}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RLTunerConfig(**{**values, key: value})


def test_unknown_keys_are_listed() -> None:
    with pytest.raises(ValueError, match=r"has no key\(s\) \['train_freq'\]"):
        rl_tuner_config({"name": "rl_tuner", "train_freq": 5}, length=32)
