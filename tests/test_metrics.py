"""Realism measures (:mod:`rlmusic.evaluation.metrics`): exact values on hand-worked melodies.
RL Tuner's statistics are tests/test_statistics.py's."""

from __future__ import annotations

import numpy as np
import pytest

from rlmusic.evaluation.metrics import (
    abs_interval_histogram,
    abs_interval_l1,
    distinct_share,
    duration_histogram,
    duration_l1,
    interval_histogram,
    interval_l1,
    note_durations,
)
from tests.test_statistics import C4, C5, D4, E4, E5, ENC, G4, RANDOMISH, H, R, tok


def test_distinct_share_and_interval_histograms() -> None:
    a, b = np.array([C4, E4, G4]), np.array([C4, D4, E4])
    assert distinct_share([a, a, b, b]) == 0.5
    hist = interval_histogram([a, np.array([C4, H, C5, C4])], ENC)
    assert hist.sum() == pytest.approx(1.0)
    assert hist[13 + 4] == hist[13 + 3] == hist[13 + 12] == hist[13 - 12] == pytest.approx(0.25)
    assert interval_l1([a], [a], ENC) == 0.0
    assert interval_l1([a], [b], ENC) == pytest.approx(2.0)  # disjoint histograms


def test_abs_interval_histogram_has_13_bins() -> None:
    # RANDOMISH's |intervals|: 8 1 4 5 7 7 11 0 5 9 (10 of them)
    hist = abs_interval_histogram([np.array(RANDOMISH)], ENC)
    expected = np.zeros(13)
    for size, count in {0: 1, 1: 1, 4: 1, 5: 2, 7: 2, 8: 1, 9: 1, 11: 1}.items():
        expected[size] = count / 10
    np.testing.assert_allclose(hist, expected)
    # 12 semitones and more share the last bin: C4 C5 (12), C5 C4 (12), C4 E5 (16)
    np.testing.assert_allclose(abs_interval_histogram([np.array([C4, C5, C4, E5])], ENC)[12], 1.0)
    # up and down are one bin: C E C vs C E G#: |4| |4| both; the signed version differs
    up_down, up_up = np.array([C4, E4, C4]), np.array([C4, E4, *tok(68)])
    assert abs_interval_l1([up_down], [up_up], ENC) == 0.0
    assert interval_l1([up_down], [up_up], ENC) == pytest.approx(1.0)


def test_note_durations_and_their_histogram() -> None:
    # RANDOMISH: E4 H | C5 | B4 R | G4 H | D4 | A4 | E5 H | F4 | F4 | C4 | A4 R
    assert note_durations(np.array(RANDOMISH), ENC).tolist() == [2, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1]
    # a note held to the end lasts to the end; a long one lands in the last bin (>= 16)
    assert note_durations(np.array([R, C4, H, H]), ENC).tolist() == [3]
    hist = duration_histogram([np.array([C4] + [H] * 19), np.array(RANDOMISH)], ENC)
    assert hist[15] == pytest.approx(1 / 12) and hist[0] == pytest.approx(8 / 12)
    assert hist[1] == pytest.approx(3 / 12)
    # sample C4(2) E4(2) C4(4) vs reference C4(2) E4(1) G#4(1): bins {2: 2/3, 4: 1/3} vs
    # {1: 2/3, 2: 1/3}: L1 = 2/3 + 1/3 + 1/3
    sample = np.array([C4, H, E4, H, C4, H, H, H])
    reference = np.array([C4, H, E4, *tok(68), R, H, H, H])
    assert duration_l1([sample], [reference], ENC) == pytest.approx(4 / 3)
