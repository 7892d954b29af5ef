"""Your own music, the whole documented chain on a tiny folder of MIDI melodies:

    rlmusic data data=midi_dir data.path=DIR
    rlmusic pretrain init=pretrained:note_lstm data=midi_dir data.path=DIR
    rlmusic finetune checkpoint=<pretrained> data=midi_dir data.path=DIR
    rlmusic compare models.supervised=<pretrained> models.tuned=<run> models.real=heldout \
        data=midi_dir data.path=DIR

each through the CLI with tiny budgets. The default reward's realism critic is the one trained
on this folder against the pretrained model (not the shipped folk critic), recorded in the tuned
checkpoint; a second fine-tune reuses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rlmusic import cli
from rlmusic.critics.io import read_critic_record
from rlmusic.models.checkpoint import load_checkpoint
from tests.conftest import write_midi

# a tiny auto critic (the default trains 600 steps on 8,192 windows against 4,096 samples)
TINY_CRITIC = "+reward.extra.realism.auto={steps: 10, windows: 256, samples: 64}"
SCALE = [57, 59, 60, 62, 64, 65, 67, 69, 71, 72]  # A minor / C major, a modal folder


def melody(seed: int, notes: int = 20) -> list[tuple[int, float, float]]:
    """A seeded melody of quarter and half notes by steps and thirds (distinct per seed)."""
    rng = np.random.default_rng(seed)
    degree, beat, out = 5, 0.0, []
    for _ in range(notes):
        degree = int(np.clip(degree + rng.choice([-2, -1, 1, 2]), 0, len(SCALE) - 1))
        length = float(rng.choice([1.0, 1.0, 2.0]))
        out.append((SCALE[degree], beat, beat + length))
        beat += length
    return out


def rlmusic(tmp: Path, task: str, *overrides: str) -> Path:
    """``rlmusic <task> overrides`` in this process; its run folder."""
    run = tmp / task
    assert cli.main([task, *overrides, f"hydra.run.dir={run}"]) == 0
    return run


def test_own_folder_data_pretrain_finetune_compare(tmp_path: Path) -> None:
    folder = tmp_path / "midi"
    for i in range(16):
        write_midi(folder / f"piece_{i:02d}.mid", melody(i))
    data = [
        "data=midi_dir",
        f"data.path={folder}",
        f"data.cache_dir={tmp_path / 'cache'}",  # the project's cache-dir setting
        "data.workers=1",
        "data.valid_fraction=0.2",
        "data.test_fraction=0.2",
    ]
    rlmusic(tmp_path, "data", *data)

    pretrained = rlmusic(
        tmp_path,
        "pretrain",
        *data,
        "init=pretrained:note_lstm",  # supervised fine-tuning of the shipped LSTM on the folder
        "train.epochs=1",
        "train.batch_size=8",
        "train.window=24",
        "train.init_warmup_steps=2",
        "progress=false",
        "threads=1",
        "device=cpu",
    )
    start = pretrained / "model.safetensors"
    assert start.is_file()

    tiny_finetune = [
        *data,
        f"checkpoint={start}",
        TINY_CRITIC,
        "algo.iterations=2",
        "algo.batch_size=16",
        "algo.minibatch_size=8",
        "algo.group_size=8",
        "algo.sample_every=0",
        "n_samples=1",
        "threads=1",
        "device=cpu",
    ]
    tuned_run = rlmusic(tmp_path, "finetune", *tiny_finetune)

    # the realism critic: trained on this folder's train split against the pretrained model
    _, _, info = load_checkpoint(tuned_run / "tuned.safetensors")
    assert info["tuned_from"] == str(start) and info["reference"] == str(start)
    critic = info["critics"]["realism"]
    assert critic["source"] == "trained" and critic["data"] == f"midi_dir:{folder}"
    assert critic["against"] == [str(start)] and 0.0 <= critic["metrics"]["accuracy"] <= 1.0
    critic_file = Path(critic["checkpoint"])
    assert critic_file.parent.parent == tmp_path / "cache" / "critics"
    record = read_critic_record(critic_file, "discriminator")
    assert record["trained"]["real"]["data"] == "midi_dir"
    assert record["trained"]["fake"]["generators"] == [str(start)]
    # the bands follow the folder: its own rates (train openings), not the folk targets
    targets = info["targets"]
    assert targets["source"] == "data" and targets["why"].startswith("data=midi_dir")
    # steps and thirds only: no leap to count, so the leap rule is not held (the log says so)
    assert set(targets["constraints"]) == {"tonic", "motif", "onsets"}
    assert targets["added_terms"] == ["onsets"]
    onsets = targets["rates"]["onsets"]
    assert targets["constraints"]["onsets"] == {
        "at_least": round(onsets * 0.9, 6),
        "at_most": round(onsets * 1.1, 6),
    }
    log = (tuned_run / "cli.log").read_text()  # the run's log names the critic it uses
    assert "rule targets from the data (data=midi_dir" in log
    assert "the data has no leaps resolved rate; leap_resolution is not held" in log
    assert f"freshly trained ({critic['wall_s']:.1f} s) discriminator {critic_file}" in log

    # the same data and start model again: the cached critic, no training
    again = rlmusic(tmp_path / "again", "finetune", *tiny_finetune)
    _, _, info_again = load_checkpoint(again / "tuned.safetensors")
    assert info_again["critics"]["realism"]["source"] == "cached"
    assert info_again["critics"]["realism"]["checkpoint"] == str(critic_file)
    assert f"cached discriminator {critic_file}" in (again / "cli.log").read_text()

    report = rlmusic(
        tmp_path,
        "compare",
        *data,
        TINY_CRITIC,  # the fine-tune's realism critic settings
        f"models.supervised={start}",
        f"models.tuned={tuned_run}",
        "models.real=heldout",
        f"prior={start}",  # log p and KL under one's own model, not the folk LSTM
        "n=16",
        "k=1",
        "audio=false",
        "critic.enabled=false",
        "bootstrap.resamples=20",
        "overlap.distances=50",
    )
    metrics = json.loads((report / "metrics.json").read_text())
    assert [m["name"] for m in metrics["models"]] == ["supervised", "tuned", "real"]
    assert metrics["models"][1]["spec"] == str(tuned_run)
    for name in ("supervised", "tuned"):  # the default reward's terms, realism among them
        assert "realism" in metrics["metrics"][name]["reward (per composition)"]
    assert (report / "report.html").is_file() and (report / "report.md").is_file()
