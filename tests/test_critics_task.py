"""`rlmusic train-critic`: every critic option composes and runs end to end on tiny inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from rlmusic import cli
from rlmusic.data.corpus import Corpus
from rlmusic.rewards.registry import build_term, default_context
from rlmusic.tasks import train_critic
from tests.conftest import write_midi
from tests.critic_helpers import ENC, scale_melodies, tiny_generator

TINY_MODEL = [
    "critic.model.embed_dim=8",
    "critic.model.channels=16",
    "critic.model.dilations=[1,2,4]",
]


def tune_notes(seed: int, notes: int = 24) -> list[tuple[int, float, float]]:
    """A stepwise C major melody of eighth notes, as (pitch, start_beat, end_beat)."""
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 74]
    rng = np.random.default_rng(seed)
    degree, out = 4, []
    for i in range(notes):
        degree = int(np.clip(degree + rng.choice([-1, 1]), 0, len(scale) - 1))
        out.append((scale[degree], i / 2, (i + 1) / 2))
    return out


def config(tmp_path: Path, critic: str, *overrides: str) -> DictConfig:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(
            "train_critic",
            overrides=[
                f"critic={critic}",
                f"out={tmp_path / 'run'}",
                "device=cpu",
                "progress=false",
                *overrides,
            ],
        )


@pytest.mark.parametrize("critic", train_critic.KINDS)
def test_every_critic_option_composes(critic: str) -> None:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("train_critic", overrides=[f"critic={critic}"])
    assert cfg.critic.name == critic and cfg.length == 32
    assert "train-critic" in cli.TASKS and cli.TASKS["train-critic"][1] == "train_critic"


def test_discriminator_on_a_midi_folder_end_to_end(tmp_path: Path) -> None:
    for i in range(8):
        write_midi(tmp_path / "tunes" / f"t{i}.mid", tune_notes(i))
    generator = tiny_generator(tmp_path / "gen.safetensors")
    cfg = config(
        tmp_path,
        "discriminator",
        "data=midi_dir",
        f"data.path={tmp_path / 'tunes'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.workers=1",
        f"critic.fake.generators=[{generator}]",
        "critic.fake.n=48",
        "critic.real.windows=64",
        "critic.holdout=0.25",
        "critic.train.steps=20",
        "critic.train.batch_size=16",
        "critic.train.log_every=10",
        *TINY_MODEL,
    )
    result = train_critic.run(cfg)
    run = tmp_path / "run"
    assert result["kind"] == "discriminator" and result["checkpoint"] == str(
        run / "critic.safetensors"
    )
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["auc"] <= 1.0
    assert result["n_valid_fake"] == 12 and result["steps"] == 20
    assert json.loads((run / "metrics.json").read_text())["auc"] == result["auc"]
    log = (run / "critic.log").read_text()
    assert "discriminator step 10" in log and "accuracy" in log
    assert (run / "config.yaml").is_file()
    from rlmusic.critics import read_critic_record

    meta = read_critic_record(run, "discriminator")
    assert meta["metrics"]["accuracy"] == result["accuracy"]
    assert meta["trained"]["fake"]["generators"] == [str(generator)]
    assert meta["trained"]["real"]["data"] == "midi_dir" and meta["trained"]["seed"] == 0
    term = build_term({"name": "discriminator", "checkpoint": str(run)}, default_context(ENC))
    assert term(scale_melodies(2, 32)).shape == (2, 32)


def test_ensemble_end_to_end_on_a_given_corpus(tmp_path: Path) -> None:
    corpus = Corpus.from_tunes(list(scale_melodies(6, 48)), ENC)
    members = [str(tiny_generator(tmp_path / f"g{s}.safetensors", s)) for s in (0, 1)]
    cfg = config(
        tmp_path,
        "ensemble",
        f"critic.members=[{members[0]},{members[1]}]",
        "critic.valid.split=train",
        "critic.valid.windows=16",
        f"critic.fake.generators=[{members[0]}]",
        "critic.fake.n=16",
    )
    result = train_critic.run(cfg, corpus=corpus)
    assert result["n_valid_real"] == 16 and result["n_valid_fake"] == 16
    assert result["nll"] > 0 and 0.0 <= result["auc"] <= 1.0
    from rlmusic.critics import load_ensemble

    critic, meta = load_ensemble(tmp_path / "run")
    assert critic.names == members and meta["metrics"]["nll"] == result["nll"]


def test_preference_end_to_end_on_a_preference_file(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    for i in range(6):
        write_midi(clips / f"s{i}.mid", tune_notes(i, notes=8 + 2 * i))
    pairs = [(a, b) for a in range(6) for b in range(a + 1, 6)][:12]
    records = [
        {"pair_id": f"p{k}", "sample_a": f"s{a}", "sample_b": f"s{b}", "preferred": "b"}
        for k, (a, b) in enumerate(pairs)  # the longer clip is preferred
    ]
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = config(
        tmp_path,
        "preference",
        f"critic.preferences={prefs}",
        f"critic.samples_dir={clips}",
        "critic.train.steps=10",
        "critic.train.batch_size=4",
        "critic.holdout=0.25",
        *TINY_MODEL,
    )
    result = train_critic.run(cfg)
    assert result["n_valid"] == 3 and result["n_train"] == 9 and result["steps"] == 10
    assert 0.0 <= result["accuracy"] <= 1.0
    from rlmusic.critics import read_critic_record

    trained = read_critic_record(tmp_path / "run", "preference")["trained"]
    assert trained["pairs"] == 12 and trained["samples"] == 6


def test_preference_without_a_file_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs critic.preferences="):
        train_critic.run(config(tmp_path, "preference"))


@pytest.mark.slow
def test_the_command_runs_through_hydra(tmp_path: Path) -> None:
    for i in range(6):
        write_midi(tmp_path / "tunes" / f"t{i}.mid", tune_notes(i))
    generator = tiny_generator(tmp_path / "gen.safetensors")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlmusic.cli",
            "train-critic",
            "data=midi_dir",
            f"data.path={tmp_path / 'tunes'}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"critic.fake.generators=[{generator}]",
            "critic.fake.n=32",
            "critic.real.windows=32",
            "critic.train.steps=5",
            "device=cpu",
            f"hydra.run.dir={tmp_path / 'run'}",
            *TINY_MODEL,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "discriminator critic ->" in result.stdout
    assert (tmp_path / "run" / "critic.safetensors").is_file()
    assert (tmp_path / "run" / "critic.log").read_text()
