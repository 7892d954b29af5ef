"""Adversarial refresh: the reward's discriminator is retrained on the policy's samples during
batched fine-tuning, and the run logs how well it caught the policy before and after."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from rlmusic.critics.refresh import refresh_hook, refreshable_terms
from rlmusic.rewards.build import build_reward
from rlmusic.tasks import finetune
from tests.conftest import compose_finetune, tiny_lstm, write_midi
from tests.critic_helpers import ENC, scale_melodies, tiny_critic
from tests.test_critics_task import tune_notes


def reward_with_critic(path: Path):
    return build_reward(
        {
            "c": 0.5,
            "rules": ["key"],
            "extra": {"realism": {"name": "discriminator", "checkpoint": str(path)}},
        },
        ENC,
    )


def test_the_hook_retrains_the_discriminator_in_place_every_k_iterations(tmp_path: Path) -> None:
    reward = reward_with_critic(tiny_critic("discriminator", tmp_path / "d.safetensors"))
    assert list(refreshable_terms(reward)) == ["realism"]
    real = list(scale_melodies(40, 48))
    hook = refresh_hook(reward, real, length=16, every=2, steps=30, samples=64, seed=0, lr=3e-3)
    probe = scale_melodies(4, 16, seed=9)
    before = reward.score(probe)[1]["realism"].copy()
    assert hook(1, tiny_lstm()) == {}  # not a refresh iteration: nothing happens
    np.testing.assert_array_equal(reward.score(probe)[1]["realism"], before)
    figures = hook(2, tiny_lstm())
    for key in ("accuracy_before", "accuracy", "auc"):
        assert 0.0 <= figures[f"critic/realism/{key}"] <= 1.0
    # trained against an untrained LSTM's near-uniform tokens, it now scores scales as more real
    assert reward.score(probe)[1]["realism"].mean() > before.mean()
    assert figures["critic/realism/accuracy"] > figures["critic/realism/accuracy_before"]


def test_a_reward_without_a_discriminator_cannot_be_refreshed() -> None:
    reward = build_reward({"c": 0.5, "rules": ["key"]}, ENC)
    with pytest.raises(ValueError, match="no discriminator term to refresh"):
        refresh_hook(reward, [], 16, every=1, steps=1, samples=8, seed=0)


def finetune_cfg(tmp_path: Path, tiny_checkpoint: Path, *extra: str):
    for i in range(6):
        write_midi(tmp_path / "tunes" / f"t{i}.mid", tune_notes(i))
    critic = tiny_critic("discriminator", tmp_path / "d.safetensors")
    overrides = [
        f"checkpoint={tiny_checkpoint}",
        f"reward.prior.checkpoint={tiny_checkpoint}",
        "reward=rl_tuner",
        "reward.rules=[key]",
        f"+reward.extra.realism={{name: discriminator, checkpoint: {critic}}}",
        "data=midi_dir",
        f"data.path={tmp_path / 'tunes'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.workers=1",
        "length=16",
        "algo.iterations=2",
        "algo.batch_size=16",
        "algo.minibatch_size=8",
        "algo.group_size=8",
        "algo.sample_every=0",
        "critic_refresh.every=1",
        "critic_refresh.steps=5",
        "critic_refresh.samples=32",
        "n_samples=1",
        "device=cpu",
        *extra,
    ]
    return compose_finetune(overrides)


def test_batched_finetuning_refreshes_and_logs_the_critic(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    finetune.run(finetune_cfg(tmp_path, tiny_checkpoint), output_dir=tmp_path / "run")
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(rows) == 2
    for row in rows:
        assert 0.0 <= float(row["critic/realism/accuracy_before"]) <= 1.0
        assert "reward/realism" in row


def compose_algo(name: str):
    return compose_finetune([f"algo={name}"]).algo


def test_the_sb3_algorithms_refuse_a_refresh(tmp_path: Path, tiny_checkpoint: Path) -> None:
    cfg = finetune_cfg(tmp_path, tiny_checkpoint)
    cfg.algo = compose_algo("ppo")
    with pytest.raises(ValueError, match="needs algo=batched"):
        finetune.run(cfg, output_dir=tmp_path / "run")


def rl_tuner_cfg(tmp_path: Path, tiny_checkpoint: Path):
    """``finetune_cfg``'s reward and data with ``algo=rl_tuner``: rounds of 128 env steps, a
    refresh every 100 env steps (crossed by every round)."""
    cfg = finetune_cfg(tmp_path, tiny_checkpoint, "critic_refresh.every=100")
    rl_tuner = [
        "algo=rl_tuner",
        "algo.total_timesteps=512",
        "algo.n_envs=8",
        "algo.batch_size=32",
        "algo.checkpoint_every=128",
        "algo.stats_every=0",
        "algo.sample_every=0",
    ]
    cfg.algo = compose_finetune(rl_tuner).algo
    return cfg


def test_rl_tuner_refreshes_the_critic_and_a_resumed_run_keeps_it(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness calls the refresh for every algorithm that runs through it: rl_tuner
    refreshes when a round crosses a multiple of ``every`` env steps, and a run resumed after a
    crash goes on against the refreshed critic (its weights end where a straight run's end)."""
    from rlmusic.algos.rl_tuner.trainer import RLTunerTrainer
    from tests.sb3_helpers import Crash, assert_same_weights

    cfg = rl_tuner_cfg(tmp_path, tiny_checkpoint)
    straight = tmp_path / "straight"
    finetune.run(cfg, output_dir=straight)
    rows = list(csv.DictReader(open(straight / "metrics.csv")))
    assert [r["env_steps"] for r in rows] == ["128", "256", "384", "512"]
    assert all(0.0 <= float(r["critic/realism/accuracy_before"]) <= 1.0 for r in rows)
    original = RLTunerTrainer.gradient_step

    def dying(self: RLTunerTrainer) -> dict[str, float]:
        if self.env_steps >= 384:
            raise Crash
        return original(self)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(RLTunerTrainer, "gradient_step", dying)
    with pytest.raises(Crash):
        finetune.run(cfg, output_dir=resumed)
    monkeypatch.setattr(RLTunerTrainer, "gradient_step", original)
    result = finetune.run(cfg, output_dir=resumed)
    assert result.resumed_from == 256
    assert_same_weights(resumed / "tuned.safetensors", straight / "tuned.safetensors")
    again = list(csv.DictReader(open(resumed / "metrics.csv")))
    assert again[-1]["reward/realism"] == rows[-1]["reward/realism"]


