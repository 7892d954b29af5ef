"""RL Tuner's statistics (:mod:`rlmusic.rewards.statistics`): exact values on hand-worked
melodies (each worked out in the comments), and their identifiers: every statistic has one row
of text, and the eval/* names and row texts people and configs read are pinned."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from rlmusic.algos.constraints import STATISTIC_OF_TERM
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.checks import CHECKS, REFERENCE_LOGP_METRIC
from rlmusic.evaluation.model_eval import evaluate_samples
from rlmusic.evaluation.objective import CRITIC_METRIC, evaluation_metrics, metric_name
from rlmusic.evaluation.table_rows import STATISTIC_ROWS, row_name, statistic_of
from rlmusic.models.sampling import sample_seeded
from rlmusic.rewards import statistics
from rlmusic.rewards.statistics import (
    CompositionStats,
    KeySpec,
    Statistic,
    autocorrelate,
    composition_stats,
)
from rlmusic.rewards.theory import RULES, leap_outcomes
from tests.conftest import tiny_lstm

S = Statistic
ENC = MelodyEncoding()


def tok(*pitches: int) -> tuple[int, ...]:
    return tuple(ENC.pitch_to_token(p) for p in pitches)


B3, C4, D4, E4, F4, FS4, G4, A4, B4, C5, D5, E5 = tok(
    59, 60, 62, 64, 65, 66, 67, 69, 71, 72, 74, 76
)
H, R = 1, 0  # hold, rest

# A random-ish melody, worked by hand below (16 steps, 11 onsets):
#   step   0  1  2   3   4  5  6  7   8   9   10 11  12  13  14  15
#   token  E4 H  C5  B4  R  G4 H  D4  A4  E5  H  F4  F4  C4  A4  R
#   MIDI   64 .  72  71  .  67 .  62  69  76  .  65  65  60  69  .
RANDOMISH = [E4, H, C5, B4, R, G4, H, D4, A4, E5, H, F4, F4, C4, A4, R]


def stats_of(*pieces: list[int], key: KeySpec | None = None):
    return composition_stats([np.array(p) for p in pieces], ENC, key)


def table(*pieces: list[int], key: KeySpec | None = None) -> dict[Statistic, float]:
    return stats_of(*pieces, key=key).table()


def outcomes(*tokens: int) -> list[int]:
    return leap_outcomes(ENC.pitches(np.array([tokens]))).tolist()[0]


def test_randomish_melody_every_row() -> None:
    stats = stats_of(RANDOMISH)
    assert (stats.pieces, stats.steps, stats.onsets) == (1, 16, 11)
    # leap detector: +8 at step 2 opens (leapt from E4 = 64); B4 71, G4 67 are above 64; D4 62
    # at step 7 is at or below 64: resolved. A4 at step 8 (+7) opens again from D4; E5 (+7, up
    # again) at step 9: doubled, still open. F4 at step 11 (-11) leaps back 1 step after the
    # last leap (11 - 9 - 1 = 1, not > 6): closes, not resolved. A4 at 14 (+9) opens; the end.
    assert outcomes(*RANDOMISH) == [0] * 7 + [1, 0, -1] + [0] * 6
    assert (stats.leaps_resolved, stats.leaps_doubled) == (1, 1)
    # next-note variant: leaps into steps 2 (+8, next -1: back), 8 (+7, next +7), 9 (+7, next
    # -11: back), 11 (-11, next 0: not back); the +9 into step 14 has no next onset
    assert (stats.next_note_leaps, stats.next_note_resolved) == (4, 2)
    # motif: every 8-step window ending at t = 7..15 holds >= 3 distinct pitches (the fewest:
    # A4 E5 F4 C4 in steps 8..15); steps 0..6 never count. 9 of 16 steps; onsets among steps
    # 7..15: 7, 8, 9, 11, 12, 13, 14 = 7 of 11. No window repeats an earlier one.
    assert (stats.in_motif, stats.in_motif_onsets, stats.in_repeated_motif) == (9, 7, 0)
    rows = stats.table()
    assert rows[S.NOTES_IN_MOTIF] == pytest.approx(9 / 16)
    assert stats.variants()[S.NOTES_IN_MOTIF_PER_ONSET] == pytest.approx(7 / 11)
    assert rows[S.LEAPS_RESOLVED] == pytest.approx(1 / 2)
    assert stats.variants()[S.LEAPS_RESOLVED_NEXT_NOTE_BACK] == pytest.approx(2 / 4)
    # all in C major; F4 F4 is 2 strikes; highest E5 and lowest C4 struck once; starts on E
    assert rows[S.NOTES_NOT_IN_KEY] == rows[S.NOTES_EXCESSIVELY_REPEATED] == 0.0
    assert rows[S.UNIQUE_MAX] == rows[S.UNIQUE_MIN] == 1.0
    assert rows[S.TONIC_START] == 0.0
    x = np.array(RANDOMISH, dtype=float)
    c = x - x.mean()
    assert rows[S.AUTOCORRELATION_LAG_2] == pytest.approx((c[2:] * c[:-2]).sum() / 16 / x.var())
    assert stats.onsets_per_composition() == 11


def test_alternating_fifths_resolve_nothing() -> None:
    # C4 G4 C4 G4 ...: every interval is a leap; each leap back comes 0 steps after the leap
    # (not > 6), so it only closes the leap, and the next leap opens a new one
    alternating = [C4, G4] * 16
    assert outcomes(*alternating) == [0] * 32
    stats = stats_of(alternating)
    assert (stats.leaps_resolved, stats.leaps_doubled) == (0, 0)
    assert np.isnan(stats.table()[S.LEAPS_RESOLVED])  # no outcome at all: 0 / 0
    # the "next note goes back" count calls all 30 leaps with a next onset resolved
    assert stats.variants()[S.LEAPS_RESOLVED_NEXT_NOTE_BACK] == 1.0
    # with holds between, and a sixth: still nothing (leaps back 1 step after the leap)
    assert sum(map(abs, outcomes(*[C4, H, A4, H] * 8))) == 0


def test_gradual_return_resolves() -> None:
    # +7 from C4; F4 E4 D4 stay above 60; C4 reaches the note leapt from: resolved at step 5
    assert outcomes(C4, G4, F4, E4, D4, C4, H, H) == [0, 0, 0, 0, 0, 1, 0, 0]
    # +9 from C4; F4 D4 above; B3 passes below C4 by steps: resolved at step 4
    assert outcomes(C4, A4, F4, D4, B3) == [0, 0, 0, 0, 1]
    # a leap down (C5 -> F4, -7) resolves when the melody climbs back to C5 (72 >= 72)
    assert outcomes(C5, F4, G4, A4, C5) == [0, 0, 0, 0, 1]
    # a held note and rests do not resolve; a repeat of the top note is not a return
    assert outcomes(C4, G4, H, R, G4, A4) == [0] * 6


def test_leap_back_resolves_only_after_more_than_six_steps() -> None:
    # leap at step 1; a leap back at step 9 has 7 steps between (2..8): resolved
    assert outcomes(C4, G4, *[H] * 7, C4) == [0] * 9 + [1]
    # a rest's steps count too
    assert outcomes(C4, G4, R, *[H] * 6, C4) == [0] * 9 + [1]
    # at step 8 only 6 steps lie between: not resolved, and the leap is closed
    assert outcomes(C4, G4, *[H] * 6, C4, D4, C4) == [0] * 11
    stats = stats_of([C4, G4, *[H] * 7, C4], [C4, G4, *[H] * 6, C4])
    assert (stats.leaps_resolved, stats.leaps_doubled) == (1, 0)
    assert stats.table()[S.LEAPS_RESOLVED] == 1.0


def test_doubled_leaps_stay_open_from_the_first_note() -> None:
    # +7, +7: doubled at step 2; the leap stays open from C4 (60), so the descent C5 A4 F4 D4
    # does not resolve it (all above 60) until C4 at step 7; re-opened from G4 it would have
    # resolved at F4 (65 <= 67)
    assert outcomes(C4, G4, D5, C5, A4, F4, D4, C4) == [0, 0, -1, 0, 0, 0, 0, 1]
    # the doubling leap restarts the step count: a leap back 7 steps after the opening leap
    # but 6 after the doubling one closes without resolving; one step later it resolves
    assert outcomes(C4, G4, D5, *[H] * 6, G4) == [0, 0, -1] + [0] * 7
    assert outcomes(C4, G4, D5, *[H] * 7, G4) == [0, 0, -1] + [0] * 7 + [1]
    # three leaps up: two doubled
    stats = stats_of([C4, G4, D5, *tok(81)])
    assert (stats.leaps_resolved, stats.leaps_doubled) == (0, 2)
    assert stats.table()[S.LEAPS_RESOLVED] == 0.0


def test_repetition_counts_strikes_over_all_steps() -> None:
    held = [C4] + [H] * 31  # one strike, held: never a repeat
    # six C strikes with holds between: the 5th and 6th are excessive; 20 D strikes: 16
    struck = [C4, H] * 6 + [D4] * 20
    rests_break = [C4, R] * 5 + [H] * 22  # rests end the run
    stats = stats_of(held, struck, rests_break)
    assert (stats.steps, stats.onsets, stats.repeated) == (96, 1 + 26 + 5, 2 + 16)
    assert stats.table()[S.NOTES_EXCESSIVELY_REPEATED] == pytest.approx(18 / 96)
    assert stats.variants()[S.NOTES_EXCESSIVELY_REPEATED_PER_ONSET] == pytest.approx(18 / 32)
    assert table(held)[S.NOTES_EXCESSIVELY_REPEATED] == 0.0


def test_key_and_tonic() -> None:
    piece = [C4, D4, FS4, H, G4, H, H, H]  # F# is out of C major, in G major; 4 onsets, 8 steps
    assert table(piece)[S.NOTES_NOT_IN_KEY] == pytest.approx(1 / 8)
    assert stats_of(piece).variants()[S.NOTES_NOT_IN_KEY_PER_ONSET] == pytest.approx(1 / 4)
    assert table(piece, key=KeySpec(7, "major"))[S.NOTES_NOT_IN_KEY] == 0.0
    assert table(piece)[S.TONIC_START] == 1.0
    assert table([C5, H, H, H])[S.TONIC_START] == 0.0  # middle C only


def test_unique_extremes() -> None:
    assert table([C4, G4, E4, C5, D4])[S.UNIQUE_MAX] == 1.0
    assert table([C4, G4, E4, C5, D4])[S.UNIQUE_MIN] == 1.0
    assert table([C4, C5, E4, C5, C4])[S.UNIQUE_MAX] == 0.0
    assert table([C4, C5, E4, C5, C4])[S.UNIQUE_MIN] == 0.0
    assert table([H, R, H])[S.UNIQUE_MAX] == 0.0  # no notes, no extremes


def test_motif_counts_every_step_of_a_qualifying_window() -> None:
    # C E G struck at steps 0, 3, 6 of every 8: each window ending at t >= 7 holds all three,
    # holds included: steps 7..31 = 25 of 32 steps, though only 12 steps strike a note
    sparse = [C4, H, H, E4, H, H, G4, H] * 4
    stats = stats_of(sparse)
    assert (stats.in_motif, stats.onsets) == (25, 12)
    assert stats.table()[S.NOTES_IN_MOTIF] == pytest.approx(25 / 32)
    # per onset, only onsets at t >= 7 count: 8, 11, 14, 16, 19, 22, 24, 27, 30 = 9 of 12
    assert stats.variants()[S.NOTES_IN_MOTIF_PER_ONSET] == pytest.approx(9 / 12)
    # repeated: the window ending at t equals the one ending at t - 8 for t >= 15: 17 steps
    assert stats.in_repeated_motif == 17
    assert stats.table()[S.NOTES_IN_REPEATED_MOTIF] == pytest.approx(17 / 32)
    assert stats.in_repeated_motif_onsets == 6  # onsets at 16, 19, 22, 24, 27, 30
    two_pitches = [C4, D4] * 8
    assert stats_of(two_pitches).in_motif == 0


def test_repeated_motif_needs_a_window_that_ended_before() -> None:
    # 16 onsets, period 8: the window ending at 15 (steps 8..15) equals steps 0..7; the one
    # ending at 14 equals steps 7..14 - 8 = -1..6, not a full window: only step 15 repeats
    piece = [C4, D4, E4, F4, G4, A4, B4, C5] * 2
    stats = stats_of(piece)
    assert (stats.in_motif, stats.in_repeated_motif) == (9, 1)
    # period 4, 12 steps: the window ending at 11 equals the one ending at 7, but they
    # overlap (steps 4..11 and 0..7): an earlier window must end before this one starts
    short = [C4, D4, E4, F4] * 3
    assert stats_of(short).in_repeated_motif == 0
    assert stats_of(short * 2).in_repeated_motif == 24 - 15  # t = 15..23 (ends 7..15 earlier)


def test_random_tokens_hit_the_motif_ceiling() -> None:
    rng = np.random.default_rng(0)
    share = table(*rng.integers(0, ENC.vocab_size, (500, 32)))[S.NOTES_IN_MOTIF]
    assert share == pytest.approx(25 / 32, abs=0.005)  # 8 pitch steps of 38 tokens: ~always 3+


def test_autocorrelation_matches_the_definition() -> None:
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    c = x - x.mean()
    assert autocorrelate(x, 2) == pytest.approx((c[2:] * c[:-2]).sum() / len(x) / x.var())
    assert autocorrelate(np.array([5, 5, 5]), 1) == 0.0
    assert table([C4, H, C4, H, C4, H])[S.AUTOCORRELATION_LAG_1] == pytest.approx(-5 / 6)
    # a constant piece has no coefficient (the original's NaN, skipped by its nanmean)
    both = table([C4, H, C4, H, C4, H], [C4] * 6)
    assert both[S.AUTOCORRELATION_LAG_1] == pytest.approx(-5 / 6)


# ---- identifiers, their text, and the names outside code reads ------------------------------

# Every eval/* metric of the end-of-run evaluation, as sweeps, conf/experiment/*.yaml and
# conf/hparams_search/*.yaml name them. A change here renames a user's metric: never silently.
EVAL_NAMES = {
    "eval/compositions_starting_with_tonic",
    "eval/critic_accuracy",
    "eval/distinct_share",
    "eval/duration_l1",
    "eval/interval_l1",
    "eval/kl_per_token",
    "eval/leaps_resolved",
    "eval/leaps_resolved_next_note_back",
    "eval/mean_autocorrelation_lag_1",
    "eval/mean_autocorrelation_lag_2",
    "eval/mean_autocorrelation_lag_3",
    "eval/notes_excessively_repeated",
    "eval/notes_excessively_repeated_per_onset",
    "eval/notes_in_motif",
    "eval/notes_in_motif_per_onset",
    "eval/notes_in_repeated_motif",
    "eval/notes_in_repeated_motif_per_onset",
    "eval/notes_not_in_key",
    "eval/notes_not_in_key_per_onset",
    "eval/onsets_per_piece",
    "eval/prior_logp_per_onset",
    "eval/prior_logp_per_token",
    "eval/reference_logp_per_onset",
    "eval/signed_interval_l1",
    "eval/unique_max_note",
    "eval/unique_min_note",
}
# The text each statistic shows in evaluate's and compare's tables, final_eval.json and
# compare's metrics.json (and compare's <model>/<row> metrics).
ROW_TEXTS = {
    S.NOTES_EXCESSIVELY_REPEATED: "notes excessively repeated",
    S.AUTOCORRELATION_LAG_1: "mean autocorrelation lag 1",
    S.AUTOCORRELATION_LAG_2: "mean autocorrelation lag 2",
    S.AUTOCORRELATION_LAG_3: "mean autocorrelation lag 3",
    S.NOTES_NOT_IN_KEY: "notes not in key",
    S.TONIC_START: "compositions starting with tonic",
    S.LEAPS_RESOLVED: "leaps resolved",
    S.UNIQUE_MAX: "unique max note",
    S.UNIQUE_MIN: "unique min note",
    S.NOTES_IN_MOTIF: "notes in motif",
    S.NOTES_IN_REPEATED_MOTIF: "notes in repeated motif",
    S.NOTES_EXCESSIVELY_REPEATED_PER_ONSET: "notes excessively repeated (per onset)",
    S.NOTES_NOT_IN_KEY_PER_ONSET: "notes not in key (per onset)",
    S.LEAPS_RESOLVED_NEXT_NOTE_BACK: "leaps resolved (next note back)",
    S.NOTES_IN_MOTIF_PER_ONSET: "notes in motif (per onset)",
    S.NOTES_IN_REPEATED_MOTIF_PER_ONSET: "notes in repeated motif (per onset)",
    S.ONSETS_PER_PIECE: "onsets per composition",
}


def test_every_statistic_is_counted_once_and_has_one_row_of_text() -> None:
    stats = CompositionStats()
    counted = [*stats.table(), *stats.variants(), S.ONSETS_PER_PIECE]
    assert sorted(counted) == sorted(Statistic) and len(set(counted)) == len(counted)
    assert {s: row.text for s, row in STATISTIC_ROWS.items()} == ROW_TEXTS
    for statistic, text in ROW_TEXTS.items():
        assert row_name(statistic) == row_name(statistic.value) == text
        assert statistic_of(text) is statistic_of(statistic.value) is statistic
    assert statistic_of("distinct share") is None and row_name("distinct share") == "distinct share"


def test_eval_names_are_pinned() -> None:
    """The evaluation's rows (a prior, the policy's log p and held-out melodies: every row),
    the start model's log p and the critic test: exactly the names sweeps have used."""
    generator = tiny_lstm(0)
    tokens, logp = sample_seeded(generator, 8, 16, 0)
    reference = list(sample_seeded(tiny_lstm(1), 8, 16, 1)[0])
    evaluation = evaluate_samples("tuned", tokens, ENC, logp, generator, reference)
    produced = set(evaluation_metrics(evaluation)) | {REFERENCE_LOGP_METRIC, CRITIC_METRIC}
    assert produced == EVAL_NAMES
    assert {metric_name(s) for s in Statistic} <= EVAL_NAMES
    # final_eval.json holds the rows' text: a reader maps it to the same names
    record = evaluation.as_dict()
    assert {metric_name(k) for k in record if k not in ("name", "n", "length")} == set(
        evaluation_metrics(evaluation)
    )
    assert {row_name(s) for s in (*evaluation.table, *evaluation.variants)} <= set(record)


