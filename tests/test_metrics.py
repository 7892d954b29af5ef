"""RL Tuner statistics, counted as the original evaluation counted them: exact values on
hand-worked melodies (each worked out in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.metrics import (
    KeySpec,
    abs_interval_histogram,
    abs_interval_l1,
    autocorrelate,
    composition_stats,
    distinct_share,
    duration_histogram,
    duration_l1,
    interval_histogram,
    interval_l1,
    note_durations,
)
from rlmusic.rewards.theory import leap_outcomes

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


def table(*pieces: list[int], key: KeySpec | None = None) -> dict[str, float]:
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
    assert rows["notes in motif"] == pytest.approx(9 / 16)
    assert stats.variants()["notes in motif (per onset)"] == pytest.approx(7 / 11)
    assert rows["leaps resolved"] == pytest.approx(1 / 2)
    assert stats.variants()["leaps resolved (next note back)"] == pytest.approx(2 / 4)
    # all in C major; F4 F4 is 2 strikes; highest E5 and lowest C4 struck once; starts on E
    assert rows["notes not in key"] == rows["notes excessively repeated"] == 0.0
    assert rows["unique max note"] == rows["unique min note"] == 1.0
    assert rows["compositions starting with tonic"] == 0.0
    x = np.array(RANDOMISH, dtype=float)
    c = x - x.mean()
    assert rows["mean autocorrelation lag 2"] == pytest.approx(
        (c[2:] * c[:-2]).sum() / 16 / x.var()
    )
    assert stats.onsets_per_composition() == 11


def test_alternating_fifths_resolve_nothing() -> None:
    # C4 G4 C4 G4 ...: every interval is a leap; each leap back comes 0 steps after the leap
    # (not > 6), so it only closes the leap, and the next leap opens a new one
    alternating = [C4, G4] * 16
    assert outcomes(*alternating) == [0] * 32
    stats = stats_of(alternating)
    assert (stats.leaps_resolved, stats.leaps_doubled) == (0, 0)
    assert np.isnan(stats.table()["leaps resolved"])  # no outcome at all: 0 / 0
    # the "next note goes back" count calls all 30 leaps with a next onset resolved
    assert stats.variants()["leaps resolved (next note back)"] == 1.0
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
    assert stats.table()["leaps resolved"] == 1.0


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
    assert stats.table()["leaps resolved"] == 0.0


def test_repetition_counts_strikes_over_all_steps() -> None:
    held = [C4] + [H] * 31  # one strike, held: never a repeat
    # six C strikes with holds between: the 5th and 6th are excessive; 20 D strikes: 16
    struck = [C4, H] * 6 + [D4] * 20
    rests_break = [C4, R] * 5 + [H] * 22  # rests end the run
    stats = stats_of(held, struck, rests_break)
    assert (stats.steps, stats.onsets, stats.repeated) == (96, 1 + 26 + 5, 2 + 16)
    assert stats.table()["notes excessively repeated"] == pytest.approx(18 / 96)
    assert stats.variants()["notes excessively repeated (per onset)"] == pytest.approx(18 / 32)
    assert table(held)["notes excessively repeated"] == 0.0


def test_key_and_tonic() -> None:
    piece = [C4, D4, FS4, H, G4, H, H, H]  # F# is out of C major, in G major; 4 onsets, 8 steps
    assert table(piece)["notes not in key"] == pytest.approx(1 / 8)
    assert stats_of(piece).variants()["notes not in key (per onset)"] == pytest.approx(1 / 4)
    assert table(piece, key=KeySpec(7, "major"))["notes not in key"] == 0.0
    assert table(piece)["compositions starting with tonic"] == 1.0
    assert table([C5, H, H, H])["compositions starting with tonic"] == 0.0  # middle C only


def test_unique_extremes() -> None:
    assert table([C4, G4, E4, C5, D4])["unique max note"] == 1.0
    assert table([C4, G4, E4, C5, D4])["unique min note"] == 1.0
    assert table([C4, C5, E4, C5, C4])["unique max note"] == 0.0
    assert table([C4, C5, E4, C5, C4])["unique min note"] == 0.0
    assert table([H, R, H])["unique max note"] == 0.0  # no notes, no extremes


def test_motif_counts_every_step_of_a_qualifying_window() -> None:
    # C E G struck at steps 0, 3, 6 of every 8: each window ending at t >= 7 holds all three,
    # holds included: steps 7..31 = 25 of 32 steps, though only 12 steps strike a note
    sparse = [C4, H, H, E4, H, H, G4, H] * 4
    stats = stats_of(sparse)
    assert (stats.in_motif, stats.onsets) == (25, 12)
    assert stats.table()["notes in motif"] == pytest.approx(25 / 32)
    # per onset, only onsets at t >= 7 count: 8, 11, 14, 16, 19, 22, 24, 27, 30 = 9 of 12
    assert stats.variants()["notes in motif (per onset)"] == pytest.approx(9 / 12)
    # repeated: the window ending at t equals the one ending at t - 8 for t >= 15: 17 steps
    assert stats.in_repeated_motif == 17
    assert stats.table()["notes in repeated motif"] == pytest.approx(17 / 32)
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
    share = table(*rng.integers(0, ENC.vocab_size, (500, 32)))["notes in motif"]
    assert share == pytest.approx(25 / 32, abs=0.005)  # 8 pitch steps of 38 tokens: ~always 3+


def test_autocorrelation_matches_the_definition() -> None:
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    c = x - x.mean()
    assert autocorrelate(x, 2) == pytest.approx((c[2:] * c[:-2]).sum() / len(x) / x.var())
    assert autocorrelate(np.array([5, 5, 5]), 1) == 0.0
    assert table([C4, H, C4, H, C4, H])["mean autocorrelation lag 1"] == pytest.approx(-5 / 6)
    # a constant piece has no coefficient (the original's NaN, skipped by its nanmean)
    both = table([C4, H, C4, H, C4, H], [C4] * 6)
    assert both["mean autocorrelation lag 1"] == pytest.approx(-5 / 6)


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
