"""RL Tuner statistics: exact values on hand-built melodies."""

from __future__ import annotations

import numpy as np
import pytest

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.metrics import (
    KeySpec,
    autocorrelate,
    composition_stats,
    distinct_share,
    interval_histogram,
    interval_l1,
)

ENC = MelodyEncoding()
C4, D4, E4, F4, G4, A4, B4, C5 = (ENC.pitch_to_token(p) for p in (60, 62, 64, 65, 67, 69, 71, 72))
FS4 = ENC.pitch_to_token(66)
H, R = 1, 0  # hold, rest


def table(*pieces: list[int], key: KeySpec | None = None) -> dict[str, float]:
    return composition_stats([np.array(p) for p in pieces], ENC, key).table()


def test_repetition_counts_strikes_not_holds() -> None:
    held = [C4] + [H] * 31  # one strike, held: never a repeat
    struck = (
        [C4, H] * 6 + [D4] * 20
    )  # six C strikes with holds between: 5th and 6th are excessive; 20 D strikes: 16 excessive
    rests_break = [C4, R, C4, R, C4, R, C4, R, C4, R] + [H] * 22  # rests break the run
    stats = composition_stats([np.array(held), np.array(struck), np.array(rests_break)], ENC)
    assert stats.onsets == 1 + 26 + 5
    assert stats.repeated == 2 + 16
    assert table(held)["notes excessively repeated"] == 0.0


def test_key_and_tonic() -> None:
    piece = [C4, D4, FS4, H, G4, H, H, H]  # F# is out of C major, in G major
    assert table(piece)["notes not in key"] == pytest.approx(1 / 4)
    assert table(piece, key=KeySpec(7, "major"))["notes not in key"] == 0.0
    assert table(piece)["compositions starting with tonic"] == 1.0
    assert (
        table([C5, H, H, H])["compositions starting with tonic"] == 0.0
    )  # middle C only, as the original


def test_leaps_resolved_and_doubled() -> None:
    resolved = [C4, G4, F4, H]  # +7 then -2: resolved
    doubled = [C4, G4, ENC.pitch_to_token(74), H]  # +7 then +7: doubled
    unresolved = [C4, G4, A4, H]  # +7 then +2
    last = [D4, E4, C5]  # a leap with no next note is not counted
    stats = composition_stats([np.array(p) for p in (resolved, doubled, unresolved, last)], ENC)
    assert (stats.leaps, stats.leaps_resolved, stats.leaps_doubled) == (3, 1, 1)
    assert stats.table()["leaps resolved"] == pytest.approx(1 / 3)


def test_unique_extremes() -> None:
    assert table([C4, G4, E4, C5, D4])["unique max note"] == 1.0
    assert table([C4, G4, E4, C5, D4])["unique min note"] == 1.0
    assert table([C4, C5, E4, C5, C4])["unique max note"] == 0.0
    assert table([C4, C5, E4, C5, C4])["unique min note"] == 0.0


def test_motif_needs_a_full_window_and_three_pitches() -> None:
    # onsets at steps 0..7 and 8..15; windows end at step 7 and later only
    piece = [C4, D4, E4, F4, G4, A4, B4, C5] * 2
    stats = composition_stats([np.array(piece)], ENC)
    assert stats.onsets == 16
    assert stats.in_motif == 9  # onsets at steps 7..15
    # steps 15 repeats the window ending at step 7 exactly (non-overlapping)
    assert stats.in_repeated_motif == 1
    two_pitches = [C4, D4] * 8
    assert composition_stats([np.array(two_pitches)], ENC).in_motif == 0


def test_random_tokens_hit_the_motif_ceiling() -> None:
    rng = np.random.default_rng(0)
    share = table(*rng.integers(0, ENC.vocab_size, (500, 32)))["notes in motif"]
    assert share == pytest.approx(25 / 32, abs=0.02)


def test_autocorrelation_matches_the_definition() -> None:
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    c = x - x.mean()
    assert autocorrelate(x, 2) == pytest.approx((c[2:] * c[:-2]).sum() / len(x) / x.var())
    assert autocorrelate(np.array([5, 5, 5]), 1) == 0.0
    assert table([C4, H, C4, H, C4, H])["mean autocorrelation lag 1"] == pytest.approx(-5 / 6)


def test_distinct_share_and_interval_histogram() -> None:
    a, b = np.array([C4, E4, G4]), np.array([C4, D4, E4])
    assert distinct_share([a, a, b, b]) == 0.5
    hist = interval_histogram([a, np.array([C4, H, C5, C4])], ENC)
    assert hist.sum() == pytest.approx(1.0)
    assert hist[13 + 4] == hist[13 + 3] == hist[13 + 12] == hist[13 - 12] == pytest.approx(0.25)
    assert interval_l1([a], [a], ENC) == 0.0
    assert interval_l1([a], [b], ENC) == pytest.approx(2.0)  # disjoint histograms