def test_an_unknown_row_has_no_eval_name() -> None:
    with pytest.raises(ValueError, match="no eval/\\* name for the row 'nonesuch'"):
        metric_name("nonesuch")


def _eval_names_in(node: object) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_eval_names_in(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_eval_names_in(v) for v in node))
    return {node} if isinstance(node, str) and node.startswith("eval/") else set()


def test_configs_and_checks_name_only_known_eval_metrics() -> None:
    conf = Path(__file__).resolve().parents[1] / "conf"
    named: set[str] = set()
    for path in conf.rglob("*.yaml"):
        named |= _eval_names_in(OmegaConf.to_container(OmegaConf.load(path)))
    assert "eval/interval_l1" in named  # the configs do name some
    assert named <= EVAL_NAMES
    assert {check.metric for check in CHECKS} <= EVAL_NAMES


def test_every_constraint_bounds_a_table_statistic_of_a_rule() -> None:
    """A melody rule bounds a row of RL Tuner's table, a voice-leading rule one of the
    voice-leading table (each kind's rules and rows, never the other's)."""
    from rlmusic.evaluation.table_rows import statistic_values
    from rlmusic.rewards.harmony_statistics import HarmonyStats
    from rlmusic.rewards.harmony_terms import HARMONY_RULES

    tables = {  # what the constraints count: each table's rows (melodies: and onsets per piece)
        "melody": (RULES, statistic_values(CompositionStats())),
        "chorale": (HARMONY_RULES, statistic_values(HarmonyStats())),
    }
    for term, (statistic, _) in STATISTIC_OF_TERM.items():
        assert any(term in rules and statistic in table for rules, table in tables.values()), term


def test_docstring_examples() -> None:
    result = doctest.testmod(statistics)
    assert result.attempted > 0 and result.failed == 0
