"""algo=ppo learns the right way round: fast guards on SB3 PPO's update (issue 33).

Each test pins one part of :meth:`GeneratorPPO.train` / :meth:`GeneratorPPO._kl_control` by
what it does to a tiny LSTM policy, in well under a second: the update's direction on a reward
with a known optimum, the clipped surrogate against the rollout's log-probabilities, advantage
normalisation, the entropy bonus, the KL penalty's pull towards the prior, the value function's
normalised targets, the two optimizers, target_kl's early stop, GAE and the config's settings.
``scripts/mutants/sb3.py`` lists the edits of ``rlmusic/algos/sb3/`` they catch
(``python scripts/mutation_check.py --area sb3``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import Logger, configure

from rlmusic.algos.advantages import gae
from rlmusic.algos.kl import kl_penalty
from rlmusic.algos.sb3 import ppo as sb3_ppo
from rlmusic.algos.sb3.positions import position_logits
from rlmusic.algos.sb3.ppo import GeneratorPPO
from rlmusic.algos.value import explained_variance
from rlmusic.models import NoteLSTM
from rlmusic.tasks import finetune
from tests.sb3_helpers import LENGTH, TokenReward, finetune_config, lstm, make_ppo, one_rollout

PAID = 10  # the token TokenReward pays for (a pitch)


def quiet(model: GeneratorPPO) -> Logger:
    """An in-memory logger (``train()`` records into it); returns it."""
    logger = configure(None, [])
    model.set_logger(logger)
    return logger


def rollout_steps(model: GeneratorPPO) -> tuple[torch.Tensor, torch.Tensor]:
    """The last rollout's observations (N, LENGTH + 1) and actions (N,), read before ``train``
    (which reorders the buffer)."""
    buffer = model.rollout_buffer
    obs = torch.as_tensor(buffer.observations).reshape(-1, LENGTH + 1)
    return obs, torch.as_tensor(buffer.actions).reshape(-1).long()


def log_policy(generator: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """log pi(. | s) at each observation (N, V)."""
    with torch.no_grad():
        return torch.log_softmax(position_logits(generator, obs, LENGTH), -1)


def peaked(generator: NoteLSTM, factor: float = 4.0) -> NoteLSTM:
    """``generator`` with its logits scaled: a prior far from the near-uniform tiny LSTMs."""
    with torch.no_grad():
        generator.head.weight.mul_(factor)
        generator.head.bias.mul_(factor)
    return generator


# ---- the policy update ---------------------------------------------------------------------------


def test_ppo_raises_the_probability_of_the_paid_token() -> None:
    """The update's direction: loss sign, advantage sign and the ratio's orientation."""
    model = make_ppo(
        lstm(),
        n_envs=4,
        reward=TokenReward(PAID),
        learning_rate=3e-2,
        batch_size=32,
        n_epochs=4,
    )
    quiet(model)
    one_rollout(model)
    obs, _ = rollout_steps(model)
    before = log_policy(model.policy.generator, obs)[:, PAID].exp().mean()
    for _ in range(4):
        model.train()
        one_rollout(model)
    after = log_policy(model.policy.generator, obs)[:, PAID].exp().mean()
    # measured: 0.022 -> 0.35 (any wrong sign makes it fall below 0.022)
    assert after > 5 * before, (float(before), float(after))


def clipped_update(clip_range: float) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Train on a rollout whose old probabilities put every ratio at e^{+-0.5}, away from 1 in
    the direction of its advantage (+-1): (change of log pi at the actions (N,), the
    advantages (N,), the logged train/* values)."""
    model = make_ppo(
        lstm(),
        n_envs=4,
        reward=TokenReward(PAID),
        learning_rate=1e-2,
        n_epochs=4,
        clip_range=clip_range,
        normalize_advantage=False,  # the advantages' signs are what the test sets
    )
    logger = quiet(model)
    one_rollout(model)
    buffer = model.rollout_buffer
    rng = np.random.default_rng(0)
    sign = np.where(rng.random(buffer.advantages.shape) < 0.5, -1.0, 1.0).astype(np.float32)
    buffer.advantages[:] = sign
    # the sampling policy is the current one (ratio 1); the "old" one had moved 0.5 the other way
    buffer.log_probs -= 0.5 * sign
    obs, actions = rollout_steps(model)
    advantages = torch.as_tensor(sign).reshape(-1)
    before = log_policy(model.policy.generator, obs).gather(1, actions[:, None])[:, 0]
    model.train()
    after = log_policy(model.policy.generator, obs).gather(1, actions[:, None])[:, 0]
    return after - before, advantages, dict(logger.name_to_value)


