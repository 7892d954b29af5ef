"""`rlmusic evaluate` on a tiny checkpoint, with a small MIDI folder as held-out reference."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import LSTMConfig, NoteLSTM, save_checkpoint
from rlmusic.models.registry import judging_prior
from rlmusic.tasks import evaluate
from tests.conftest import C_MAJOR_TUNE, write_midi


def test_evaluate_prints_the_table_and_writes_json(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    checkpoint = save_checkpoint(
        tmp_path / "m.safetensors",
        NoteLSTM(LSTMConfig(embed_dim=8, hidden_size=16, num_layers=1)),
        MelodyEncoding(),
    )
    for i in range(12):
        write_midi(
            tmp_path / "midi" / f"t{i}.mid", [(p + i % 5, s, e) for p, s, e in C_MAJOR_TUNE] * 1
        )
    overrides = [
        f"checkpoint={checkpoint}",
        f"prior={checkpoint}",
        f"compare_to=[{checkpoint}]",
        "n=64",
        "length=16",
        "data=midi_dir",
        f"data.path={tmp_path / 'midi'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.test_fraction=0.5",
        "data.min_notes=4",
    ]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("evaluate", overrides=overrides)
    first, second = evaluate.run(cfg, output_dir=tmp_path / "out")
    assert first.table == second.table  # same seed, same model: same samples
    assert abs(first.realism["KL to prior per token"]) < 1e-5  # the model is its own prior
    assert "interval L1 to held-out" in first.realism
    out = capsys.readouterr().out
    assert "| notes in motif |" in out and "paper Q" in out
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert saved[0]["n"] == 64 and saved[0]["length"] == 16


def test_the_prior_follows_the_checkpoint(tmp_path: Path) -> None:
    """prior: null judges a checkpoint under its recorded KL reference, else itself (a
    default that named the folk model broke every other model)."""
    model = NoteLSTM(LSTMConfig(embed_dim=8, hidden_size=16, num_layers=1))
    plain = save_checkpoint(tmp_path / "plain.safetensors", model, MelodyEncoding())
    tuned = save_checkpoint(
        tmp_path / "tuned.safetensors",
        model,
        MelodyEncoding(),
        info={"tuned_from": str(plain), "reference": "pretrained:note_lstm"},
    )
    from_start = save_checkpoint(
        tmp_path / "start.safetensors",
        model,
        MelodyEncoding(),
        info={"tuned_from": str(plain), "reference": "start"},
    )
    assert judging_prior("pretrained:chorale_lstm") == "pretrained:chorale_lstm"
    assert judging_prior(str(plain)) == str(plain)
    assert judging_prior(str(tuned)) == "pretrained:note_lstm"
    assert judging_prior(str(from_start)) == str(plain)
