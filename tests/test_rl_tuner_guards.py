"""Fast guards of RL Tuner's learning (algo=rl_tuner): each variant must learn, in the right
direction, through its own backup, from a Polyak-averaged target network, and act and save the
policy it learned.

The learning problems are small enough to solve exactly: a five-token vocabulary and pieces of
four steps (625 pieces, so an objective is a sum over every piece, not a sample), and a reward
paid for one note. Nothing here reads the implementation's own helpers to get an expected
value: expectations come from the definitions (docs/rl_tuner.md, "Rewards and backups").
``scripts/mutants/rl_tuner.py`` lists the edits these tests must catch.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlmusic.algos.finetune_setup import build_setup
from rlmusic.algos.rl_tuner.acting import act
from rlmusic.algos.rl_tuner.config import RLTunerConfig
from rlmusic.algos.rl_tuner.run import reward_function
from rlmusic.algos.rl_tuner.trainer import RLTunerTrainer
from rlmusic.models.base import sequence_log_probs, with_bos
from tests.conftest import tiny_lstm

VOCAB, LENGTH = 5, 4
STAR, PAY = 2, 2.0  # the note paid for, and what it pays per step
W = 1.0  # the KL weight of the learning problem
ALL_PIECES = torch.tensor(list(itertools.product(range(VOCAB), repeat=LENGTH)))  # (625, 4)
VARIANTS = ["q", "psi", "g"]


def tiny(seed: int) -> nn.Module:
    return tiny_lstm(seed, vocab_size=VOCAB)


def task_reward(tokens: torch.Tensor | np.ndarray) -> torch.Tensor:
    """PAY for every step that plays STAR: (B, T) -> (B, T)."""
    return PAY * (torch.as_tensor(tokens) == STAR).float()


def constant_values(network: nn.Module, values: list[float]) -> None:
    """Make ``network`` answer ``values`` at every state (a zero output layer plus a bias)."""
    with torch.no_grad():
        network.head.weight.zero_()
        network.head.bias.copy_(torch.tensor(values))


def zero_reward(tokens: np.ndarray, prior: np.ndarray | None):
    return np.zeros(tokens.shape), {}


def trainer(variant: str, reward=zero_reward, prior_seed: int = 1, **options) -> RLTunerTrainer:
    values = dict(variant=variant, n_envs=16, batch_size=16, length=LENGTH, precision="fp32")
    values.update(options)
    return RLTunerTrainer(tiny(0), reward, RLTunerConfig(**values), prior=tiny(prior_seed))


# ---- learning: each variant learns the paid note and raises its own objective ---------------


def learning_reward(variant: str, prior: nn.Module):
    """The variant's reward as algo=rl_tuner pays it (run.py): q ``W log p_prior + r``, psi
    ``log p_prior + r / W``, g ``r / W`` (its prior sits in the backup)."""

    def reward(tokens: np.ndarray, played_prior: np.ndarray | None):
        task = task_reward(tokens).numpy()
        if variant == "g":
            return task / W, {}
        with torch.no_grad():
            log_prior = sequence_log_probs(prior, torch.as_tensor(tokens)).numpy()
        return (W * log_prior + task if variant == "q" else log_prior + task / W), {}

    return reward


@torch.no_grad()
def own_objective(tr: RLTunerTrainer) -> tuple[float, float]:
    """(the objective of the saved policy, its best possible value), summed over all pieces.

    q: the return of its reward, ``E[sum W log p_prior + r]`` (best: the best single piece);
    psi: the entropy-regularised return of its reward, ``E[sum log p_prior + r / W - c log pi]``
    (best: ``c log sum_x exp(R(x) / c)``); g: ``E[sum r] - W KL(pi || p_prior)`` (best:
    ``W log sum_x p_prior(x) exp(r(x) / W)``).
    """
    log_pi = sequence_log_probs(tr.policy(), ALL_PIECES).sum(1)
    log_prior = sequence_log_probs(tr.prior, ALL_PIECES).sum(1)
    task = task_reward(ALL_PIECES).sum(1)
    variant, c = tr.config.variant, tr.config.psi_temperature
    if variant == "q":
        value = W * log_prior + task
        best = value.max()
    elif variant == "psi":
        value = log_prior + task / W - c * log_pi
        best = c * torch.logsumexp((log_prior + task / W) / c, 0)
    else:
        value = task - W * (log_pi - log_prior)
        best = W * torch.logsumexp(log_prior + task / W, 0)
    return float((log_pi.exp() * value).sum()), float(best)


@torch.no_grad()
def star_share(policy: nn.Module) -> float:
    """The share of steps the policy plays STAR (exact, over all pieces)."""
    pi = sequence_log_probs(policy, ALL_PIECES).sum(1).exp()
    return float((pi * (ALL_PIECES == STAR).float().mean(1)).sum())


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_learns_the_paid_note_and_raises_its_own_objective(variant: str) -> None:
    """Five rounds (128 gradient steps, epsilon 1 -> 0.1 over the first half): the saved policy
    moves to the paid note, psi and g reach their objective's optimum (q's objective rises, but
    softmax(Q) is not its optimum), the notes played earn more round after round, and greedy
    acting plays the paid note at every step, whose value leads every other note's."""
    prior = tiny(0)  # as in a run, the prior is the start model
    tr = RLTunerTrainer(
        tiny(0),
        learning_reward(variant, prior),
        RLTunerConfig(
            variant=variant,
            n_envs=16,
            batch_size=16,
            length=LENGTH,
            total_timesteps=5 * 16 * LENGTH,
            learning_rate=1e-2,
            tau=0.1,
            psi_temperature=0.5 if variant == "psi" else 1.0,
            precision="fp32",
        ),
        prior=prior,
    )
    before, best = own_objective(tr)
    share_before = star_share(tr.policy())
    played = [tr.round()["reward/learning"] for _ in range(5)]
    after, _ = own_objective(tr)
    assert after > before + 1.0, (before, after, best)
    assert share_before < 0.3 and star_share(tr.policy()) > 0.5
    assert played[-1] > played[0] + 3.0, played  # acting follows what was learned
    if variant != "q":
        assert after > best - 0.05, (after, best)
    greedy = act(
        tr.q_network,
        4,
        LENGTH,
        variant,
        torch.Generator().manual_seed(0),
        [0.0] * LENGTH,
        prior=tr.prior if variant == "g" else None,
        psi_temperature=tr.config.psi_temperature,
    )
    assert (greedy.tokens == STAR).all(), greedy.tokens
    with torch.no_grad():
        values = tr.q_network(with_bos(greedy.tokens, VOCAB))[0]  # (T, V)
    others = torch.cat([values[:, :STAR], values[:, STAR + 1 :]], 1).max(1).values
    assert (values[:, STAR] - others > 0.5 * PAY).all(), values  # by about PAY