def test_clipped_samples_pull_no_further_and_the_clip_range_is_the_configured_one() -> None:
    """Samples past 1 +- clip_range in their advantage's direction give no gradient (PPO's
    pessimistic bound): with every sample there the generator does not move at all; with a wider
    clip_range the same samples are inside it and pull each action the way of its advantage."""
    moved, _, logged = clipped_update(clip_range=0.2)
    assert logged["train/clip_fraction"] == 1.0
    torch.testing.assert_close(moved, torch.zeros_like(moved), rtol=0, atol=0)

    moved, advantages, logged = clipped_update(clip_range=1.0)  # e^{+-0.5} inside [0, 2]
    assert logged["train/clip_fraction"] < 0.5
    pull = moved[advantages > 0].mean() - moved[advantages < 0].mean()
    assert pull > 0.05, float(pull)


def update_with_advantages(scale: float, shift: float, normalize: bool) -> torch.Tensor:
    """The policy's log-probabilities after one update on the advantages ``scale * A + shift``
    (A: fixed normal draws), with an entropy bonus that the advantages' scale weighs against."""
    model = make_ppo(
        lstm(),
        n_envs=4,
        reward=TokenReward(PAID),
        learning_rate=1e-2,
        n_epochs=2,
        ent_coef=0.1,
        normalize_advantage=normalize,
    )
    quiet(model)
    one_rollout(model)
    buffer = model.rollout_buffer
    draws = np.random.default_rng(1).normal(size=buffer.advantages.shape).astype(np.float32)
    buffer.advantages[:] = scale * draws + shift
    obs, _ = rollout_steps(model)
    model.train()
    return log_policy(model.policy.generator, obs)


def test_normalised_advantages_make_the_update_invariant_to_their_scale_and_offset() -> None:
    reference = update_with_advantages(1.0, 0.0, normalize=True)
    affine = update_with_advantages(50.0, 20.0, normalize=True)
    torch.testing.assert_close(affine, reference, rtol=0, atol=1e-4)
    # ... and normalize_advantage=False uses them as they are
    raw = update_with_advantages(1.0, 0.0, normalize=False)
    raw_affine = update_with_advantages(50.0, 20.0, normalize=False)
    assert (raw_affine - raw).abs().max() > 1e-2


def test_the_entropy_bonus_raises_the_entropy() -> None:
    model = make_ppo(
        peaked(lstm()), n_envs=4, reward=TokenReward(PAID), learning_rate=1e-2, ent_coef=1.0
    )
    quiet(model)
    one_rollout(model)
    model.rollout_buffer.advantages[:] = 0.0  # no policy gradient: the bonus alone
    obs, _ = rollout_steps(model)

    def entropy() -> float:
        log_p = log_policy(model.policy.generator, obs)
        return float(-(log_p.exp() * log_p).sum(-1).mean())

    before = entropy()
    model.train()
    assert entropy() > before + 0.01, (before, entropy())


# ---- KL control ----------------------------------------------------------------------------------


def kl_to(prior: torch.nn.Module, model: GeneratorPPO, obs: torch.Tensor) -> float:
    """Exact KL(pi || prior) per token, averaged over the observations."""
    log_pi, log_prior = log_policy(model.policy.generator, obs), log_policy(prior, obs)
    return float((log_pi.exp() * (log_pi - log_prior)).sum(-1).mean())


