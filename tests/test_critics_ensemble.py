"""The ensemble critic: mean and disagreement of K generators, the penalty, the round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlmusic.critics import build_ensemble, evaluate_ensemble, load_ensemble, save_ensemble
from rlmusic.critics.terms import EnsembleReward
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import LSTMConfig, NoteLSTM, load_generator, save_checkpoint
from rlmusic.models.base import sequence_log_probs
from rlmusic.models.checkpoint import CheckpointError
from tests.critic_helpers import random_tokens, scale_melodies, tiny_generator


@pytest.fixture
def members(tmp_path: Path) -> list[str]:
    return [str(tiny_generator(tmp_path / f"g{seed}.safetensors", seed)) for seed in (0, 1, 2)]


def test_mean_and_std_are_those_of_the_members_log_likelihoods(members: list[str]) -> None:
    critic = build_ensemble(members)
    tokens = random_tokens(4, 20)
    with torch.no_grad():
        each = np.stack(
            [
                sequence_log_probs(load_generator(m)[0], torch.as_tensor(tokens)).numpy()
                for m in members
            ]
        )  # (K, B, T)
    mean, std = critic.mean_and_std(tokens)
    np.testing.assert_allclose(mean, each.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, each.std(axis=0), rtol=1e-4, atol=1e-5)
    assert (std > 0).all()  # three different seeds disagree somewhere on every token


def test_the_penalty_subtracts_lambda_times_the_disagreement(members: list[str]) -> None:
    critic = build_ensemble(members)
    tokens = random_tokens(3, 12)
    plain, penalised = EnsembleReward(critic)(tokens), EnsembleReward(critic, penalty=0.5)
    details = penalised.details(tokens)
    assert plain.dtype == np.float32 and plain.shape == (3, 12)
    np.testing.assert_allclose(plain, details["mean"], rtol=1e-6)
    np.testing.assert_allclose(penalised(tokens), details["mean"] - 0.5 * details["std"], rtol=1e-6)
    with pytest.raises(ValueError, match="penalty must be >= 0"):
        EnsembleReward(critic, penalty=-1)


def test_one_member_never_disagrees(members: list[str]) -> None:
    _, std = build_ensemble(members[:1]).mean_and_std(random_tokens(2, 8))
    assert not std.any()


def test_round_trip_keeps_the_members_weights_and_the_figures(
    tmp_path: Path, members: list[str]
) -> None:
    critic = build_ensemble(members)
    figures = evaluate_ensemble(critic, scale_melodies(20, 16), random_tokens(20, 16))
    path = save_ensemble(tmp_path / "ens.safetensors", critic, figures, {"seed": 0})
    for member in members:
        Path(member).unlink()  # the saved ensemble needs none of the member files
    loaded, meta = load_ensemble(path)
    tokens = random_tokens(5, 16, seed=9)
    np.testing.assert_array_equal(EnsembleReward(loaded)(tokens), EnsembleReward(critic)(tokens))
    assert loaded.names == members and meta["kind"] == "ensemble"
    assert meta["metrics"] == figures and meta["trained"] == {"seed": 0}
    assert [m["arch"] for m in meta["config"]["members"]] == ["lstm"] * 3


def test_figures_measure_real_and_generated_windows(members: list[str]) -> None:
    critic = build_ensemble(members)
    figures = evaluate_ensemble(critic, scale_melodies(10, 16), random_tokens(12, 16))
    each = [figures[f"nll/{m}"] for m in members]
    assert figures["nll"] == pytest.approx(np.mean(each))
    assert 0.0 <= figures["auc"] <= 1.0 and figures["n_valid_fake"] == 12
    assert figures["disagreement_real"] > 0 and figures["n_valid_real"] == 10
    assert "auc" not in evaluate_ensemble(critic, scale_melodies(4, 8))


def test_members_on_another_token_grid_are_refused(tmp_path: Path, members: list[str]) -> None:
    lower = MelodyEncoding(min_pitch=36, max_pitch=71)  # same vocabulary size, other pitches
    model = NoteLSTM(LSTMConfig(embed_dim=8, hidden_size=16, num_layers=1))
    other = save_checkpoint(tmp_path / "low.safetensors", model, lower)
    with pytest.raises(ValueError, match="must share the token grid"):
        build_ensemble([members[0], str(other)])
    with pytest.raises(ValueError, match="at least one member"):
        build_ensemble([])


def test_a_damaged_ensemble_file_names_itself(tmp_path: Path, members: list[str]) -> None:
    path = save_ensemble(tmp_path / "ens.pt", build_ensemble(members[:2]))
    record = torch.load(path, weights_only=True)
    record["state_dict"] = {k: v for k, v in record["state_dict"].items() if "member1." not in k}
    torch.save(record, tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match=r"cut\.pt: member 1 weights do not fit"):
        load_ensemble(tmp_path / "cut.pt")
    with pytest.raises(
        CheckpointError, match="holds a critic of kind 'ensemble', expected 'discriminator'"
    ):
        from rlmusic.critics import load_cnn_critic

        load_cnn_critic(path, "discriminator")
