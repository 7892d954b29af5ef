"""KL controllers and advantage estimators: values on small hand-made batches."""

from __future__ import annotations

import math

import pytest
import torch

from rlmusic.algos.advantages import discounted_returns, gae, group_advantages
from rlmusic.algos.kl import (
    AdaptiveKL,
    FixedKL,
    kl_k3,
    kl_loss,
    kl_penalty,
    make_kl_controller,
    split_log_ratio,
    token_log_probs,
)


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
    with pytest.raises(ValueError, match="kl_target"):
        make_kl_controller(0.1, target=0.0)


def test_the_adaptive_controller_moves_the_pitch_beta_with_the_event_beta() -> None:
    """It measures the whole KL, so it must be able to move the whole penalty (audit item)."""
    controller = make_kl_controller(1.0, target=0.1, horizon=1000, pitch_coef=4.0)
    controller.update(measured_kl=1.0, n_tokens=1000)  # far above target: +20%
    assert controller.coef == pytest.approx(1.2)
    assert controller.pitch_coef == pytest.approx(4.8)
    controller.update(measured_kl=0.0, n_tokens=1000)  # far below: -20%
    assert controller.pitch_coef / controller.coef == pytest.approx(4.0)
    assert make_kl_controller(1.0, pitch_coef=2.0).update(5.0, 1000) == 1.0  # fixed stays put