def test_the_kl_penalty_pulls_the_policy_towards_the_prior() -> None:
    """No task reward: the penalty alone, added per token before advantages, shrinks the KL."""
    prior = peaked(lstm(7))
    model = make_ppo(
        lstm(),
        n_envs=4,
        reward=TokenReward(PAID, per_token=0.0),
        prior=prior,
        kl_coef=1.0,
        learning_rate=1e-2,
        batch_size=32,
        n_epochs=4,
    )
    quiet(model)
    one_rollout(model)
    obs, _ = rollout_steps(model)
    before = kl_to(prior, model, obs)
    for _ in range(5):
        model.train()
        one_rollout(model)
    after = kl_to(prior, model, obs)
    # measured: 0.214 -> 0.090 (sign flipped: it rises; no penalty in the advantages: unchanged)
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("target, rises", [(1e-6, True), (100.0, False)], ids=["above", "below"])
def test_the_adaptive_beta_follows_the_measured_kl(target: float, rises: bool) -> None:
    model = make_ppo(
        lstm(),
        reward=TokenReward(PAID),
        prior=peaked(lstm(7)),
        kl_coef=1.0,
        kl_target=target,
        kl_horizon=64,
    )
    quiet(model)
    one_rollout(model)  # 32 tokens, KL far above (below) the target: beta * (1 +- 0.2 / 2)
    assert model.kl_coef == pytest.approx(1.1 if rises else 0.9)


def test_the_split_penalty_reads_the_encodings_strikes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``event_classes`` decides which tokens the split KL takes for strikes (a chorale's lie in
    four voice blocks). Here only PAID strikes: every pitch part is 0 (one strike token leaves
    no pitch to choose), so the split penalty is beta * the whole log ratio."""
    classes = np.ones(38, dtype=np.int64)
    classes[0], classes[PAID] = 0, 2
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []

    def spy(log_ratio, coef, pitch_coef, *logits_and_tokens):
        penalty = kl_penalty(log_ratio, coef, pitch_coef, *logits_and_tokens)
        seen.append((log_ratio, penalty, logits_and_tokens[-1]))
        return penalty

    monkeypatch.setattr(sb3_ppo, "kl_penalty", spy)
    model = make_ppo(
        lstm(), reward=TokenReward(PAID), prior=peaked(lstm(7)), kl_coef=0.5, kl_pitch_coef=4.0,
        event_classes=classes,
    )  # fmt: skip
    quiet(model)
    one_rollout(model)
    ((log_ratio, penalty, strikes),) = seen
    assert strikes.tolist() == (classes == 2).tolist()
    torch.testing.assert_close(penalty, 0.5 * log_ratio)
    melody = make_ppo(lstm(), reward=TokenReward(PAID), prior=peaked(lstm(7)), kl_pitch_coef=4.0)
    assert melody.strikes is None  # None: the melody reading (token >= 2)


# ---- the value function ---------------------------------------------------------------------------


def test_the_value_function_fits_large_returns_within_a_few_updates() -> None:
    """Returns in the thousands (1000 paid on a piece's last step, gamma 0.9): normalised
    targets (PopArt statistics moved before each update) make them as easy as returns near 1."""
    model = make_ppo(
        lstm(),
        n_envs=4,
        reward=TokenReward(PAID, per_token=0.0, at_end=1000.0),
        learning_rate=0.0,  # the policy stays put: the same returns in every rollout
        value_lr=1e-2,
        n_epochs=10,
        batch_size=32,
        gamma=0.9,
    )
    quiet(model)
    for _ in range(3):
        one_rollout(model)
        model.train()
    one_rollout(model)  # predicted by the trained value function, against fresh returns
    values = torch.as_tensor(model.rollout_buffer.values)
    returns = torch.as_tensor(model.rollout_buffer.returns)
    assert explained_variance(values, returns) > 0.9
    assert (values - returns).abs().mean() < 0.05 * returns.abs().mean()


def test_each_optimizer_moves_only_its_own_module() -> None:
    """value_lr 0 freezes the value function whatever the generator's rate, and the reverse."""

    def moved(learning_rate: float, value_lr: float) -> tuple[bool, bool]:
        model = make_ppo(
            lstm(),
            reward=TokenReward(PAID, at_end=5.0),
            learning_rate=learning_rate,
            value_lr=value_lr,
            n_epochs=2,
        )
        quiet(model)
        one_rollout(model)
        policy = model.policy
        generator = [p.clone() for p in policy.generator.parameters()]
        value = [p.clone() for p in policy.value_fn.parameters()]
        model.train()  # the first statistics update sets mean and std, no weight
        return (
            any(not torch.equal(a, b) for a, b in zip(generator, policy.generator.parameters())),
            any(not torch.equal(a, b) for a, b in zip(value, policy.value_fn.parameters())),
        )

    assert moved(learning_rate=1e-2, value_lr=0.0) == (True, False)
    assert moved(learning_rate=0.0, value_lr=1e-2) == (False, True)


# ---- target_kl, GAE, settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "target_kl, steps, epochs",
    [(None, 20, 5), (10.0, 20, 5), (1e-6, 1, 1)],
    ids=["off", "far", "tiny"],
)
def test_target_kl_stops_the_epochs_before_the_minibatch_that_exceeds_it(
    target_kl: float | None, steps: int, epochs: int
) -> None:
    """5 epochs of 4 minibatches; a tiny target: the first step (ratio 1, KL 0 up to rounding)
    is taken, the next minibatch measures a KL above 1.5 x the target (~5e-5 against 1.5e-6) and
    the update ends there, that minibatch not applied."""
    model = make_ppo(
        lstm(),
        n_envs=4,
        reward=TokenReward(PAID),
        learning_rate=1e-2,
        n_epochs=5,
        target_kl=target_kl,
    )
    logger = quiet(model)
    one_rollout(model)
    buffer = model.rollout_buffer
    buffer.advantages[:] = np.random.default_rng(2).normal(size=buffer.advantages.shape)
    model.train()
    first = next(model.policy.generator.parameters())
    assert int(model.policy.optimizer.state[first]["step"]) == steps  # Adam steps taken
    assert logger.name_to_value["train/n_updates"] == epochs


