"""Evaluating samples: the realism measures and the table layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.model_eval import (
    evaluate_model,
    evaluate_samples,
    format_table,
    sample_compositions,
)
from tests.toy_generator import ToyGenerator

ENC = MelodyEncoding()


def test_model_against_itself_has_zero_kl_and_seeded_samples() -> None:
    model = ToyGenerator()
    a, _ = sample_compositions(model, 64, 16, seed=1)
    b, _ = sample_compositions(model, 64, 16, seed=1)
    np.testing.assert_array_equal(a, b)
    evaluation = evaluate_model("toy", model, ENC, n=64, length=16, seed=1, prior=model)
    assert evaluation.realism["KL to prior per token"] == pytest.approx(0.0, abs=1e-5)
    assert evaluation.n == 64 and evaluation.length == 16


def test_log_p_per_onset_counts_only_note_onsets() -> None:
    class Uniform(ToyGenerator):
        def forward_with_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logits, hidden = super().forward_with_hidden(tokens)
            return torch.zeros_like(logits), hidden

    tokens = np.array([[14, 1, 1, 16], [0, 1, 18, 1]])
    evaluation = evaluate_samples("x", tokens, ENC, prior=Uniform(), reference=[tokens[0]])
    assert evaluation.realism["prior log p per onset"] == pytest.approx(-np.log(38))
    assert evaluation.realism["distinct share"] == 1.0


def test_table_has_every_paper_row() -> None:
    tokens = np.random.default_rng(0).integers(0, 38, (50, 32))
    text = format_table([evaluate_samples("random", tokens, ENC)])
    assert text.splitlines()[0] == "| metric | random | paper Note RNN | paper Q |"
    assert "| notes in motif |" in text and "| leaps resolved |" in text and "75.70%" in text