# ---- the backup: what a trained network's values satisfy -----------------------------------

PIECE = torch.tensor([[0, 1, 3, 4]])
PIECE_REWARDS = torch.tensor([[0.5, -1.0, 0.0, 3.0]])
PIECE_PRIOR = F.log_softmax(
    2 * torch.randn(1, LENGTH, VOCAB, generator=torch.Generator().manual_seed(3)), -1
)


def fit_one_piece(variant: str, tau: float, steps: int = 150, gamma: float = 0.7) -> tuple:
    """Regress on one stored piece until the values settle: (Q(s_t, .) (T, V), config)."""
    tr = trainer(variant, tau=tau, gamma=gamma, learning_rate=1e-2, psi_temperature=0.5)
    tr.replay.add(PIECE, PIECE_REWARDS, PIECE_PRIOR if variant == "g" else None)
    for _ in range(steps):
        tr.gradient_step()
    with torch.no_grad():
        return tr.q_network(with_bos(PIECE, VOCAB))[0], tr.config


def bellman_values(variant: str, values: torch.Tensor, config: RLTunerConfig) -> torch.Tensor:
    """The right-hand side of the variant's Bellman equation at each step of PIECE, from the
    definitions: q ``r + g max Q(s')``, psi ``r + g c log sum exp(Psi(s') / c)``, g ``r + g log
    sum p_prior(.|s') exp(G(s'))``; the last step is terminal (its reward alone)."""
    g, c = config.gamma, config.psi_temperature
    following = values[1:]  # (T - 1, V): the next state of every step but the last
    if variant == "q":
        soft = following.max(-1).values
    elif variant == "psi":
        soft = c * torch.log(torch.exp(following / c).sum(-1))
    else:
        soft = torch.log((PIECE_PRIOR[0, 1:].exp() * following.exp()).sum(-1))
    return PIECE_REWARDS[0] + g * torch.cat([soft, torch.zeros(1)])


@pytest.mark.parametrize("variant", VARIANTS)
def test_trained_values_satisfy_the_variants_bellman_equation(variant: str) -> None:
    """Trained on one piece until online and target networks agree, Q(s_t, a_t) is the
    variant's backup of the network's own next-state values (gamma 0.7, c 0.5, rewards of both
    signs, a peaked prior for g): the update descends, the backup is the variant's, the end of
    the piece is terminal and the target network follows the online one."""
    values, config = fit_one_piece(variant, tau=0.25)
    chosen = values.gather(-1, PIECE[0][:, None])[:, 0]
    expected = bellman_values(variant, values, config)
    torch.testing.assert_close(chosen, expected, rtol=0, atol=0.05)


