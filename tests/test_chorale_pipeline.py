"""Chorales end to end through the tasks every melody goes through: a tiny random-init chorale
generator is fine-tuned (algo=batched, the harmony reward), sampled and listened to, with no
task, trainer or environment of its own."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

from rlmusic.data.chorale_encoding import VOICE_NAMES, ChoraleEncoding
from rlmusic.models import LSTMConfig, NoteLSTM, load_generator, save_checkpoint
from rlmusic.tasks import finetune, listen, sample
from tests.conftest import compose_finetune, compose_task, tiny_chorale_finetune

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHORALE = ChoraleEncoding()


def tiny_chorale_checkpoint(tmp_path: Path) -> Path:
    """A seeded random-init LSTM over the chorale vocabulary, saved as a start model."""
    torch.manual_seed(0)
    config = LSTMConfig(
        vocab_size=CHORALE.vocab_size, embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0
    )
    return save_checkpoint(tmp_path / "chorale.safetensors", NoteLSTM(config), CHORALE)


def tracks(path: Path) -> list[str]:
    return [i.name for i in pretty_midi.PrettyMIDI(str(path)).instruments]


def test_finetune_sample_and_listen_on_chorales(tmp_path: Path) -> None:
    start = tiny_chorale_checkpoint(tmp_path)

    # finetune: the harmony rules and KL to the start model (the realism critic needs the
    # chorale corpus: tests/test_critics_chorale.py trains it), 8 steps = 32 tokens a piece
    cfg = compose_finetune([*tiny_chorale_finetune(start, 8), "algo.sample_every=1"])
    run = finetune.run(cfg, output_dir=tmp_path / "run")
    tuned, encoding = load_generator(str(run.tuned))
    assert encoding == CHORALE and tuned.vocab_size == CHORALE.vocab_size
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert {"reward/parallel_fifths", "reward/voice_crossing"} <= set(rows[0])
    for folder in ("iter_00001", "iter_00002", "final"):
        midi = sorted((tmp_path / "run" / "samples" / folder).glob("*.mid"))
        assert len(midi) == 2 and all(tracks(m) == list(VOICE_NAMES) for m in midi)
    # the trainer acted over the tokens of 8 steps: every sample is 8 steps long
    final = pretty_midi.PrettyMIDI(str(tmp_path / "run" / "samples" / "final" / "sample_000.mid"))
    assert final.get_end_time() <= 8 * 60 / 80 / 4 + 1e-6

    # sample: the tuned run folder, 4 steps of 4 voices per piece
    out = tmp_path / "samples"
    drawn = sample.run(
        compose_task(
            "sample",
            [f"checkpoint={tmp_path / 'run'}", f"out={out}", "n=3", "length=4", "musicxml=1"],
        )
    )
    assert drawn.tokens.shape == (3, 16)
    again = sample.run(
        compose_task(
            "sample",
            [f"checkpoint={tmp_path / 'run'}", f"out={tmp_path / 'again'}", "n=3", "length=4"],
        )
    )
    np.testing.assert_array_equal(drawn.tokens, again.tokens)  # one seed, the same pieces
    assert all(tracks(p) == list(VOICE_NAMES) for p in drawn.midi)

    # listen: the tuned model against the start model, organ audio of all four voices
    page = listen.run(
        compose_task(
            "listen",
            [
                "encoding=chorale",
                f"+models.tuned={tmp_path / 'run'}",
                f"+models.start={start}",
                "pairs=2",
                "length=8",
                "synth=sine",
                "device=cpu",
                f"out={tmp_path / 'page'}",
            ],
        )
    )
    assert "two short chorales" in page.read_text()
    key = json.loads((tmp_path / "page.key.json").read_text())
    assert {s["model"] for s in key["samples"].values()} == {"tuned", "start"}
    for sample_id in key["samples"]:
        assert tracks(tmp_path / "page" / "samples" / f"{sample_id}.mid") == list(VOICE_NAMES)


TINY_ALGOS = {
    "ppo": [
        "algo=ppo", "algo.n_envs=2", "algo.n_steps=64", "algo.batch_size=16", "algo.n_epochs=2",
        "algo.total_timesteps=128", "algo.checkpoint_every=64", "algo.sample_every=64",
        "algo.stats_every=64", "algo.stats_samples=8",
    ],
    "rl_tuner": [
        "algo=rl_tuner", "algo.total_timesteps=256", "algo.n_envs=16", "algo.batch_size=64",
        "algo.checkpoint_every=128", "algo.stats_every=256", "algo.stats_samples=16",
    ],
}  # fmt: skip


@pytest.mark.parametrize("algo", sorted(TINY_ALGOS))
def test_every_algorithm_tunes_a_chorale_generator_unchanged(tmp_path: Path, algo: str) -> None:
    start = tiny_chorale_checkpoint(tmp_path)
    cfg = compose_finetune(
        [
            f"checkpoint={start}",
            "reward=chorale",
            "~reward.extra.realism",
            "length=8",
            "n_samples=1",
            "device=cpu",
            "threads=1",
            *TINY_ALGOS[algo],
        ]
    )
    run = finetune.run(cfg, output_dir=tmp_path / "run")
    assert load_generator(str(run.tuned))[1] == CHORALE
    (final,) = (tmp_path / "run" / "samples" / "final").glob("*.mid")
    assert tracks(final) == list(VOICE_NAMES)
    assert run.metrics["final/policy/onsets_per_piece"] <= 4 * 8  # pieces of 8 steps, 4 voices