def test_a_resumed_run_keeps_the_refreshed_critic(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """Audit item: the refreshed weights were not in the resume point, so a resumed run went back
    to the shipped critic and ended elsewhere than a run that never stopped."""
    from tests.sb3_helpers import assert_same_weights

    straight = tmp_path / "straight"
    finetune.run(finetune_cfg(tmp_path, tiny_checkpoint, "algo.iterations=4"), output_dir=straight)
    resumed = tmp_path / "resumed"
    finetune.run(
        finetune_cfg(tmp_path, tiny_checkpoint, "algo.iterations=2", "algo.checkpoint_every=1"),
        output_dir=resumed,
    )
    finetune.run(
        finetune_cfg(
            tmp_path,
            tiny_checkpoint,
            "algo.iterations=4",
            "algo.checkpoint_every=1",
        ),
        output_dir=resumed,
    )
    assert_same_weights(resumed / "tuned.safetensors", straight / "tuned.safetensors")
    rows = list(csv.DictReader(open(resumed / "metrics.csv")))
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
    straight_rows = list(csv.DictReader(open(straight / "metrics.csv")))
    assert rows[-1]["reward/realism"] == straight_rows[-1]["reward/realism"]


def test_a_resume_point_of_a_refreshed_run_needs_the_refresh(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    run = tmp_path / "run"
    finetune.run(finetune_cfg(tmp_path, tiny_checkpoint, "algo.iterations=1"), output_dir=run)
    cfg = finetune_cfg(
        tmp_path,
        tiny_checkpoint,
        "algo.iterations=2",
        "critic_refresh.every=0",
        "allow_config_change=true",
    )
    with pytest.raises(ValueError, match="stateful hook"):
        finetune.run(cfg, output_dir=run)


def test_potential_shaping_is_refused_at_a_discount_it_does_not_telescope_under(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    critic = tiny_critic("discriminator", tmp_path / "d.safetensors")
    reward = build_reward(
        {
            "c": 0.5,
            "rules": ["key"],
            "extra": {
                "realism": {
                    "name": "discriminator",
                    "checkpoint": str(critic),
                    "shaping": "potential",
                }
            },
        },
        ENC,
    )
    reward.check_discount(1.0)  # undiscounted: the return is D(whole) - 1/2
    with pytest.raises(Exception, match="'realism' .*potential.*gamma 1.*algo.gamma=0.5"):
        reward.check_discount(0.5)
    # the whole-piece promise, checked: undiscounted, the returns telescope
    tokens = scale_melodies(3, 16, seed=2)
    shares = reward.score(tokens)[1]["realism"]
    p_real = 1 / (1 + np.exp(-reward.terms[1].term.scores(tokens).numpy()[:, -1]))
    np.testing.assert_allclose(shares.sum(1), p_real - 0.5, rtol=1e-5, atol=1e-6)