def test_with_the_target_network_frozen_values_stop_flowing_back() -> None:
    """The control of the test above: with tau ~ 0 the target network keeps its initial values
    and the backed-up reward never reaches the first steps, so the Bellman equation is off by
    far more than its tolerance (it is the target network that carries the values back)."""
    values, config = fit_one_piece("q", tau=1e-6, steps=100)
    chosen = values.gather(-1, PIECE[0][:, None])[:, 0]
    gap = (chosen - bellman_values("q", values, config)).abs()
    assert gap[:2].min() > 0.5, gap  # steps 0 and 1 read a stale (untrained) next state
    assert gap[-1] < 0.05  # the terminal step needs no target network


# ---- one gradient step against a target network of known values ----------------------------

TARGET_VALUES = [0.5, -1.0, 2.0, 1.0, 0.0]  # argmax 2
ONLINE_VALUES = [0.3, 1.5, -0.5, 0.0, 0.2]  # argmax 1: Double DQN reads TARGET_VALUES[1]
STEP_REWARDS = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
STEP_PRIOR = torch.log(torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1]))


def state_value(variant: str, double_q: bool, temperature: float) -> float:
    """V(s') of a target network answering TARGET_VALUES everywhere, from the definitions."""
    if variant == "q":
        return TARGET_VALUES[int(np.argmax(ONLINE_VALUES))] if double_q else max(TARGET_VALUES)
    if variant == "psi":
        return temperature * math.log(sum(math.exp(v / temperature) for v in TARGET_VALUES))
    prior = STEP_PRIOR.exp().tolist()
    return math.log(sum(p * math.exp(v) for p, v in zip(prior, TARGET_VALUES)))


@pytest.mark.parametrize(
    "variant, double_q",
    [("q", False), ("q", True), ("psi", False), ("g", False)],
    ids=["q", "double-q", "psi", "g"],
)
def test_a_gradient_step_regresses_on_the_target_networks_backup(
    variant: str, double_q: bool
) -> None:
    """The target y_t = r_t + gamma (1 - d_t) V_T(s_{t+1}) is built from the target network
    (here answering known values everywhere), not from the online one (answering others), with
    gamma 0.7, c 0.5, the prior inside g's soft value, the online argmax for Double DQN and the
    last step terminal; the step regresses Q(s_t, a_t) of the notes played, downhill."""
    gamma, c = 0.7, 0.5
    tr = trainer(
        variant, gamma=gamma, psi_temperature=c, double_q=double_q, tau=0.5, learning_rate=1e-2
    )
    constant_values(tr.target_network, TARGET_VALUES)
    constant_values(tr.q_network, ONLINE_VALUES)
    prior = STEP_PRIOR.expand(1, LENGTH, VOCAB) if variant == "g" else None
    tr.replay.add(PIECE, STEP_REWARDS, prior)  # the only piece: every draw is this one
    value = state_value(variant, double_q, c)
    y = STEP_REWARDS[0] + gamma * torch.tensor([value, value, value, 0.0])
    q = torch.tensor([ONLINE_VALUES[a] for a in PIECE[0]])
    stats = tr.gradient_step()
    assert stats["losses/target_mean"] == pytest.approx(float(y.mean()), abs=1e-5)
    assert stats["losses/td"] == pytest.approx(float(((q - y) ** 2).mean()), abs=1e-5)
    with torch.no_grad():
        q_after = tr.q_network(with_bos(PIECE, VOCAB))[0].gather(-1, PIECE[0][:, None])[:, 0]
    assert float(((q_after - y) ** 2).mean()) < stats["losses/td"] - 0.02  # descended


# ---- the target network: Polyak averaging, never trained -----------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_target_network_is_a_polyak_average_of_the_online_one(variant: str) -> None:
    """After every gradient step target = (1 - tau) target_before + tau online_after, the
    target network gets no gradient, and it stays a separate network (it lags behind)."""
    tau = 0.2
    tr = trainer(variant, tau=tau, learning_rate=1e-2)
    gen = torch.Generator().manual_seed(0)
    prior = F.log_softmax(torch.randn(4, LENGTH, VOCAB, generator=gen), -1)
    tr.replay.add(
        torch.randint(0, VOCAB, (4, LENGTH), generator=gen),
        torch.randn(4, LENGTH, generator=gen),
        prior if variant == "g" else None,
    )
    for _ in range(3):
        before = [p.detach().clone() for p in tr.target_network.parameters()]
        online_before = [p.detach().clone() for p in tr.q_network.parameters()]
        tr.gradient_step()
        online = [p.detach() for p in tr.q_network.parameters()]
        assert any(not torch.equal(a, b) for a, b in zip(online, online_before))  # it learned
        for old, new, now in zip(before, tr.target_network.parameters(), online):
            torch.testing.assert_close(new.detach(), (1 - tau) * old + tau * now, rtol=0, atol=1e-6)
            assert new.grad is None and not new.requires_grad
    lag = sum(float((a - b).abs().sum()) for a, b in zip(tr.target_network.parameters(), online))
    assert lag > 1e-3