def test_advantages_are_gae_of_the_penalised_rewards_once_the_critic_predicts() -> None:
    """After an update the values are far from 0: every piece ends inside the rollout, so the
    step after its last one is never bootstrapped."""
    model = make_ppo(
        lstm(),
        reward=TokenReward(PAID, at_end=50.0),
        prior=lstm(7),
        kl_coef=0.5,
        gamma=0.9,
        gae_lambda=0.8,
        value_lr=1e-2,
        n_epochs=4,
    )
    quiet(model)
    one_rollout(model)
    model.train()
    one_rollout(model)
    buffer = model.rollout_buffer

    def pieces(x: np.ndarray) -> torch.Tensor:  # (n_steps, n_envs) -> (pieces, LENGTH)
        return torch.as_tensor(x.T.reshape(-1, LENGTH))

    values = pieces(buffer.values)
    # the value of a fresh piece (what a bootstrap past a piece's end would add) is far from 0
    assert values[:, 0].abs().min() > 1.0
    advantages, returns = gae(pieces(buffer.rewards), values, 0.9, 0.8)
    torch.testing.assert_close(pieces(buffer.advantages), advantages, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(pieces(buffer.returns), returns, rtol=1e-4, atol=1e-4)


class Built(Exception):
    """Raised instead of learning: carries the model ``algo=ppo`` built from the config."""

    def __init__(self, model: GeneratorPPO) -> None:
        super().__init__("built")
        self.model = model


def test_every_ppo_setting_of_the_config_reaches_the_learner(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {
        "gamma": 0.37,
        "gae_lambda": 0.61,
        "clip_range": 0.13,
        "ent_coef": 0.011,
        "vf_coef": 0.29,
        "max_grad_norm": 0.7,
        "normalize_advantage": False,
        "target_kl": 0.05,
        "n_epochs": 3,
        "batch_size": 8,
        "n_steps": 16,
        "learning_rate": 3e-4,
    }

    def build_only(model: GeneratorPPO, *args: object) -> None:
        raise Built(model)

    monkeypatch.setattr(sb3_ppo, "learn", build_only)
    overrides = ["algo=ppo", "algo.n_envs=2", *(f"algo.{k}={v}" for k, v in settings.items())]
    with pytest.raises(Built) as built:
        finetune.run(finetune_config(tiny_checkpoint, overrides), output_dir=tmp_path)
    model = built.value.model
    model._setup_learn(1)  # SB3 turns clip_range and learning_rate into schedules
    seen = {key: getattr(model, key) for key in settings}
    seen["clip_range"] = model.clip_range(1.0)
    seen["learning_rate"] = model.lr_schedule(1.0)
    assert seen == pytest.approx(settings)
    assert model.rollout_buffer.gamma == 0.37 and model.rollout_buffer.gae_lambda == 0.61
    assert set(settings) == set(sb3_ppo.PPO_KEYS)  # a new key gets a line above
