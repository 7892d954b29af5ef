"""Exact values of the comparison's metric definitions, on hand-worked tiny sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.bootstrap import (
    Interval,
    bootstrap_weights,
    estimate,
    interval,
    mean_of,
    percentile_interval,
    ratio_of_sums,
)
from rlmusic.evaluation.comparison import diversity_metrics, reward_metrics
from rlmusic.evaluation.diversity import (
    distinct_ngram_terms,
    distinct_ngrams,
    distinct_share_terms,
    pitch_class_entropy,
)
from rlmusic.evaluation.metrics import abs_interval_l1, distinct_share, duration_l1
from rlmusic.evaluation.overlap import overlap_area, overlap_statistic, piece_features
from rlmusic.evaluation.realism import (
    HISTOGRAMS,
    histogram_l1,
    per_piece_counts,
    pitch_class_counts,
    pitch_class_l1,
)
from rlmusic.evaluation.table_rows import PieceCounts, table_intervals
from rlmusic.rewards.composite import CompositeReward, WeightedTerm
from rlmusic.rewards.statistics import Statistic, composition_stats
from rlmusic.rewards.theory import KeyRule

ENC = MelodyEncoding()
C4, D4, E4, F4, G4, A4 = 14, 16, 18, 19, 21, 23  # tokens of MIDI 60, 62, 64, 65, 67, 69
HOLD, REST = 1, 0


def _random_pieces(n: int, length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, ENC.vocab_size, (n, length))


# ---- bootstrap ---------------------------------------------------------------------------


def test_bootstrap_weights_are_seeded_draws_of_n() -> None:
    first, again = bootstrap_weights(5, 7, seed=3), bootstrap_weights(5, 7, seed=3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, bootstrap_weights(5, 7, seed=4))
    assert first.shape == (7, 5) and (first.sum(axis=1) == 5).all() and (first >= 0).all()


def test_intervals_are_deterministic_for_a_seed() -> None:
    values = np.random.default_rng(0).normal(size=200)
    a = estimate(mean_of(values), bootstrap_weights(200, 300, seed=1))
    b = estimate(mean_of(values), bootstrap_weights(200, 300, seed=1))
    c = estimate(mean_of(values), bootstrap_weights(200, 300, seed=2))
    assert a == b and a != c
    assert a.value == pytest.approx(values.mean(), abs=1e-12)
    assert a.low < a.value < a.high


def test_weighted_statistics_by_hand() -> None:
    weights = np.array([[2, 0], [0, 2], [1, 1]])
    assert ratio_of_sums(np.array([1.0, 3.0]), np.array([1.0, 1.0]))(weights).tolist() == [
        1.0,
        3.0,
        2.0,
    ]
    # a ratio of sums, not a mean of ratios: (1 + 3) / (1 + 3) = 1 at equal weights
    assert ratio_of_sums(np.array([1.0, 3.0]), np.array([1.0, 3.0]))(np.ones((1, 2)))[0] == 1.0
    assert mean_of(np.array([1.0, 4.0]))(weights).tolist() == [1.0, 4.0, 2.5]


def test_percentile_interval_recentres_on_the_point_value() -> None:
    values = np.arange(101.0)
    assert percentile_interval(values, 0.5) == (25.0, 75.0)
    assert percentile_interval(values, 0.5, point=50.0) == (25.0, 75.0)
    assert percentile_interval(values, 0.5, point=60.0) == (35.0, 85.0)
    assert all(math.isnan(x) for x in percentile_interval(np.array([np.nan]), 0.5))
    clipped = interval(0.1, np.arange(101.0) / 100, 0.5, bounds=(0.0, 1.0))  # -0.15 clipped to 0
    assert (clipped.value, clipped.low) == (0.1, 0.0) and clipped.high == pytest.approx(0.35)


def test_overlapping_intervals() -> None:
    assert Interval(1, 0, 2).overlaps(Interval(5, 2, 6))  # touching counts
    assert not Interval(1, 0, 2).overlaps(Interval(5, 2.1, 6))
    assert Interval(1, float("nan"), 2).overlaps(Interval(9, 8, 10))  # no claim without numbers
    assert Interval(0.5, float("nan"), 1.0).as_dict() == {"value": 0.5, "low": None, "high": 1.0}


# ---- RL Tuner rows, rewards -----------------------------------------------------------------


def test_table_rows_are_the_table_counted_as_the_original() -> None:
    pieces = _random_pieces(30, 32, seed=0)
    counts = PieceCounts.of(pieces, ENC)
    at_ones = counts.rows(np.ones((1, 30), dtype=np.int64))
    table = composition_stats(pieces, ENC).table()
    for row, value in table.items():
        assert at_ones[row][0] == pytest.approx(value, abs=1e-15, nan_ok=True), row
    # a resample is the table of the resampled set: piece 0 twice, piece 2 once
    weights = np.zeros((1, 30), dtype=np.int64)
    weights[0, [0, 2]] = [2, 1]
    resampled = composition_stats(pieces[[0, 0, 2]], ENC)
    rows = counts.rows(weights)
    for row, value in resampled.table().items():
        assert rows[row][0] == pytest.approx(value, abs=1e-15, nan_ok=True), row
    assert rows[Statistic.ONSETS_PER_PIECE][0] == resampled.onsets_per_composition()
    # the comparison keys its rows by the text it shows
    intervals = table_intervals(counts, bootstrap_weights(30, 50, 0))
    assert intervals["notes in motif"].value == table[Statistic.NOTES_IN_MOTIF]
    assert list(intervals)[-1] == "onsets per composition"


def test_reward_terms_are_means_of_per_composition_sums() -> None:
    reward = CompositeReward([WeightedTerm("key", KeyRule(), 2.0)])
    tokens = np.array([[C4, C4 + 1], [C4, D4]])  # C#4 is out of key: -1, weighted 2
    out = reward_metrics(tokens, reward, bootstrap_weights(2, 20, 0), 0.95)
    assert out["key"].value == -1.0 and out["total"].value == -1.0


# ---- diversity -------------------------------------------------------------------------


def test_distinct_share_terms_average_to_the_distinct_share() -> None:
    a, b = np.array([C4, HOLD]), np.array([E4, HOLD])
    terms = distinct_share_terms([a, a, b])
    assert terms.tolist() == [0.5, 0.5, 1.0]
    assert terms.mean() == pytest.approx(distinct_share([a, a, b])) == pytest.approx(2 / 3)


def test_distinct_ngrams_of_onset_pitches() -> None:
    first = np.array([C4, HOLD, E4, REST, G4])  # holds and rests skipped: C E G
    second = np.array([C4, E4, C4])
    # bigrams: (C,E) (E,G) | (C,E) (E,C): 3 distinct of 4
    assert distinct_ngrams([first, second], ENC, 2) == 0.75
    numerator, denominator = distinct_ngram_terms([first, second], ENC, 2)
    assert numerator.tolist() == [1.5, 1.5] and denominator.tolist() == [2.0, 2.0]
    assert distinct_ngrams([first, second], ENC, 3) == 1.0  # (C,E,G) and (C,E,C)
    assert math.isnan(distinct_ngrams([np.array([C4, HOLD])], ENC, 2))  # no bigram at all
    with pytest.raises(ValueError):
        distinct_ngrams([first], ENC, 0)


def test_pitch_class_entropy_in_bits() -> None:
    assert pitch_class_entropy(np.array([C4, E4, HOLD, G4, C4]), ENC) == 1.5  # 1/2, 1/4, 1/4
    assert pitch_class_entropy(np.array([C4, HOLD, C4 + 12]), ENC) == 0.0  # one class, 2 octaves
    chromatic = np.arange(C4, C4 + 12)
    assert pitch_class_entropy(chromatic, ENC) == pytest.approx(math.log2(12))
    assert math.isnan(pitch_class_entropy(np.array([REST, HOLD]), ENC))
    # the set's figure is the mean over pieces with an onset (the silent one is left out)
    pieces = np.array([[C4, E4, G4, C4], [REST, HOLD, HOLD, HOLD]])
    got = diversity_metrics(pieces, ENC, 2, bootstrap_weights(2, 10, 0), 0.95)
    assert got["pitch-class entropy (bits)"].value == 1.5
    assert got["distinct 2-grams"].value == 1.0  # (C,E) (E,G) (G,C)
    assert got["distinct share"].value == 1.0


# ---- realism: histograms ---------------------------------------------------------------


def test_pitch_class_histogram_l1_by_hand() -> None:
    pieces = [np.array([C4, HOLD]), np.array([E4, HOLD])]
    reference = [np.array([C4 + 12, REST])]  # C5: the same class as C4
    assert pitch_class_counts(pieces, ENC)[[0, 4]].tolist() == [1.0, 1.0]
    assert pitch_class_l1(pieces, reference, ENC) == 1.0  # |0.5 - 1| + |0.5 - 0|
    statistic = histogram_l1(
        per_piece_counts(pieces, ENC, pitch_class_counts), pitch_class_counts(reference, ENC)
    )
    assert statistic(np.array([[1, 1], [2, 0], [0, 2]])).tolist() == [1.0, 0.0, 2.0]


def test_interval_and_duration_l1_are_the_metrics_own() -> None:
    pieces = [np.array([C4, E4, G4, HOLD])]  # |intervals| 4, 3; durations 1, 1, 2
    reference = [np.array([C4, D4, E4, REST])]  # |intervals| 2, 2; durations 1, 1, 1
    ones = np.ones((1, 1))
    interval_l1 = histogram_l1(
        per_piece_counts(pieces, ENC, HISTOGRAMS["interval"]),
        HISTOGRAMS["interval"](reference, ENC),
    )
    assert interval_l1(ones)[0] == 2.0 == abs_interval_l1(pieces, reference, ENC)
    duration = histogram_l1(
        per_piece_counts(pieces, ENC, HISTOGRAMS["duration"]),
        HISTOGRAMS["duration"](reference, ENC),
    )
    # durations 2/3 @ 1 and 1/3 @ 2 against all @ 1: 1/3 + 1/3
    assert (
        duration(ones)[0]
        == pytest.approx(2 / 3)
        == pytest.approx(duration_l1(pieces, reference, ENC))
    )
    many, refs = _random_pieces(40, 32, 1), _random_pieces(30, 32, 2)
    for name, metric in (("interval", abs_interval_l1), ("duration", duration_l1)):
        stat = histogram_l1(
            per_piece_counts(many, ENC, HISTOGRAMS[name]), HISTOGRAMS[name](refs, ENC)
        )
        assert stat(np.ones((1, 40)))[0] == pytest.approx(metric(many, refs, ENC), abs=1e-12)


# ---- realism: overlap area ---------------------------------------------------------------


def test_overlap_area_of_a_sample_with_itself_is_one() -> None:
    sample = np.random.default_rng(0).normal(size=300)
    assert overlap_area(sample, sample) == pytest.approx(1.0, abs=1e-3)
    assert overlap_area(sample, sample + 100.0) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("shift", [0.5, 2.0, 4.0])
def test_overlap_area_has_the_closed_form_of_shifted_kernels(shift: float) -> None:
    # gaussian_kde of [-1, 1]: two kernels of variance cov * factor^2 = 2 * 2^(-2/5) (Scott);
    # s > 1, so the mixture is unimodal and symmetric, and it meets its shifted copy at
    # shift / 2: the overlap is 2 P(X > shift / 2) = Q((shift/2 - 1)/s) + Q((shift/2 + 1)/s)
    s = math.sqrt(2 * 2 ** (-2 / 5))
    expected = norm.sf((shift / 2 - 1) / s) + norm.sf((shift / 2 + 1) / s)
    a = np.array([-1.0, 1.0])
    assert overlap_area(a, a + shift) == pytest.approx(expected, abs=1e-3)


def test_overlap_area_of_a_degenerate_sample_is_nan() -> None:
    assert math.isnan(overlap_area(np.array([1.0, 1.0]), np.array([0.0, 2.0])))


def test_overlap_statistic_at_equal_weights_is_the_kde_overlap() -> None:
    pieces, reference = _random_pieces(40, 32, 3), _random_pieces(30, 32, 4)
    ours, theirs = piece_features(pieces, ENC), piece_features(reference, ENC)
    assert ours["note count"][:, 0].tolist() == (pieces >= 2).sum(1).tolist()
    for name in ("pitch range", "pitch-class histogram"):
        rng = np.random.default_rng(0)
        statistic = overlap_statistic(ours[name], theirs[name], rng, distances=100)
        # the same draws, by hand: 100 / 40 -> 2 partners per piece, so 80 real pairs first
        rng = np.random.default_rng(0)
        i = rng.integers(0, 30, 80)
        j = (i + rng.integers(1, 30, 80)) % 30
        intra = np.linalg.norm(theirs[name][i] - theirs[name][j], axis=1)
        partners = rng.integers(0, 30, (40, 2))
        inter = np.linalg.norm(ours[name][:, None, :] - theirs[name][partners], axis=2)
        assert statistic(np.ones((1, 40)))[0] == pytest.approx(
            overlap_area(intra, inter.ravel()), abs=1e-9
        )


def test_piece_features_by_hand() -> None:
    piece = np.array([C4, HOLD, E4, REST, A4, HOLD, HOLD, C4])  # onsets at steps 0, 2, 4, 7
    features = piece_features([piece], ENC)
    assert features["pitch count"][0, 0] == 3  # C4, E4, A4
    assert features["pitch range"][0, 0] == 9  # A4 - C4
    assert features["mean interval"][0, 0] == pytest.approx((4 + 5 + 9) / 3)
    assert features["note count"][0, 0] == 4
    assert features["inter-onset interval"][0, 0] == pytest.approx(7 / 3)
    assert features["pitch-class histogram"][0, [0, 4, 9]].tolist() == [0.5, 0.25, 0.25]
    assert features["note-length histogram"][0, :3].tolist() == [0.5, 0.25, 0.25]  # 1, 2, 3, 1


@pytest.mark.parametrize(
    "module", ["bootstrap", "diversity", "realism", "overlap", "listening"], ids=str
)
def test_docstring_examples(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"rlmusic.evaluation.{module}"))
    assert result.attempted > 0 and result.failed == 0
