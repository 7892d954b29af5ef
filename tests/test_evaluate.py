"""Evaluating samples: the realism measures and the table layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.model_eval import (
    PAPER_TABLE,
    evaluate_model,
    evaluate_samples,
    format_table,
)
from rlmusic.evaluation.table_rows import row_name
from rlmusic.models.sampling import sample_seeded
from rlmusic.rewards.statistics import Statistic
from tests.toy_generator import ToyGenerator

ENC = MelodyEncoding()


def test_model_against_itself_has_zero_kl_and_seeded_samples() -> None:
    model = ToyGenerator()
    a, _ = sample_seeded(model, 64, 16, seed=1)
    b, _ = sample_seeded(model, 64, 16, seed=1)
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


def test_realism_rows_on_hand_worked_samples() -> None:
    c4, e4, gs4 = 14, 18, 22  # MIDI 60, 64, 68
    h, r = 1, 0
    # the sample C4(2 steps) E4(2) C4(4, to the end), and an empty piece: 3 onsets in 2 pieces
    tokens = np.array([[c4, h, e4, h, c4, h, h, h], [r, h, h, h, h, h, h, h]])
    reference = [np.array([c4, h, e4, gs4, r, h, h, h])]  # C4(2) E4(1) G#4(1)
    realism = evaluate_samples("x", tokens, ENC, reference=reference).realism
    assert realism[Statistic.ONSETS_PER_PIECE] == 1.5
    assert realism["distinct share"] == 1.0
    # |intervals| 4 4 against 4 4: one bin; signed +4 -4 against +4 +4: half the mass moves
    assert realism["interval L1 to held-out"] == 0.0
    assert realism["interval L1 to held-out (signed, 27 bins)"] == pytest.approx(1.0)
    # durations {2: 2/3, 4: 1/3} against {1: 2/3, 2: 1/3}: 2/3 + 1/3 + 1/3
    assert realism["duration L1 to held-out"] == pytest.approx(4 / 3)


def test_table_rows_are_counted_per_step_with_variants_beside() -> None:
    c4, d4, e4, g4 = 14, 16, 18, 21
    h = 1
    # piece 1: C E G once every 8 steps (steps 0, 3, 6): 25 motif steps of 32, 12 onsets, 9
    # of them at t >= 7; piece 2: C G alternating: 32 onsets, no motif (2 pitches), its leaps
    # back come at once (never resolved); piece 3: C G F E D C (steps 0..5), then holds: the
    # windows ending at 7..10 hold 5, 5, 4, 3 pitches, the one ending at 11 only D C: 4 motif
    # steps, all holds; one gradual resolution (at the 2nd C), no doubled leap
    tokens = np.array(
        [
            [c4, h, h, e4, h, h, g4, h] * 4,
            [c4, g4] * 16,
            [c4, g4, 19, e4, d4, c4] + [h] * 26,
        ]
    )
    evaluation = evaluate_samples("x", tokens, ENC)
    assert evaluation.table[Statistic.NOTES_IN_MOTIF] == pytest.approx((25 + 4) / 96)
    per_onset = evaluation.variants[Statistic.NOTES_IN_MOTIF_PER_ONSET]
    assert per_onset == pytest.approx(9 / (12 + 32 + 6))
    assert evaluation.table[Statistic.LEAPS_RESOLVED] == 1.0  # 1 resolved, 0 doubled
    # next note back: piece 2's 30 leaps with a next onset all go back; piece 3's +7 goes on
    # to F (back): 31 of 31
    assert evaluation.variants[Statistic.LEAPS_RESOLVED_NEXT_NOTE_BACK] == 1.0
    assert evaluation.realism[Statistic.ONSETS_PER_PIECE] == pytest.approx(50 / 3)
    # the record people read (final_eval.json) shows each row's text
    record = evaluation.as_dict()
    assert record["notes in motif (per onset)"] == per_onset
    assert record["onsets per composition"] == pytest.approx(50 / 3)


def test_table_has_every_paper_row_then_the_variants() -> None:
    tokens = np.random.default_rng(0).integers(0, 38, (50, 32))
    text = format_table([evaluate_samples("random", tokens, ENC)])
    lines = text.splitlines()
    assert lines[0] == "| metric | random | paper Note RNN | paper Q |"
    rows = [line.split(" | ")[0].lstrip("| ") for line in lines[2:]]
    assert rows[:11] == [row_name(statistic) for statistic in PAPER_TABLE]
    assert rows[0] == "notes excessively repeated" and rows[5] == "compositions starting with tonic"
    assert rows.index("notes in motif (per onset)") > rows.index("notes in repeated motif")
    assert "| notes in motif | 78.12% | 5.90% | 75.70% |" in text  # 25 / 32: random's ceiling
    assert "| leaps resolved (next note back) |" in text and "| onsets per composition |" in text
