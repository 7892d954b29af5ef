"""The discriminator critic: causal network, AUC, windows, training above chance, refresh,
and its checkpoint (round trip, every kind of bad file)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from rlmusic.critics import (
    CausalCNN,
    CriticConfig,
    DiscriminatorTrainConfig,
    binary_auc,
    cut_windows,
    evaluate_discriminator,
    load_cnn_critic,
    read_critic_record,
    refresh,
    save_cnn_critic,
    train_discriminator,
)
from rlmusic.critics.stats import seeded_split
from rlmusic.critics.terms import DiscriminatorReward
from rlmusic.models.checkpoint import CheckpointError
from tests.critic_helpers import (
    ENC,
    TINY,
    random_tokens,
    scale_melodies,
    tiny_generator,
)


@pytest.fixture(scope="module")
def trained() -> tuple[CausalCNN, dict]:
    cfg = DiscriminatorTrainConfig(steps=120, batch_size=32, log_every=0, model=TINY)
    return train_discriminator(scale_melodies(300, 32), random_tokens(300, 32), cfg, seed=0)


# ---- the network ------------------------------------------------------------------------------
def test_every_prefix_score_reads_only_its_prefix() -> None:
    torch.manual_seed(0)
    model = CausalCNN(CriticConfig()).eval()
    tokens = torch.as_tensor(random_tokens(3, 40))
    changed = tokens.clone()
    changed[:, 21:] = torch.as_tensor(random_tokens(3, 19, seed=5))
    with torch.no_grad():
        full, again, alone = model(tokens), model(changed), model(tokens[:, :21])
    assert full.shape == (3, 40)
    torch.testing.assert_close(again[:, :21], full[:, :21])
    torch.testing.assert_close(alone, full[:, :21], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(again[:, 21:], full[:, 21:])


def test_float64_scoring_path_matches_the_float32_convolutions() -> None:
    torch.manual_seed(0)
    model = CausalCNN(CriticConfig()).eval()
    tokens = torch.as_tensor(random_tokens(4, 33))
    with torch.no_grad():
        fast, exact = model(tokens), model.double()(tokens)
    torch.testing.assert_close(exact.float(), fast, rtol=1e-4, atol=1e-4)


def test_bad_tokens_and_configs_are_refused() -> None:
    term = DiscriminatorReward(CausalCNN(TINY))
    with pytest.raises(
        ValueError, match=r"the discriminator term: tokens outside the vocabulary 0\.\.37"
    ):
        term(np.array([[3, 38]]))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        term(np.array([3, 4]))
    with pytest.raises(ValueError, match="dilation"):
        CriticConfig(dilations=[1, 0])


# ---- figures, splits, windows -------------------------------------------------------------------
def test_auc_equals_the_pairwise_count_with_ties_as_half() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=60).astype(float)  # many ties
    labels = rng.integers(0, 2, size=60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg)
    )
    assert binary_auc(scores, labels) == pytest.approx(brute)
    assert binary_auc(np.array([3.0, 1.0, 2.0]), np.array([0, 1, 1])) == 0.0
    assert np.isnan(binary_auc(np.array([1.0, 2.0]), np.array([1, 1])))


def test_seeded_split_is_disjoint_complete_and_reproducible() -> None:
    fit, held = seeded_split(50, 0.2, seed=3)
    assert len(held) == 10 and sorted(np.concatenate([fit, held]).tolist()) == list(range(50))
    assert np.array_equal(seeded_split(50, 0.2, seed=3)[1], held)
    assert not np.array_equal(seeded_split(50, 0.2, seed=4)[1], held)
    assert len(seeded_split(2, 0.01, 0)[1]) == 1  # a holdout > 0 holds out at least one


def test_windows_start_where_asked_and_come_from_the_tunes() -> None:
    tune = np.array([1, 0, 14, 1, 16, 1, 0, 1, 18, 1, 20, 1, 1, 1, 22, 1, 24, 1], dtype=np.int64)
    rng = np.random.default_rng(0)
    onset = cut_windows([tune, tune[:3]], 4, None, rng, start="onset")
    # onsets at steps 2, 4, 8, 10, 14 (16 has no 4 steps left; the 3-step tune has no window)
    assert sorted(int(w[0]) for w in onset) == [14, 16, 18, 20, 22]
    every = cut_windows([tune], 4, None, rng, start="any")
    assert len(every) == len(tune) - 4 + 1
    bars = cut_windows([tune], 4, None, rng, start="bar", steps_per_bar=4)
    assert sorted(int(w[0]) for w in bars) == [16, 18]  # the onsets at steps 4 and 8
    assert len(cut_windows([tune], 4, 2, rng, start="any")) == 2
    with pytest.raises(ValueError, match="no window of 40 steps"):
        cut_windows([tune], 40, None, rng)


# ---- training ---------------------------------------------------------------------------------
def test_training_separates_scale_melodies_from_random_tokens(trained) -> None:
    model, figures = trained
    assert figures["accuracy"] > 0.8 and figures["auc"] > 0.9
    assert figures["n_valid_real"] == figures["n_valid_fake"] == 60
    assert figures["n_train_real"] == 240 and figures["steps"] == 120
    assert figures["p_real_on_real"] > figures["p_real_on_fake"]
    assert figures["balanced_accuracy"] == pytest.approx(
        (figures["accuracy_real"] + figures["accuracy_fake"]) / 2
    )
    assert figures["accuracy"] == pytest.approx(figures["balanced_accuracy"])  # 60 + 60 rows


def test_training_is_seeded_and_leaves_the_global_rng_alone() -> None:
    cfg = DiscriminatorTrainConfig(steps=5, batch_size=8, log_every=0, model=TINY)
    real, fake = scale_melodies(40, 16), random_tokens(40, 16)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, fa = train_discriminator(real, fake, cfg, seed=7)
    assert torch.equal(torch.rand(1), before)  # training drew nothing from the global stream
    b, fb = train_discriminator(real, fake, cfg, seed=7)
    assert fa["loss"] == fb["loss"]
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_refresh_retrains_in_place_on_a_new_fake_distribution(trained) -> None:
    model = CausalCNN(TINY)
    model.load_state_dict(trained[0].state_dict())  # a copy: the module fixture stays as it was
    # the "policy" now plays the real distribution a fourth lower: never seen as generated
    melodies = scale_melodies(200, 32, seed=9)
    new_fake = np.where(melodies > 1, melodies - 5, 1)
    real = scale_melodies(200, 32, seed=8)
    cfg = DiscriminatorTrainConfig(steps=150, batch_size=32, log_every=0, model=TINY)
    figures = refresh(model, real, new_fake, steps=150, cfg=cfg, seed=0)
    assert figures["steps"] == 150
    assert figures["accuracy"] > figures["accuracy_before"]
    assert figures["accuracy"] > 0.8
    assert not model.training


# ---- checkpoints ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["critic.safetensors", "critic.pt"])
def test_round_trip_gives_identical_scores_and_keeps_the_figures(
    tmp_path: Path, trained, name: str
) -> None:
    model, figures = trained
    path = save_cnn_critic(tmp_path / name, model, "discriminator", ENC, figures, {"seed": 0})
    loaded, encoding, meta = load_cnn_critic(path, "discriminator")
    tokens = random_tokens(5, 32, seed=4)
    np.testing.assert_array_equal(
        DiscriminatorReward(loaded)(tokens), DiscriminatorReward(model)(tokens)
    )
    assert encoding == ENC
    assert meta["metrics"]["accuracy"] == figures["accuracy"]
    assert meta["metrics"]["auc"] == figures["auc"]
    assert meta["trained"] == {"seed": 0} and meta["arch"] == "causal_cnn"
    assert meta["config"]["dilations"] == TINY.dilations


def test_a_run_folder_loads_as_its_critic(tmp_path: Path, trained) -> None:
    save_cnn_critic(tmp_path / "critic.safetensors", trained[0], "discriminator", ENC)
    record = read_critic_record(tmp_path, "discriminator")
    assert record["path"] == str(tmp_path / "critic.safetensors")
    assert record["format"] == "rlmusic-critic" and record["kind"] == "discriminator"


def test_held_out_figures_are_what_evaluate_measures(trained) -> None:
    model, _ = trained
    real, fake = scale_melodies(50, 32, seed=11), random_tokens(50, 32, seed=12)
    figures = evaluate_discriminator(model, real, fake)
    assert figures["n_valid_real"] == 50 and 0.8 < figures["accuracy"] <= 1.0


def test_bad_critic_files_fail_naming_the_file(tmp_path: Path, trained) -> None:
    model, _ = trained
    good = save_cnn_critic(tmp_path / "d.safetensors", model, "discriminator", ENC)
    cases = {}
    cases["missing"] = (tmp_path / "nope.safetensors", "no such critic checkpoint")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:200])
    cases["truncated"] = (truncated, "truncated or not a safetensors file")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint at all")
    cases["garbage"] = (garbage, "truncated or not a torch checkpoint|refusing to unpickle")
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"format": "rlmusic-critic", "payload": Path("x")}, handle, protocol=2)
    cases["pickled code"] = (evil, "refusing to unpickle")
    generator = tiny_generator(tmp_path / "gen.safetensors")
    cases["generator"] = (generator, "not an rlmusic critic checkpoint")
    preference = save_cnn_critic(tmp_path / "p.safetensors", model, "preference", ENC)
    cases["other kind"] = (
        preference,
        "holds a critic of kind 'preference', expected 'discriminator'",
    )
    cases["folder"] = (tmp_path, "a directory without critic.safetensors")
    for what, (path, message) in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            load_cnn_critic(path, "discriminator")
        assert str(path) in str(info.value), what


def test_weights_that_do_not_fit_the_config_are_an_error(tmp_path: Path) -> None:
    from rlmusic.critics.io import save_critic_record

    path = save_critic_record(
        tmp_path / "bad.safetensors",
        "discriminator",
        "causal_cnn",
        {"vocab_size": 38, "channels": 32},
        ENC,
        CausalCNN(TINY).state_dict(),
    )
    with pytest.raises(CheckpointError, match="do not fit the config"):
        load_cnn_critic(path, "discriminator")
