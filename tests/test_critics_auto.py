"""``checkpoint: auto``: the default reward's realism critic follows the data (rlmusic.critics.auto).

The shipped critic on the corpus it learnt; elsewhere one trained on the data against the start
model by the train-critic code (rlmusic.critics.training.train_corpus_discriminator), cached by
data and start model and reused; an explicit checkpoint is used as given; every choice is logged
by name.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import rlmusic.critics.auto_cache as auto_cache
from rlmusic.critics.auto import AUTO, SHIPPED, resolve_auto_critics, shipped_fits
from rlmusic.critics.auto_cache import AutoCriticSettings
from rlmusic.critics.data import cut_windows
from rlmusic.critics.discriminator import evaluate_discriminator
from rlmusic.critics.io import load_cnn_critic, read_critic_record
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.io import load_melody
from rlmusic.models import load_generator
from rlmusic.models.sampling import sample_seeded
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.build import build_reward
from tests.conftest import make_tiny_checkpoint, write_midi

TINY = {"steps": 5, "windows": 128, "samples": 32}  # a critic in about a second


def tune(seed: int, notes: int = 24) -> list[tuple[int, float, float]]:
    """A seeded melody of eighth notes by steps (distinct per seed), 48 grid steps long."""
    rng = np.random.default_rng(seed)
    pitch, out = 67, []
    for i in range(notes):
        pitch = int(np.clip(pitch + rng.choice([-2, -1, 1, 2]), 55, 79))
        out.append((pitch, i / 2, (i + 1) / 2))
    return out


def default_reward(*overrides: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """conf/reward/default.yaml and the data node of a finetune config, as plain dicts."""
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=list(overrides))
    reward = OmegaConf.to_container(cfg.reward, resolve=True)
    reward.pop("prior")  # the KL reference, not a term (rlmusic.algos.finetune_setup)
    return reward, OmegaConf.to_container(cfg.data, resolve=True)


@pytest.fixture
def own_data(tmp_path: Path) -> dict[str, Any]:
    """A data config of 12 MIDI melodies of one's own, with its own cache folder."""
    for i in range(12):
        write_midi(tmp_path / "midi" / f"t{i}.mid", tune(i))
    _, data = default_reward(
        "data=midi_dir",
        f"data.path={tmp_path / 'midi'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.workers=1",
        "data.min_notes=4",
    )
    return data


