"""`rlmusic evaluate` and `rlmusic compare` on a four-part model: the voice-leading table with
intervals, and real Bach's held-out chorales counted by the same code beside it.

A tiny random-init LSTM over the chorale vocabulary stands in for a trained model; the corpus is
the first 16 chorales of ``data=chorales`` (a quarter held out)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from rlmusic.config.validate import validate_config
from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import Note
from rlmusic.evaluation.comparison import TABLE
from rlmusic.evaluation.metrics import abs_interval_histogram, duration_histogram, voice_lines
from rlmusic.evaluation.table_rows import HARMONY_ROWS
from rlmusic.models import LSTMConfig, NoteLSTM, save_checkpoint
from rlmusic.rewards.harmony_statistics import HarmonyStatistic
from rlmusic.tasks import compare, evaluate

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ENC = ChoraleEncoding()
DATA = [
    "data=chorales",
    "data.limit=16",
    "data.test_fraction=0.25",
    "data.valid_fraction=0.1",
    "data.workers=1",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a tiny chorale checkpoint, a corpus cache shared by the tests)."""
    tmp = tmp_path_factory.mktemp("chorale_eval")
    torch.manual_seed(0)
    model = NoteLSTM(LSTMConfig(vocab_size=ENC.vocab_size, embed_dim=8, hidden_size=16))
    return save_checkpoint(tmp / "chorale.safetensors", model, ENC), tmp / "cache"


def test_evaluate_prints_the_voice_leading_table_beside_real_bach(setup, tmp_path, capsys) -> None:
    checkpoint, cache = setup
    overrides = [
        f"checkpoint={checkpoint}",
        f"prior={checkpoint}",
        "n=24",
        "length=16",
        *DATA,
        f"data.cache_dir={cache}",
    ]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("evaluate", overrides=overrides)
    (model,) = evaluate.run(cfg, output_dir=tmp_path)
    assert set(model.table) == set(HarmonyStatistic)
    assert model.length == 16 and model.n == 24
    fifths = model.intervals["parallel fifths"]
    assert fifths.low <= fifths.value <= fifths.high
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert header.startswith("| metric |") and header.rstrip().endswith("| real (held-out) |")
    assert "| parallel fifths (per 1,000 moving voice-pair transitions) |" in out
    assert "| voice crossing (% of four-voice frames) |" in out
    assert "notes in motif" not in out and "paper Q" not in out  # not the melody table
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert [e["name"] for e in saved] == [str(checkpoint), "real (held-out)"]
    real = saved[1]
    assert real["n"] >= 2 and real["length"] == 16
    assert real["intervals"]["voice crossing"]["low"] is not None


def test_compare_reports_the_voice_leading_section(setup, tmp_path) -> None:
    checkpoint, cache = setup
    options = {
        "prior": checkpoint,
        "reward": "chorale",
        "reward.prior.checkpoint": checkpoint,
        "n": 16,
        "length": 16,
        "data.cache_dir": cache,
        "bootstrap.resamples": 40,
        "critic.enabled": "false",
        "overlap.distances": 100,
        "k": 1,
        "audio": "false",
        "device": "cpu",
        "out": tmp_path / "out",
    }
    overrides = [f"+models.model={checkpoint}", "+models.real=heldout", *DATA]
    overrides += ["~reward.extra.realism"]  # no chorale critic here: the rules and the prior
    overrides += [f"{k}={v}" for k, v in options.items()]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("compare", overrides=overrides)
    result = compare.run(validate_config("compare", cfg))
    model, real = result.results
    assert TABLE not in model.metrics  # the melody section is not there
    rows = {row.text for row in HARMONY_ROWS.values()}
    assert set(model.metrics["voice leading"]) == rows == set(real.metrics["voice leading"])
    assert real.n >= 1 and model.n == 16
    # a random-init model's voices cross almost everywhere, Bach's hardly ever
    assert result.metrics["real/voice crossing"] < 0.2 < result.metrics["model/voice crossing"]
    # the reward's terms are the voice-leading rules
    assert "parallel_fifths" in model.metrics["reward (per composition)"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**voice leading**" in report and "parallel fifths (per 1,000" in report
    tokens = np.load(tmp_path / "out" / "tokens.npz")
    assert tokens["model"].shape == (16, ENC.tokens_for(16))


def test_interval_and_duration_metrics_read_each_voice_as_a_melody() -> None:
    voices = [
        [Note(72, 0, 2), Note(74, 2, 4)],  # up 2
        [Note(67, 0, 4)],  # one held note
        [Note(64, 0, 1), Note(60, 1, 4)],  # down 4
        [Note(48, 0, 3)],  # then a rest
    ]
    piece = ENC.encode_voices(voices, steps=4)  # alto..bass tokens in their own blocks
    for (column, line), notes in zip(voice_lines(piece, ENC), voices):
        assert line.decode(column) == notes
    intervals = abs_interval_histogram([piece], ENC)
    assert np.flatnonzero(intervals).tolist() == [2, 4] and intervals[[2, 4]].tolist() == [0.5, 0.5]
    durations = duration_histogram([piece], ENC)  # 2 2 | 4 | 1 3 | 3 steps: bins 1..4
    np.testing.assert_allclose(durations[:4], [1 / 6, 2 / 6, 2 / 6, 1 / 6])
    assert durations[4:].sum() == 0