def _exact_kl_and_estimator_gradients(estimator) -> tuple[torch.Tensor, torch.Tensor]:
    """grad of KL(pi || p) and the expectation over pi's samples of grad estimator(a)."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(7, generator=generator, requires_grad=True)
    prior_logp = torch.log_softmax(torch.randn(7, generator=generator), -1)
    logp = torch.log_softmax(logits, -1)
    (exact,) = torch.autograd.grad((logp.exp() * (logp - prior_logp)).sum(), logits)
    logp = torch.log_softmax(logits, -1)
    old = logp.detach()
    # the expectation over a ~ pi_old, exactly: sum_a pi_old(a) * estimator(a)
    expected_loss = (old.exp() * estimator(logp, prior_logp, old)).sum()
    (estimated,) = torch.autograd.grad(expected_loss, logits)
    return exact, estimated


def test_the_kl_loss_has_the_gradient_of_kl_pi_prior() -> None:
    exact, estimated = _exact_kl_and_estimator_gradients(kl_loss)
    torch.testing.assert_close(estimated, exact, rtol=1e-5, atol=1e-6)


def test_k3_as_a_loss_has_the_gradient_of_the_other_kl() -> None:
    """Why kl_mode=loss no longer uses k3: its gradient is that of KL(prior || pi)."""
    exact, k3_gradient = _exact_kl_and_estimator_gradients(lambda lp, prior, old: kl_k3(lp, prior))
    assert not torch.allclose(k3_gradient, exact, atol=1e-3)


def test_gae_discounts_by_gamma_times_lambda() -> None:
    """By hand, gamma = lambda = 0.5: delta_t = r_t + 0.5 V_{t+1} - V_t and
    A_t = delta_t + 0.25 A_{t+1} (the trace decays by gamma * lambda, not lambda alone)."""
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, gamma=0.5, lam=0.5)
    # delta = [1 + 0.5 - 0.5, 0 + 0 - 1, 2] = [1, -1, 2]
    assert advantages.tolist() == [[1.0 + 0.25 * (-1.0 + 0.25 * 2.0), -1.0 + 0.25 * 2.0, 2.0]]
    assert returns.tolist() == [[1.375, 0.5, 2.0]]


def test_group_baselines_compare_discounted_reward_to_go() -> None:
    """gamma 0.5: reward-to-go [[2, 2], [3, 0]]; RLOO: each minus the other member, per step."""
    rewards = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    rloo = group_advantages(rewards, group_size=2, gamma=0.5, method="rloo")
    assert rloo.tolist() == [[-1.0, 2.0], [1.0, -2.0]]


def test_grpo_normalises_each_group_by_its_own_spread() -> None:
    """Two groups at scales 1 and 10 get the same advantages: ±1/sqrt(2) (std over 2 members)."""
    rewards = torch.tensor([[1.0], [3.0], [10.0], [30.0]])
    grpo = group_advantages(rewards, group_size=2, gamma=1.0, method="grpo")
    half = 2**-0.5
    torch.testing.assert_close(
        grpo[:, 0], torch.tensor([-half, half, -half, half]), atol=1e-5, rtol=0
    )


def test_k3_by_hand() -> None:
    """pi = 0.5, prior = 0.25: r = prior / pi = 0.5, k3 = (r - 1) - log r = log 2 - 0.5."""
    value = kl_k3(torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25])))
    assert value.item() == pytest.approx(math.log(2) - 0.5, abs=1e-6)


def test_the_split_penalty_weighs_event_and_pitch_by_their_own_betas() -> None:
    generator = torch.Generator().manual_seed(0)
    policy_logits = torch.randn(3, 5, 10, generator=generator)
    prior_logits = torch.randn(3, 5, 10, generator=generator)
    tokens = torch.randint(0, 10, (3, 5), generator=generator)
    log_ratio = token_log_probs(policy_logits, tokens) - token_log_probs(prior_logits, tokens)
    event, pitch = split_log_ratio(policy_logits, prior_logits, tokens)
    split = kl_penalty(log_ratio, 0.5, 3.0, policy_logits, prior_logits, tokens)
    torch.testing.assert_close(split, 0.5 * event + 3.0 * pitch)
    torch.testing.assert_close(kl_penalty(log_ratio, 0.5), 0.5 * log_ratio)


def test_the_split_reads_a_chorales_strikes_in_every_voice_block() -> None:
    from rlmusic.data.chorale_encoding import ChoraleEncoding

    enc = ChoraleEncoding()
    strikes = torch.as_tensor(enc.event_classes() == 2)
    generator = torch.Generator().manual_seed(1)
    policy_logits = torch.randn(2, 8, enc.vocab_size, generator=generator)
    prior_logits = torch.randn(2, 8, enc.vocab_size, generator=generator)
    tokens = torch.randint(0, enc.vocab_size, (2, 8), generator=generator)
    alto_c4, tenor_hold, bass_off = enc.pitch_to_token(60, 1), 2 * 51 + 1, 3 * 51
    tokens[0, :3] = torch.tensor([alto_c4, tenor_hold, bass_off])
    log_ratio = token_log_probs(policy_logits, tokens) - token_log_probs(prior_logits, tokens)
    event, pitch = split_log_ratio(policy_logits, prior_logits, tokens, strikes)
    torch.testing.assert_close(event + pitch, log_ratio)  # the parts add up to the whole
    # a hold or a rest in a lower voice is an event, not a strike: no pitch part
    assert pitch[0, 1].item() == 0.0 and pitch[0, 2].item() == 0.0
    torch.testing.assert_close(event[0, 1:3], log_ratio[0, 1:3])
    # an alto strike: the event is "a strike" (in any voice), the pitch the rest
    log_pi, log_p = policy_logits.log_softmax(-1), prior_logits.log_softmax(-1)
    strike_ratio = log_pi[0, 0, strikes].logsumexp(-1) - log_p[0, 0, strikes].logsumexp(-1)
    torch.testing.assert_close(event[0, 0], strike_ratio)
    assert (pitch[tokens % 51 < 2] == 0).all() and (pitch[tokens % 51 >= 2] != 0).all()
    # the melody reading (token >= 2) would take the tenor's hold for a strike
    _, melody_pitch = split_log_ratio(policy_logits, prior_logits, tokens)
    assert melody_pitch[0, 1].item() != 0.0
    split = kl_penalty(log_ratio, 0.5, 3.0, policy_logits, prior_logits, tokens, strikes)
    torch.testing.assert_close(split, 0.5 * event + 3.0 * pitch)