# ---- acting and the saved policy: the variant's policy, by its definition ------------------

Q_AT_EVERY_STATE = [0.0, 1.0, 2.0, 0.5, -1.0]  # argmax 2
PRIOR_LOGITS = [2.0, 0.0, -1.0, 1.0, 0.0]  # with the prior, p_prior exp(G) peaks at note 0


def policy_by_definition(variant: str, c: float) -> torch.Tensor:
    """q softmax(Q), psi softmax(Psi / c), g p_prior exp(G) normalised."""
    values = torch.tensor(Q_AT_EVERY_STATE)
    if variant == "q":
        weights = values.exp()
    elif variant == "psi":
        weights = (values / c).exp()
    else:
        prior = torch.tensor(PRIOR_LOGITS).exp()
        weights = prior / prior.sum() * values.exp()
    return weights / weights.sum()


def networks_with_known_values() -> tuple[nn.Module, nn.Module]:
    network, prior = tiny(0).eval(), tiny(1).eval()
    constant_values(network, Q_AT_EVERY_STATE)
    constant_values(prior, PRIOR_LOGITS)
    return network, prior


@pytest.mark.parametrize("variant", VARIANTS)
def test_acting_plays_the_variants_policy(variant: str) -> None:
    """Greedy acting plays the argmax of the variant's policy (g: note 0, where G's own argmax
    is note 2) and Boltzmann acting samples it (q at its Boltzmann temperature 2; psi at c 0.5,
    which the Boltzmann temperature does not touch)."""
    network, prior = networks_with_known_values()
    c, temperature = 0.5, 2.0
    expected = policy_by_definition(variant, c)
    greedy = act(
        network, 8, 3, variant, torch.Generator().manual_seed(0), [0.0] * 3, prior, temperature, c
    )
    assert (greedy.tokens == int(expected.argmax())).all() and greedy.explored == 0.0
    n = 20_000
    sampled = act(
        network, n, 1, variant, torch.Generator().manual_seed(0), None, prior, temperature, c
    )
    if variant == "q":
        expected = F.softmax(torch.tensor(Q_AT_EVERY_STATE) / temperature, -1)
    frequencies = torch.bincount(sampled.tokens[:, 0], minlength=VOCAB) / n
    torch.testing.assert_close(frequencies, expected, rtol=0, atol=0.015)


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_saved_policy_is_the_variants_policy(variant: str) -> None:
    """trainer.policy() (what run.py saves and every task samples) is softmax(Q), softmax(Psi /
    c) or p_prior exp(G) normalised."""
    network, prior = networks_with_known_values()
    settings = RLTunerConfig(
        variant=variant, n_envs=4, batch_size=16, length=LENGTH, psi_temperature=0.5
    )
    policy = RLTunerTrainer(network, zero_reward, settings, prior=prior).policy()
    inputs = with_bos(ALL_PIECES[:7], VOCAB)
    with torch.no_grad():
        got = F.softmax(policy(inputs).float(), -1)
    torch.testing.assert_close(got, policy_by_definition(variant, 0.5).expand_as(got))


# ---- the KL weight: each variant's learning reward --------------------------------------------


def test_each_variants_learning_reward_scales_with_the_kl_weight(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    """With w = 2 and r the task reward: q learns on ``w log p_prior + r``, psi on the same over
    w, g on ``r / w`` (its log p_prior in the backup); every variant logs the prior's share."""
    reward_cfg = {
        "c": 0.5,
        "rules": ["key", "repetition"],
        "prior": {"checkpoint": "start", "weight": 2.0},
    }
    setup = build_setup(str(tiny_checkpoint), reward_cfg, tmp_path, device="cpu", length=8)
    assert RLTunerConfig(kl_coef=3.0).with_kl_weight(2.0).kl_coef == 3.0
    assert RLTunerConfig(kl_coef=None).with_kl_weight(2.0).kl_coef == 2.0
    tokens = np.random.default_rng(0).integers(0, 38, (6, 8))
    task = setup.reward.score(tokens)[0]
    with torch.no_grad():
        log_prior = sequence_log_probs(setup.reference.generator, torch.as_tensor(tokens)).numpy()
    expected = {"q": task + 2 * log_prior, "psi": (task + 2 * log_prior) / 2, "g": task / 2}
    for variant in VARIANTS:
        config = RLTunerConfig(variant=variant, length=8, batch_size=32, kl_coef=2.0)
        learning, shares = reward_function(setup, config)(tokens, log_prior)
        np.testing.assert_allclose(learning, expected[variant], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(shares["prior"], 2 * log_prior, rtol=1e-5, atol=1e-4)
