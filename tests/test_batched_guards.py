"""Fast guards on the batched learners' direction: each test fails when one part of the update
is broken (see ``scripts/mutants/batched.py`` for the edits each one catches).

Every test runs :class:`tests.toy_generator.ToyGenerator` for one to a few dozen iterations of
a tiny batch (tens of milliseconds each) on rewards whose optimum is known, and compares runs
that differ in one setting within the same test, so the bounds are ratios with wide margins.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rlmusic.algos.batched.trainer import BatchedConfig, BatchedTrainer, RewardFn
from rlmusic.algos.kl import split_log_ratio
from rlmusic.models.base import with_bos
from rlmusic.models.sampling import sample_with_log_probs
from tests.toy_generator import ToyGenerator

METHODS = ["rloo", "grpo", "ppo"]
# each method with the KL in the reward, and rloo with the KL in the loss
WITH_KL_MODES = [*((m, "penalty") for m in METHODS), ("rloo", "loss")]
MIDDLE_C, HIGH_G = 14, 21  # two pitch tokens


def tiny_config(**overrides: object) -> BatchedConfig:
    base = dict(
        batch_size=32, minibatch_size=16, length=8, group_size=8, lr=3e-3, epochs=2, kl_coef=0.0
    )
    # the values these tests were written against (BatchedConfig's defaults are the shipped run's)
    base.update(method="ppo", gamma=1.0, kl_pitch_coef=None)
    return BatchedConfig(**{**base, **overrides})


def play(token: int, scale: float = 1.0) -> RewardFn:
    """A reward of ``scale`` per step that plays ``token`` (optimum: always play it)."""

    def reward(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r = scale * (tokens == token).astype(np.float32)
        return r, {"play": r}

    return reward


def nothing(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    r = np.zeros(tokens.shape, dtype=np.float32)
    return r, {"nothing": r}


def probe(model: torch.nn.Module, n: int = 64, length: int = 8, seed: int = 123) -> torch.Tensor:
    """``n`` compositions sampled from ``model`` with a private generator."""
    with torch.no_grad():
        tokens, _ = sample_with_log_probs(model, n, length, torch.Generator().manual_seed(seed))
    return tokens


def log_policy(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """log pi(. | prefix) at every step of ``tokens``: (B, T, V)."""
    with torch.no_grad():
        return torch.log_softmax(model(with_bos(tokens, model.bos_token)).float(), -1)


def exact_kl(p: torch.nn.Module, q: torch.nn.Module, tokens: torch.Tensor) -> float:
    """Mean over the prefixes of ``tokens`` of KL(p || q), summed exactly over the vocabulary."""
    log_p, log_q = log_policy(p, tokens), log_policy(q, tokens)
    return float((log_p.exp() * (log_p - log_q)).sum(-1).mean())


def first_step_log_prob(model: torch.nn.Module, token: int) -> float:
    """log pi(token) at the first step (from BOS)."""
    bos = torch.full((1, 1), model.bos_token, dtype=torch.long)
    with torch.no_grad():
        return float(torch.log_softmax(model(bos)[0, -1].float(), -1)[token])


# ---- direction and ratio ---------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_the_ratio_is_one_until_the_policy_moves(method: str) -> None:
    """At lr 0 the policy that is trained is the one that sampled: every ratio is exactly 1."""
    trainer = BatchedTrainer(
        ToyGenerator(), play(MIDDLE_C), tiny_config(method=method, lr=0.0, epochs=2), seed=0
    )
    metrics = trainer.step()
    assert metrics["losses/clipfrac"] == 0.0
    assert abs(metrics["losses/approx_kl"]) < 1e-6


@pytest.mark.parametrize(("method", "kl_mode"), WITH_KL_MODES)
def test_the_update_climbs_the_reward_and_descends_when_it_is_negated(
    method: str, kl_mode: str
) -> None:
    """One reward, its negation: the probability of the rewarded token must go up, then down.

    Measured after 5 iterations, log pi(C) at the first step: +0.39 to +0.47, then -0.41 to -0.49.
    """
    moves = {}
    for sign in (1.0, -1.0):
        config = tiny_config(method=method, kl_mode=kl_mode)
        trainer = BatchedTrainer(ToyGenerator(), play(MIDDLE_C, sign), config, seed=0)
        start = first_step_log_prob(trainer.policy, MIDDLE_C)
        for _ in range(5):
            trainer.step()
        moves[sign] = first_step_log_prob(trainer.policy, MIDDLE_C) - start
    assert moves[1.0] > 0.2 and moves[-1.0] < -0.2


# ---- clipping --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_clipping_bounds_the_movement_of_one_iteration(method: str) -> None:
    """Many epochs on one batch: the clipped objective stops the policy near its clip range.

    Measured (ToyGenerator, lr 3e-3, 20 epochs): KL(old || new) per token ~0.0025 at clip
    0.02, 0.025-0.032 at 0.3 and 0.16-0.23 unclipped.
    """

    def movement(clip_range: float) -> float:
        config = tiny_config(method=method, clip_range=clip_range, epochs=20)
        trainer = BatchedTrainer(ToyGenerator(), play(MIDDLE_C), config, seed=0)
        start = copy.deepcopy(trainer.policy)
        trainer.step()
        return exact_kl(start, trainer.policy, probe(start))

    small, large, unclipped = movement(0.02), movement(0.3), movement(1e3)
    assert small < unclipped / 20  # clipping bounds the step
    assert small < large / 4  # ... at the configured range
    assert large < unclipped / 2


# ---- KL control ------------------------------------------------------------------------------
def displaced_policy() -> ToyGenerator:
    """The start model with its output biases moved at random: KL ~0.3 nats per token from it."""
    model = ToyGenerator()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        model.head.bias.add_(torch.randn(model.head.bias.shape, generator=generator))
    return model


@pytest.mark.parametrize(("method", "kl_mode"), WITH_KL_MODES)
def test_a_kl_coefficient_alone_pulls_the_policy_back_to_the_prior(
    method: str, kl_mode: str
) -> None:
    """No task reward, a high beta: KL(pi || prior) must fall from where the run starts.

    Measured: ~0.30 nats per token at the start, 0.01-0.03 after 10 iterations (every case).
    """
    config = tiny_config(method=method, kl_mode=kl_mode, kl_coef=1.0, lr=1e-2)
    trainer = BatchedTrainer(displaced_policy(), nothing, config, seed=0, prior=ToyGenerator())
    tokens = probe(trainer.prior)
    first = exact_kl(trainer.policy, trainer.prior, tokens)
    for _ in range(10):
        trainer.step()
    last = exact_kl(trainer.policy, trainer.prior, tokens)
    assert last < first / 4


def pitch_kl(policy: torch.nn.Module, prior: torch.nn.Module) -> tuple[float, float]:
    """Event and pitch parts of KL(pi || prior) at the policy's samples (split_log_ratio)."""
    tokens = probe(policy, n=256)
    with torch.no_grad():
        event, pitch = split_log_ratio(
            policy(with_bos(tokens, policy.bos_token)),
            prior(with_bos(tokens, prior.bos_token)),
            tokens,
        )
    return float(event.mean()), float(pitch.mean())


