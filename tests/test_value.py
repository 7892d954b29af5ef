"""The PPO learners' value function: detached from the generator, PopArt-normalised."""

from __future__ import annotations

import math

import pytest
import torch

from rlmusic.algos.value import ValueFunction, explained_variance


def test_it_sends_no_gradient_into_the_hidden_state() -> None:
    value = ValueFunction(hidden_size=8, length=4)
    hidden = torch.randn(3, 4, 8, requires_grad=True)
    positions = torch.arange(4).expand(3, -1)
    value.loss(hidden, positions, torch.randn(3, 4) * 100).backward()
    assert hidden.grad is None  # the generator behind the hidden state is never moved
    assert value.out.weight.grad is not None and value.out.weight.grad.abs().sum() > 0


def test_new_return_statistics_leave_every_prediction_unchanged() -> None:
    torch.manual_seed(0)
    value = ValueFunction(hidden_size=8, length=4)
    torch.nn.init.normal_(value.out.weight)
    hidden, positions = torch.randn(5, 8), torch.randint(0, 5, (5,))
    value.update_statistics(torch.randn(100) * 30 + 200)  # the first: taken as they are
    assert 150 < float(value.mean) < 250 and 20 < float(value.std) < 40
    before = value(hidden, positions)
    value.update_statistics(torch.randn(100) * 3 - 50)  # later ones: a moving average ...
    assert float(value.mean) < 190
    torch.testing.assert_close(value(hidden, positions), before, rtol=1e-5, atol=1e-3)  # PopArt


def test_the_loss_is_measured_in_normalised_units() -> None:
    value = ValueFunction(hidden_size=8, length=4)
    returns = torch.randn(64) * 500 + 1000
    value.update_statistics(returns)
    loss = value.loss(torch.randn(64, 8), torch.zeros(64, dtype=torch.long), returns)
    assert 0.5 < loss.item() < 2.0  # of order 1 whatever the reward's scale (it was ~1e5)


def test_explained_variance() -> None:
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(returns, returns) == 1.0
    assert explained_variance(torch.full((4,), 2.5), returns) == 0.0
    assert explained_variance(-returns, returns) < 0


def test_the_return_statistics_are_a_moving_average_by_hand() -> None:
    """First [0, 2] (mean 1, std 1), then [10, 14] (mean 12, std 2) at rate 0.1: the mean
    0.9 * 1 + 0.1 * 12 = 2.1, the second moment 0.9 * 2 + 0.1 * 148 = 16.6."""
    value = ValueFunction(hidden_size=8, length=4, stats_rate=0.1)
    value.update_statistics(torch.tensor([0.0, 2.0]))
    assert (float(value.mean), float(value.std)) == (1.0, 1.0)
    value.update_statistics(torch.tensor([10.0, 14.0]))
    assert float(value.mean) == pytest.approx(2.1, abs=1e-5)
    assert float(value.std) == pytest.approx(math.sqrt(16.6 - 2.1**2), abs=1e-5)
    assert int(value.updates) == 2
