"""The critics as reward terms: built by the registry from checkpoints, causal, batch-invariant,
float32, and usable through ``reward.extra`` like any term."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlmusic.critics.terms import DiscriminatorReward, EnsembleReward, PreferenceReward
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.build import build_reward
from rlmusic.rewards.registry import REGISTRY, build_term, default_context, known_terms
from tests.critic_helpers import ENC, random_tokens, tiny_critic, tiny_generator

CRITICS = ("discriminator", "ensemble", "preference")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small checkpoint per critic (and two generators for the ensemble's members)."""
    folder = tmp_path_factory.mktemp("critics")
    members = [str(tiny_generator(folder / f"g{s}.safetensors", s)) for s in (0, 1)]
    return {
        "discriminator": tiny_critic("discriminator", folder / "d.safetensors"),
        "preference": tiny_critic("preference", folder / "p.pt", seed=1),
        "members": members,
    }


def spec(name: str, checkpoints: dict, **extra: object) -> dict:
    if name == "ensemble":
        return {"name": name, "members": checkpoints["members"], **extra}
    return {"name": name, "checkpoint": str(checkpoints[name]), **extra}


# every shaping of every critic: id -> extra build_term arguments
VARIANTS = {
    "discriminator[log_prob]": ("discriminator", {}),
    "discriminator[potential]": ("discriminator", {"shaping": "potential"}),
    "ensemble": ("ensemble", {}),
    "ensemble[penalty]": ("ensemble", {"penalty": 0.5}),
    "preference[last]": ("preference", {}),
    "preference[potential]": ("preference", {"shaping": "potential"}),
}
TERMS: dict[str, object] = {}  # built once per variant (hypothesis calls the test many times)


def term_of(variant: str, checkpoints: dict) -> object:
    if variant not in TERMS:
        name, extra = VARIANTS[variant]
        TERMS[variant] = build_term(spec(name, checkpoints, **extra), default_context(ENC))
    return TERMS[variant]


def test_the_registry_lists_the_critics() -> None:
    terms = known_terms()
    for name in CRITICS:
        assert name in REGISTRY and name in terms


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_registry_builds_each_term_from_its_checkpoint(variant: str, checkpoints) -> None:
    term = term_of(variant, checkpoints)
    kind = {"discriminator": DiscriminatorReward, "ensemble": EnsembleReward}
    assert isinstance(term, kind.get(VARIANTS[variant][0], PreferenceReward))
    rewards = term(random_tokens(3, 10))
    assert rewards.dtype == np.float32 and rewards.shape == (3, 10)
    assert np.isfinite(rewards).all()


batches = st.integers(1, 5).flatmap(
    lambda b: st.integers(2, 36).flatmap(
        lambda t: st.lists(st.integers(0, 37), min_size=b * t, max_size=b * t).map(
            lambda v: np.array(v).reshape(b, t)
        )
    )
)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@settings(max_examples=25, deadline=None)
@given(tokens=batches, cut=st.integers(0, 35), seed=st.integers(0, 2**16))
def test_each_term_is_causal_and_scores_a_prefix_as_inside_the_whole(
    variant: str, checkpoints, tokens: np.ndarray, cut: int, seed: int
) -> None:
    """What tests/test_reward_properties.py checks for every registered term, on fixtures."""
    term = term_of(variant, checkpoints)
    rewards = term(tokens)
    cut %= tokens.shape[1]
    changed = tokens.copy()
    changed[:, cut + 1 :] = np.random.default_rng(seed).integers(0, 38, changed[:, cut + 1 :].shape)
    again = term(changed)
    if getattr(term, "sequence_level", False):
        assert not rewards[:, :-1].any() and not again[:, :-1].any()
    else:
        np.testing.assert_allclose(again[:, : cut + 1], rewards[:, : cut + 1], atol=1e-6)
        np.testing.assert_allclose(term(tokens[:, : cut + 1]), rewards[:, : cut + 1], atol=1e-6)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_rows_reward_does_not_depend_on_the_rest_of_the_batch(variant: str, checkpoints) -> None:
    term = term_of(variant, checkpoints)
    tokens = random_tokens(3, 32)
    crowd = np.concatenate([tokens, random_tokens(300, 32, seed=7)])
    np.testing.assert_allclose(term(crowd)[:3], term(tokens), atol=1e-6)
    np.testing.assert_allclose(term(tokens[1:2]), term(tokens)[1:2], atol=1e-6)