class CountingTrainer:
    """The library trainer an auto critic trains by, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.train = auto_cache.train_corpus_discriminator

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.train(*args, **kwargs)


@pytest.fixture
def trainer(monkeypatch: pytest.MonkeyPatch) -> CountingTrainer:
    counting = CountingTrainer()
    monkeypatch.setattr(auto_cache, "train_corpus_discriminator", counting)
    return counting


def no_training(monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(why)

    monkeypatch.setattr(auto_cache, "train_corpus_discriminator", refuse)


def tiny_auto(reward: dict[str, Any]) -> dict[str, Any]:
    reward["extra"]["realism"]["auto"] = dict(TINY)
    return reward


def test_the_default_reward_asks_for_auto() -> None:
    reward, data = default_reward()
    assert reward["extra"]["realism"]["checkpoint"] == AUTO
    assert data["source"] == "all" and shipped_fits(data) == (True, "")


def test_auto_on_the_shipped_critics_corpus_is_the_shipped_critic(
    tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    reward, data = default_reward()
    no_training(monkeypatch, "the shipped critic fits: nothing to train")
    with caplog.at_level(logging.INFO, logger="rlmusic"):
        resolved, (choice,) = resolve_auto_critics(reward, data, str(tiny_checkpoint), train=True)
    assert resolved["extra"]["realism"]["checkpoint"] == SHIPPED
    assert (choice.term, choice.source, choice.checkpoint) == ("realism", "shipped", SHIPPED)
    assert choice.trained["real"]["data"] == "all" and choice.metrics["accuracy"] > 0.6
    assert f"the shipped discriminator {SHIPPED}" in caplog.text
    assert reward["extra"]["realism"]["checkpoint"] == AUTO  # the caller's config is untouched


@pytest.mark.parametrize(
    "override", ["data=essen", "data.limit=100", "data.min_notes=4"], ids=lambda o: o
)
def test_other_data_does_not_fit_the_shipped_critic(override: str) -> None:
    _, data = default_reward(override)
    fits, why = shipped_fits(data)
    assert not fits and override.split("=")[0].removeprefix("data.") in why


def test_auto_on_other_data_trains_once_then_reuses_the_cached_critic(
    own_data: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    trainer: CountingTrainer,
) -> None:
    start = make_tiny_checkpoint(tmp_path, seed=0)
    reward = tiny_auto(default_reward()[0])
    with caplog.at_level(logging.INFO, logger="rlmusic"):
        resolved, (choice,) = resolve_auto_critics(reward, own_data, str(start), train=True)
    assert trainer.calls == 1 and choice.source == "trained" and choice.wall_s > 0
    path = Path(resolved["extra"]["realism"]["checkpoint"])
    assert path == Path(own_data["cache_dir"]) / "critics" / choice.key / "critic.safetensors"
    assert "auto" not in resolved["extra"]["realism"]  # the settings are not a term argument
    # trained as train-critic trains: this data's train split against the start model
    record = read_critic_record(path, "discriminator")
    assert record["trained"]["real"]["data"] == "midi_dir"
    assert record["trained"]["fake"]["generators"] == [str(start)]
    assert record["trained"]["train"]["steps"] == TINY["steps"]
    # it learnt: an untrained critic scores its 18 real and 6 generated held-out windows 0.75
    # (all called real) and 0.5 per side on average; this one 1.0 and 1.0 (measured)
    figures = record["metrics"]
    assert figures["accuracy"] >= 0.9 and figures["balanced_accuracy"] >= 0.9, figures
    # the saved weights are that critic: on fresh pieces of the start model against the real
    # tunes' windows they separate them (measured: AUC 1.0, balanced 0.93; untrained 0.78, 0.54)
    critic, encoding, _ = load_cnn_critic(path, "discriminator")
    tunes = [load_melody(p, encoding) for p in sorted(Path(own_data["path"]).glob("*.mid"))]
    real = cut_windows(tunes, 32, None, np.random.default_rng(0))
    fake = sample_seeded(load_generator(str(start))[0], 64, 32, 7)[0]
    fresh = evaluate_discriminator(critic, real, fake)
    assert fresh["auc"] >= 0.95 and fresh["balanced_accuracy"] >= 0.8, fresh
    config = OmegaConf.load(path.parent / "config.yaml")  # what it was trained on, and how
    assert config.data.path == own_data["path"] and config.start == str(start)
    assert config.auto.steps == TINY["steps"] and config.key == choice.key
    assert json.loads((path.parent / "metrics.json").read_text())["checkpoint"] == str(path)
    assert "discriminator critic ->" in (path.parent / "critic.log").read_text()
    assert f"freshly trained ({choice.wall_s:.1f} s) discriminator {path}" in caplog.text
    assert f"data=midi_dir:{own_data['path']}" in caplog.text
    assert not list(path.parent.parent.glob(".*"))  # no scratch folder left behind

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rlmusic"):
        again, (reused,) = resolve_auto_critics(reward, own_data, str(start), train=True)
    assert trainer.calls == 1, "the second run must reuse the cached critic"
    assert reused.source == "cached" and reused.key == choice.key
    assert again["extra"]["realism"]["checkpoint"] == str(path)
    assert f"cached discriminator {path}" in caplog.text
    assert reused.record()["metrics"]["accuracy"] == record["metrics"]["accuracy"]

    # another start model on the same data is another critic
    other = make_tiny_checkpoint(tmp_path, seed=1)
    _, (third,) = resolve_auto_critics(reward, own_data, str(other), train=True)
    assert trainer.calls == 2 and third.key != choice.key


def test_build_reward_uses_the_cached_critic_and_never_trains(
    own_data: dict[str, Any], tmp_path: Path
) -> None:
    start = make_tiny_checkpoint(tmp_path, seed=0)
    reward = tiny_auto(default_reward()[0])
    with pytest.raises(RewardError, match="no discriminator trained on data=midi_dir"):
        build_reward(reward, MelodyEncoding(), start_checkpoint=str(start), data=own_data)
    _, (trained,) = resolve_auto_critics(reward, own_data, str(start), train=True)
    composite = build_reward(reward, MelodyEncoding(), start_checkpoint=str(start), data=own_data)
    tokens = np.random.default_rng(0).integers(0, 38, (2, 32))
    assert composite.score(tokens)[1]["realism"].shape == (2, 32)


def test_build_reward_without_data_uses_the_shipped_critic_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reward, _ = default_reward()
    with caplog.at_level(logging.WARNING, logger="rlmusic"):
        composite = build_reward(reward, MelodyEncoding())
    assert "realism" in composite.names
    assert SHIPPED in caplog.text and "no data config given" in caplog.text


def test_an_explicit_checkpoint_overrides_auto(
    own_data: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start = make_tiny_checkpoint(tmp_path, seed=0)
    reward = default_reward(f"reward.extra.realism.checkpoint={SHIPPED}")[0]
    no_training(monkeypatch, "an explicit checkpoint is used as given")
    with caplog.at_level(logging.INFO, logger="rlmusic"):
        resolved, (choice,) = resolve_auto_critics(reward, own_data, str(start), train=True)
    assert choice.source == "given" and resolved["extra"]["realism"]["checkpoint"] == SHIPPED
    assert f"as given discriminator {SHIPPED}" in caplog.text
    assert not (Path(own_data["cache_dir"]) / "critics").exists()


def test_a_damaged_cached_critic_is_trained_again(
    own_data: dict[str, Any], tmp_path: Path, trainer: CountingTrainer
) -> None:
    start = make_tiny_checkpoint(tmp_path, seed=0)
    reward = tiny_auto(default_reward()[0])
    _, (first,) = resolve_auto_critics(reward, own_data, str(start), train=True)
    Path(first.checkpoint).write_bytes(b"torn")
    _, (second,) = resolve_auto_critics(reward, own_data, str(start), train=True)
    assert trainer.calls == 2 and second.source == "trained"
    read_critic_record(second.checkpoint, "discriminator")


def test_unknown_auto_settings_are_named() -> None:
    with pytest.raises(RewardError, match="no key.s. stepz; known: length, samples, seed"):
        AutoCriticSettings.from_spec({"stepz": 3})


def test_the_recipes_defaults_are_train_critics_and_auto_changes_only_its_settings() -> None:
    """The typed recipe is conf/critic/discriminator.yaml; an auto critic is that recipe with the
    start model as the generated side, a fixed step count and no time cap (as it was when auto
    built a train-critic config from the YAML)."""
    from rlmusic.critics.training import DiscriminatorRecipe

    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("train_critic")
    node = OmegaConf.to_container(cfg.critic, resolve=True)
    shipped = DiscriminatorRecipe.from_node(node, int(cfg.length))
    assert shipped == DiscriminatorRecipe()
    assert {**shipped.to_node(), "name": node["name"]} == node
    node["fake"]["generators"] = ["start.safetensors"]
    node["train"].update(steps=600, time_s=None)
    assert AutoCriticSettings().recipe("start.safetensors").to_node() == node


def test_train_critic_and_auto_train_the_same_critic(
    own_data: dict[str, Any], tmp_path: Path, trainer: CountingTrainer
) -> None:
    """One code path: `rlmusic train-critic critic=discriminator` with the auto critic's numbers
    gives the auto critic's weights and figures."""
    from rlmusic.tasks import train_critic

    start = make_tiny_checkpoint(tmp_path, seed=0)
    _, (auto,) = resolve_auto_critics(
        tiny_auto(default_reward()[0]), own_data, str(start), train=True
    )
    data = [f"data.{k}={v}" for k, v in own_data.items() if k in ("path", "cache_dir", "min_notes")]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose(
            "train_critic",
            overrides=[
                "data=midi_dir",
                *data,
                "data.workers=1",
                f"critic.fake.generators=[{start}]",
                f"critic.fake.n={TINY['samples']}",
                f"critic.real.windows={TINY['windows']}",
                f"critic.train.steps={TINY['steps']}",
                "critic.train.time_s=null",
                "device=cpu",
                "progress=false",
                f"out={tmp_path / 'train_critic'}",
            ],
        )
    result = train_critic.run(cfg)
    assert trainer.calls == 1  # train-critic calls the library function, not auto's cache
    mine, _, _ = load_cnn_critic(result["checkpoint"], "discriminator")
    theirs, _, _ = load_cnn_critic(auto.checkpoint, "discriminator")
    for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values()):
        assert torch.equal(a, b), name
    assert result["auc"] == auto.metrics["auc"] and result["loss"] == auto.metrics["loss"]
