"""RL Tuner's backups (algo=rl_tuner): hand-computed targets, episode ends, whole pieces."""

from __future__ import annotations

import math

import pytest
import torch

from rlmusic.algos.rl_tuner.targets import piece_targets, state_values, td_targets

REWARDS = torch.tensor([1.0, -2.0, 0.5])
DONES = torch.tensor([0.0, 0.0, 1.0])
NEXT = torch.tensor([[0.0, 1.0, 3.0], [2.0, -1.0, 0.5], [5.0, 5.0, 5.0]])
ONLINE = torch.tensor([[0.0, 9.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
PRIOR = torch.log(torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [1 / 3, 1 / 3, 1 / 3]]))
GAMMA = 0.5


def lse(values: list[float]) -> float:
    return math.log(sum(math.exp(v) for v in values))


def test_q_target_is_reward_plus_gamma_max() -> None:
    got = td_targets("q", REWARDS, DONES, GAMMA, NEXT)
    torch.testing.assert_close(got, torch.tensor([1.0 + 0.5 * 3.0, -2.0 + 0.5 * 2.0, 0.5]))


def test_double_q_target_uses_the_online_argmax() -> None:
    got = td_targets("q", REWARDS, DONES, GAMMA, NEXT, next_online=ONLINE)
    # the online net picks a=1 in the first row (Q_T 1.0), a=0 in the second (Q_T 2.0)
    torch.testing.assert_close(got, torch.tensor([1.0 + 0.5 * 1.0, -2.0 + 0.5 * 2.0, 0.5]))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_psi_target_is_a_soft_backup_at_its_temperature(temperature: float) -> None:
    got = td_targets("psi", REWARDS, DONES, GAMMA, NEXT, psi_temperature=temperature)
    rows = NEXT.tolist()
    expected = [
        1.0 + GAMMA * temperature * lse([v / temperature for v in rows[0]]),
        -2.0 + GAMMA * temperature * lse([v / temperature for v in rows[1]]),
        0.5,
    ]
    torch.testing.assert_close(got, torch.tensor(expected))


def test_g_target_puts_the_prior_inside_the_backup() -> None:
    got = td_targets("g", REWARDS, DONES, GAMMA, NEXT, next_prior_log_probs=PRIOR)
    p, g = PRIOR.exp().tolist(), NEXT.tolist()
    expected = [
        1.0 + GAMMA * math.log(sum(pa * math.exp(ga) for pa, ga in zip(p[0], g[0]))),
        -2.0 + GAMMA * math.log(sum(pa * math.exp(ga) for pa, ga in zip(p[1], g[1]))),
        0.5,
    ]
    torch.testing.assert_close(got, torch.tensor(expected))
    with pytest.raises(ValueError, match="p_prior"):
        td_targets("g", REWARDS, DONES, GAMMA, NEXT)


def test_soft_values_tend_to_the_max_as_the_temperature_falls() -> None:
    hard = state_values("q", NEXT)
    soft = state_values("psi", NEXT, psi_temperature=1e-3)
    torch.testing.assert_close(soft, hard, atol=1e-2, rtol=0)
    # with a uniform prior, G's backup is the psi backup shifted by log(1 / V)
    uniform = torch.full_like(NEXT, -math.log(3))
    torch.testing.assert_close(
        state_values("g", NEXT, prior_log_probs=uniform),
        state_values("psi", NEXT) - math.log(3),
    )


@pytest.mark.parametrize("variant", ["q", "psi", "g"])
def test_terminal_transitions_do_not_bootstrap_even_from_non_finite_values(variant: str) -> None:
    nxt = NEXT.clone()
    nxt[2] = float("inf")  # a done step's next state is never read
    got = td_targets(variant, REWARDS, torch.ones(3), GAMMA, nxt * 100, next_prior_log_probs=PRIOR)
    torch.testing.assert_close(got, REWARDS)


@pytest.mark.parametrize("variant", ["q", "psi", "g"])
def test_piece_targets_read_the_next_position_and_stop_at_the_piece_end(variant: str) -> None:
    """Every step of two pieces at once equals the transitions written out one by one."""
    gen = torch.Generator().manual_seed(0)
    pieces, steps, vocab = 2, 4, 3
    rewards = torch.randn(pieces, steps, generator=gen)
    target = torch.randn(pieces, steps, vocab, generator=gen)
    online = torch.randn(pieces, steps, vocab, generator=gen)
    prior = torch.log_softmax(torch.randn(pieces, steps, vocab, generator=gen), -1)
    got = piece_targets(
        variant,
        rewards,
        GAMMA,
        target,
        online_values=online if variant == "q" else None,
        prior_log_probs=prior,
        psi_temperature=0.7,
    )
    for i in range(pieces):
        for t in range(steps):
            if t == steps - 1:  # terminal: the reward alone, never the next piece's start
                expected = rewards[i, t]
            else:
                value = state_values(
                    variant,
                    target[i, t + 1],
                    online[i, t + 1] if variant == "q" else None,
                    prior[i, t + 1],
                    0.7,
                )
                expected = rewards[i, t] + GAMMA * value
            torch.testing.assert_close(got[i, t], expected)


def test_an_unknown_variant_is_named() -> None:
    with pytest.raises(ValueError, match="'dqn'"):
        state_values("dqn", NEXT)