def test_reward_extra_takes_critics_like_any_term(checkpoints) -> None:
    cfg = {
        "c": 0.5,
        "rules": ["key"],
        "prior": None,
        "extra": {
            "realism": {**spec("discriminator", checkpoints), "weight": 2.0},
            "taste": {**spec("preference", checkpoints), "weight": 0.5},
            "others": {**spec("ensemble", checkpoints), "penalty": 1.0, "weight": 0.1},
        },
    }
    reward = build_reward(cfg, ENC, device="cpu")
    assert reward.names == ["key", "realism", "taste", "others"]
    tokens = random_tokens(4, 16)
    total, shares = reward.score(tokens)
    np.testing.assert_allclose(
        shares["realism"], 2.0 * term_of("discriminator[log_prob]", checkpoints)(tokens), rtol=1e-6
    )
    assert not shares["taste"][:, :-1].any() and shares["taste"][:, -1].any()
    # the environments' per-step path gives the whole-sequence values
    state: dict = {}
    for t in range(tokens.shape[1]):
        step_total, _ = reward.score_last(tokens[:, : t + 1], t == tokens.shape[1] - 1, state)
        np.testing.assert_allclose(step_total, total[:, t], rtol=1e-5, atol=1e-5)


def test_build_errors_name_what_is_wrong(tmp_path: Path, checkpoints) -> None:
    context = default_context(ENC)
    with pytest.raises(
        RewardError, match="needs checkpoint=.*rlmusic train-critic critic=discriminator"
    ):
        build_term({"name": "discriminator"}, context)
    with pytest.raises(RewardError, match=r"has no argument\(s\) chekpoint; known: checkpoint"):
        build_term({"name": "preference", "chekpoint": "x"}, context)
    with pytest.raises(RewardError, match="shaping 'squared'; known: log_prob, potential"):
        build_term(spec("discriminator", checkpoints, shaping="squared"), context)
    with pytest.raises(RewardError, match="members=.*or checkpoint=.*not both"):
        build_term(spec("ensemble", checkpoints, checkpoint="x"), context)
    other = default_context(MelodyEncoding(min_pitch=36, max_pitch=71))
    with pytest.raises(RewardError, match="another token grid than the reward's"):
        build_term(spec("discriminator", checkpoints), other)
    from rlmusic.models.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="holds a critic of kind 'discriminator'"):
        build_term({"name": "preference", "checkpoint": str(checkpoints["discriminator"])}, context)


def test_the_ensemble_defaults_to_the_shipped_generators() -> None:
    term = build_term("ensemble", default_context(ENC))
    assert term.critic.names == ["pretrained:note_lstm", "pretrained:music_transformer"]
    assert term(random_tokens(2, 6)).shape == (2, 6)


def test_refresh_through_the_term_updates_its_scores(checkpoints) -> None:
    from rlmusic.critics import DiscriminatorTrainConfig, load_cnn_critic
    from tests.critic_helpers import TINY, scale_melodies

    model, _, _ = load_cnn_critic(checkpoints["discriminator"], "discriminator")
    term = DiscriminatorReward(model)
    real, fake = scale_melodies(64, 16), random_tokens(64, 16)
    before = term(real).mean() - term(fake).mean()
    cfg = DiscriminatorTrainConfig(steps=40, batch_size=16, log_every=0, model=TINY)
    figures = term.refresh(real, fake, steps=40, cfg=cfg)
    assert figures["steps"] == 40 and "accuracy_before" in figures
    assert term(real).mean() - term(fake).mean() > before + 0.5  # real now looks more real


@pytest.mark.parametrize("name", ["rlmusic.critics.stats", "rlmusic.critics.preference_file"])
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