def test_the_pitch_beta_holds_the_pitch_choice() -> None:
    """kl_coef 0, kl_pitch_coef high, no task reward: the pitch part of the KL must fall.

    Measured: 0.28 nats per token at the start, 0.03 after 10 iterations.
    """
    config = tiny_config(method="rloo", kl_coef=0.0, kl_pitch_coef=2.0, lr=1e-2)
    trainer = BatchedTrainer(displaced_policy(), nothing, config, seed=0, prior=ToyGenerator())
    first = pitch_kl(trainer.policy, trainer.prior)
    for _ in range(10):
        trainer.step()
    last = pitch_kl(trainer.policy, trainer.prior)
    assert last[1] < first[1] / 4


# ---- advantages --------------------------------------------------------------------------------
def one_update(reward: RewardFn, **overrides: object) -> dict[str, torch.Tensor]:
    trainer = BatchedTrainer(ToyGenerator(), reward, tiny_config(**overrides), seed=0)
    trainer.step()
    return {k: v.clone() for k, v in trainer.policy.state_dict().items()}


def shifted(reward: RewardFn, scale: float, shift: float) -> RewardFn:
    """``scale * reward + shift``."""

    def new(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r, terms = reward(tokens)
        return scale * r + shift, terms

    return new


def test_normalised_advantages_ignore_the_reward_scale_and_offset() -> None:
    """ppo at gamma 0 (advantage = reward - value, the value 0 at first): the normalised
    advantages, hence the first update, are the same for r, r + 3 and r / 10,000."""
    settings = dict(method="ppo", gamma=0.0)
    base = one_update(play(MIDDLE_C), **settings)
    for scale, shift in ((1.0, 3.0), (1e-4, 0.0)):
        other = one_update(shifted(play(MIDDLE_C), scale, shift), **settings)
        for name, value in base.items():
            torch.testing.assert_close(other[name], value, atol=2e-5, rtol=0, msg=name)


def by_group(first: int, second: int, scale: float, group: int) -> RewardFn:
    """Rows of the first group are paid ``scale`` for ``first``, the others 1 for ``second``."""

    def reward(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r = (tokens == second).astype(np.float32)
        r[:group] = scale * (tokens[:group] == first)
        return r, {"group": r}

    return reward


@pytest.mark.parametrize("method", ["rloo", "grpo"])
def test_grpo_weighs_groups_alike_and_rloo_by_their_reward_scale(method: str) -> None:
    """Two groups paid for two different pitches, one at 30x the scale: GRPO's per-group std
    gives both pitches the same pull; RLOO's leave-one-out baseline keeps the scales.

    Measured after 4 iterations, log pi(C) and log pi(G) at the first step: GRPO +0.27 and
    +0.18, RLOO +0.31 and -0.01.
    """
    config = tiny_config(method=method, group_size=16)
    trainer = BatchedTrainer(ToyGenerator(), by_group(MIDDLE_C, HIGH_G, 30.0, 16), config, seed=0)
    start = [first_step_log_prob(trainer.policy, t) for t in (MIDDLE_C, HIGH_G)]
    for _ in range(4):
        trainer.step()
    up_c, up_g = (
        first_step_log_prob(trainer.policy, t) - s for t, s in zip((MIDDLE_C, HIGH_G), start)
    )
    if method == "grpo":
        assert up_c > 0.1 and up_g > 0.1 and 0.33 < up_c / up_g < 3
    else:
        assert up_c > 0.1 and up_g < up_c / 4


def test_the_entropy_bonus_raises_the_entropy() -> None:
    """No task reward, ent_coef 0.5: the entropy rises (measured 3.34 -> 3.62 nats)."""
    config = tiny_config(method="rloo", ent_coef=0.5, lr=1e-2)
    trainer = BatchedTrainer(displaced_policy(), nothing, config, seed=0)
    tokens = probe(trainer.policy)

    def entropy() -> float:
        logp = log_policy(trainer.policy, tokens)
        return float(-(logp.exp() * logp).sum(-1).mean())

    first = entropy()
    for _ in range(5):
        trainer.step()
    assert entropy() > first + 0.1


# ---- the encoding's events ---------------------------------------------------------------------
def test_a_chorale_trainer_counts_strikes_in_every_voice_block() -> None:
    """The trainer reads the vocabulary through the encoding's event classes: a lower voice's
    hold (token 52, 103, 154) is no onset, as the melody reading (token >= 2) would have it."""
    from rlmusic.data.chorale_encoding import ChoraleEncoding

    enc = ChoraleEncoding()
    seen: list[np.ndarray] = []

    def spy(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        seen.append(tokens.copy())
        return nothing(tokens)

    config = tiny_config(method="rloo", kl_coef=0.1, kl_pitch_coef=1.0, length=16)
    policy = ToyGenerator(enc.vocab_size)
    trainer = BatchedTrainer(
        policy, spy, config, seed=0, prior=ToyGenerator(enc.vocab_size),
        event_classes=enc.event_classes(),
    )  # fmt: skip
    assert trainer.strikes.tolist() == (enc.event_classes() == 2).tolist()
    metrics = trainer.step()
    (tokens,) = seen
    onsets = enc.is_onset(tokens).sum(1).mean()
    assert metrics["policy/onsets_per_piece"] == pytest.approx(onsets)
    assert onsets < (tokens >= 2).sum(1).mean()  # the melody reading counts lower voices' holds
    melody = BatchedTrainer(ToyGenerator(), nothing, tiny_config(), seed=0)
    assert melody.strikes.tolist() == [False, False] + [True] * 36  # None: the melody's
