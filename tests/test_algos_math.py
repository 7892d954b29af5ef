"""KL controllers and advantage estimators: values on small hand-made batches."""

from __future__ import annotations

import pytest
import torch

from rlmusic.algos.advantages import discounted_returns, gae, group_advantages
from rlmusic.algos.kl import AdaptiveKL, FixedKL, kl_k3, make_kl_controller


def test_gae_with_lambda_one_is_return_minus_value() -> None:
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    advantages, returns = gae(rewards, values, gamma=1.0, lam=1.0)
    assert returns.tolist() == [[6.0, 5.0, 3.0]]
    assert advantages.tolist() == [[5.5, 4.5, 2.5]]


def test_gae_with_lambda_zero_is_the_td_error() -> None:
    rewards = torch.tensor([[1.0, 0.0]])
    values = torch.tensor([[2.0, 3.0]])
    advantages, _ = gae(rewards, values, gamma=0.5, lam=0.0)
    assert advantages.tolist() == [[1.0 + 0.5 * 3.0 - 2.0, 0.0 - 3.0]]


def test_group_baselines() -> None:
    rewards = torch.tensor([[0.0, 1.0], [0.0, 3.0], [0.0, 5.0], [0.0, 7.0]])
    rloo = group_advantages(rewards, group_size=2, gamma=1.0, method="rloo")
    assert rloo[:, 1].tolist() == [-2.0, 2.0, -2.0, 2.0]  # each minus the other member
    grpo = group_advantages(rewards, group_size=4, gamma=1.0, method="grpo")
    assert grpo[:, 0].mean().abs() < 1e-6 and grpo[:, 0].std() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(rewards, group_size=3, gamma=1.0)


def test_discounting() -> None:
    assert discounted_returns(torch.tensor([[1.0, 1.0, 1.0]]), 0.5).tolist() == [[1.75, 1.5, 1.0]]


def test_k3_is_nonnegative_and_zero_at_equality() -> None:
    logp = torch.log(torch.tensor([0.2, 0.5, 0.9]))
    assert torch.all(kl_k3(logp, logp) == 0)
    assert torch.all(kl_k3(logp, logp.flip(0)) >= 0)


def test_kl_controllers() -> None:
    assert isinstance(make_kl_controller(0.1), FixedKL)
    controller = make_kl_controller(0.1, target=0.5, horizon=1000)
    assert isinstance(controller, AdaptiveKL)
    assert controller.update(measured_kl=1.0, n_tokens=1000) == pytest.approx(0.12)  # +20% at most
    assert controller.update(measured_kl=0.5, n_tokens=1000) == pytest.approx(0.12)  # on target
    assert controller.update(measured_kl=0.0, n_tokens=500) == pytest.approx(0.12 * 0.9)
    with pytest.raises(ValueError, match="kl.target"):
        make_kl_controller(0.1, target=0.0)
