"""Each RL Tuner rule's values, pinned on hand-built melodies."""

from __future__ import annotations

import numpy as np
import pytest

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import MelodyView
from rlmusic.rewards.theory import (
    AutocorrelationRule,
    KeyRule,
    LeapResolutionRule,
    MotifRule,
    PreferredIntervalsRule,
    RepeatedMotifRule,
    RepetitionRule,
    TonicEndRule,
    TonicRule,
    UniqueExtremesRule,
)

ENC = MelodyEncoding()
H, R = 1, 0


def tok(*pitches: int) -> int:
    return tuple(ENC.pitch_to_token(p) for p in pitches)


C4, D4, E4, F4, FS4, G4, A4, B4, C5 = tok(60, 62, 64, 65, 66, 67, 69, 71, 72)


def row(rule, *tokens: int) -> list[float]:
    return rule(np.array([tokens])).tolist()[0]


def test_melody_view_reads_rests_and_holds_one_way() -> None:
    v = MelodyView.of(np.array([[C4, H, R, H, C4, D4]]), ENC)
    assert v.prev_pitch.tolist() == [[-1, 60, 60, 60, 60, 60]]
    assert v.rest_since_prev.tolist() == [[False, False, False, True, True, False]]


def test_key_is_a_parameter() -> None:
    melody = (C4, FS4, H, R, B4)
    assert row(KeyRule(), *melody) == [0, -1, 0, 0, 0]
    assert row(KeyRule(tonic=7), *melody) == [0, 0, 0, 0, 0]  # G major has F#
    assert row(KeyRule(tonic=9, mode="minor"), *melody) == [0, -1, 0, 0, 0]  # A minor (+G#)
    assert row(KeyRule(penalty=-2.5), *melody)[1] == -2.5


def test_tonic_start_and_end() -> None:
    assert row(TonicRule(), C4, D4, E4, C4) == [3, 0, 0, 0]
    assert row(TonicRule(), C5, D4, E4, D4) == [0, 0, 0, 0]  # middle C's octave by default
    assert row(TonicRule(octave=None), C5, D4, E4, D4) == [3, 0, 0, 0]
    assert row(TonicRule(tonic=7, octave=None), *tok(55), D4) == [3, 0]  # G major
    # ending: the last note struck is the tonic and lies in the final bar, then holds or rests
    ends = [D4] + [H] * 20 + [C5] + [H, R] * 5
    assert row(TonicEndRule(), *ends) == [0.0] * 31 + [3.0]
    early = [C4] + [H] * 15 + [D4] + [H] * 15  # last note is D
    assert row(TonicEndRule(), *early)[-1] == 0
    old_tonic = [C4, H] + [H] * 18  # the tonic struck before the final bar (16 steps) only
    assert row(TonicEndRule(), *old_tonic)[-1] == 0
    assert TonicEndRule.sequence_level and not TonicRule.sequence_level


def test_repetition_counts_strikes_not_held_notes() -> None:
    assert sum(row(RepetitionRule(), C4, *[H] * 31)) == 0  # one long note
    five = (C4, H, C4, C4, H, H, C4, C4)
    assert row(RepetitionRule(), *five) == [0, 0, 0, 0, 0, 0, 0, -100]
    assert sum(row(RepetitionRule(), C4, R, C4, R, C4, R, C4, R, C4)) == 0  # rests break runs
    assert row(RepetitionRule(max_strikes=2, penalty=-1), C4, C4, C4, D4, D4) == [0, 0, -1, 0, 0]


def test_autocorrelation_at_the_end_only() -> None:
    out = row(AutocorrelationRule(), C4, H, C4, H, C4, H)
    assert out[:-1] == [0] * 5 and out[-1] == pytest.approx(-3 * (5 / 6 + 4 / 6 + 3 / 6))
    assert row(AutocorrelationRule(threshold=0.7), C4, H, C4, H, C4, H)[-1] == pytest.approx(-2.5)
    assert AutocorrelationRule().sequence_level


def test_autocorrelation_every_step_is_the_prefix_statistic() -> None:
    rule = AutocorrelationRule(every_step=True)
    assert not rule.sequence_level
    # prefix [C, H]: r_1 = -1/2; [C, H, C]: r_1 = -2/3, r_2 = 1/6; [C, H, C, H]: -3/4, 1/2, -1/4
    assert row(rule, C4, H, C4, H) == pytest.approx([0, -1.5, -2.5, -4.5])
    assert row(rule, C4, C4, C4) == [0, 0, 0]  # constant: no variance, no penalty


def test_motif_window_follows_the_encoding() -> None:
    melody = (C4, H, D4, H, E4, H, F4, G4)
    assert row(MotifRule(), *melody) == [0] * 7 + [3 + 0.3 * 2]  # 5 distinct pitches in 8 steps
    coarse = MelodyEncoding(steps_per_quarter=2)  # bar = 8 steps, window = 4
    assert row(MotifRule(encoding=coarse), H, C4, D4, E4) == [0, 0, 0, 3.0]
    # every step of a qualifying window is paid, holds included, as the original paid
    assert row(MotifRule(encoding=coarse), C4, D4, E4, H) == [0, 0, 0, 3.0]
    assert row(MotifRule(encoding=coarse, onsets_only=True), C4, D4, E4, H) == [0, 0, 0, 0]


def test_motif_does_not_pay_busyness() -> None:
    # C E G struck 3 times per 8 steps (12 onsets) or on every step (32): every window ending
    # at t >= 7 holds exactly C, E and G, so both earn 25 x 3 (the original's payment)
    sparse = [C4, H, H, E4, H, H, G4, H] * 4
    busy = ([C4, E4, G4] * 11)[:32]
    assert sum(row(MotifRule(), *sparse)) == sum(row(MotifRule(), *busy)) == pytest.approx(75)
    # paid per onset, the busy piece would earn 25 x 3 and the sparse one only 9 x 3
    assert sum(row(MotifRule(onsets_only=True), *sparse)) == pytest.approx(27)
    assert sum(row(MotifRule(onsets_only=True), *busy)) == pytest.approx(75)


def test_repeated_motif_needs_an_earlier_copy() -> None:
    motif = [C4, H, D4, H, E4, H, F4, G4]
    out = row(RepeatedMotifRule(), *motif, *motif)
    assert out[7] == 0 and out[15] == 4 + 1 * 2 and sum(out) == 6
    varied = motif[:-1] + [A4]
    assert sum(row(RepeatedMotifRule(), *motif, *varied)) == 0
    # three copies: every step from 15 on ends a window equal to the one 8 steps earlier,
    # holds included (9 steps x (4 + 2)); per onset only 15, 16, 18, 20, 22, 23 (6 x 6)
    assert row(RepeatedMotifRule(), *motif * 3) == [0] * 15 + [6.0] * 9
    assert sum(row(RepeatedMotifRule(onsets_only=True), *motif * 3)) == 36


def test_preferred_intervals_table() -> None:
    rule = PreferredIntervalsRule()
    pairs = {
        (60, 64): 0.15 * 5,  # in-key third
        (61, 64): 0.09 * 5,  # a third with a note out of key
        (60, 67): 0.1 * 5,  # in-key fifth
        (66, 73): 0.02 * 5,  # other fifth
        (60, 62): 0.08 * 5,
        (60, 65): 0.07 * 5,
        (60, 69): 0.05 * 5,
        (60, 71): -0.3 * 5,
        (60, 77): -1.0 * 5,
        (60, 72): 0.0,
        (60, 66): 0.0,
        (60, 60): 0.0,
    }
    for (a, b), value in pairs.items():
        assert row(rule, *tok(a), H, *tok(b))[-1] == pytest.approx(value), (a, b)
    assert row(rule, C4, R, H, E4)[-1] == pytest.approx(0.75)  # across a rest


def test_a_repeated_note_pays_the_unison_value() -> None:
    # the original pays a unison nothing; reward=default pays it as an in-key third (0.15 x 5)
    assert row(PreferredIntervalsRule(), C4, H, C4)[-1] == 0.0
    assert row(PreferredIntervalsRule(unison=0.15), C4, H, C4)[-1] == pytest.approx(0.75)
    assert row(PreferredIntervalsRule(unison=0.15), C4, C4, H, D4) == pytest.approx(
        [0.0, 0.75, 0.3 * 5, 0.4]
    )  # the unison's value applies to the strike only; holds and steps are unchanged


def test_preferred_intervals_pay_holds_and_rests_after_a_note() -> None:
    rule = PreferredIntervalsRule()
    # holding C (the tonic) 0.3, resting after it 0.15 (a NO_EVENT in a rest is resting)
    assert row(rule, H, R, C4, H, H, R, H) == pytest.approx([0, 0, 0, 1.5, 1.5, 0.75, 0.75])
    assert row(rule, G4, H, R)[1:] == pytest.approx([1.5, 0.75])  # G: the fifth
    assert row(rule, D4, H, R, H)[1:] == pytest.approx([0.375, 0.25, 0.25])
    assert row(PreferredIntervalsRule(tonic=2), D4, H, A4, H)[1::2] == pytest.approx([1.5, 1.5])
    assert sum(row(PreferredIntervalsRule(hold=0, rest=0), D4, H, R)) == 0


def test_silent_steps_are_paid_for_a_bounded_time_after_each_onset() -> None:
    bounded = PreferredIntervalsRule(silent_steps_paid=2)
    # C held for 4 steps then rested: only the first 2 silent steps pay; E's onset (a third,
    # 0.75) still pays and restarts the count
    assert row(bounded, C4, H, H, H, R, E4, H, H, H) == pytest.approx(
        [0, 1.5, 1.5, 0, 0, 0.75, 0.375, 0.375, 0]
    )
    # the original (None) pays every silent step, forever
    assert row(PreferredIntervalsRule(), C4, *[H] * 20)[1:] == pytest.approx([1.5] * 20)
    assert sum(row(PreferredIntervalsRule(silent_steps_paid=0), C4, H, R, H)) == 0
    with pytest.raises(ValueError, match="silent_steps_paid"):
        PreferredIntervalsRule(silent_steps_paid=-1)


def test_the_default_preset_bounds_held_notes() -> None:
    from hydra import compose, initialize_config_module

    from rlmusic.rewards.build import build_reward

    with initialize_config_module("conf", version_base=None):
        cfg = compose("finetune")
    reward = build_reward(cfg.reward, ENC, start_checkpoint="pretrained:note_lstm")
    intervals = next(t.term for t in reward.terms if t.name == "preferred_intervals")
    assert intervals.silent_steps_paid == 7
    held = np.array([[C4] + [H] * 31])
    assert (intervals(held)[0, 8:] == 0).all() and (intervals(held)[0, 1:8] > 0).all()


def test_leap_rule_pays_as_the_detector_decides() -> None:
    rule = LeapResolutionRule()
    assert row(rule, C4, G4, F4, E4, D4, C4) == [0, 0, 0, 0, 0, 5]  # a gradual return
    assert row(rule, C4, G4, H, R, E4, D4, C4) == [0, 0, 0, 0, 0, 0, 5]  # rests in between
    assert row(rule, C4, G4, *tok(74)) == [0, 0, -5]  # two leaps up: doubled
    assert row(rule, C4, G4, A4) == [0, 0, 0]  # unresolved: no reward, no penalty
    assert row(rule, C4, G4, G4) == [0, 0, 0]  # a repeat is not motion back


def test_an_immediate_leap_back_earns_nothing() -> None:
    rule = LeapResolutionRule()
    assert row(rule, C4, G4, C4) == [0, 0, 0]
    assert row(rule, C4, G4, F4) == [0, 0, 0]  # moving back without reaching C4 either
    # alternating two notes a fifth (or a sixth) apart, struck or held: no leap reward at all
    assert row(rule, *[C4, G4] * 16) == [0] * 32
    assert row(rule, *[C4, H, A4, H] * 8) == [0] * 32


def test_a_leap_back_after_more_than_six_steps_earns_the_reward() -> None:
    rule = LeapResolutionRule()
    assert row(rule, C4, G4, *[H] * 7, C4) == [0] * 9 + [5]  # 7 steps between the leaps
    assert row(rule, C4, G4, *[H] * 6, C4) == [0] * 9  # 6 steps: closed, unpaid
    assert row(LeapResolutionRule(min_gap=5), C4, G4, *[H] * 6, C4) == [0] * 8 + [5]


def test_leap_rule_incremental_path_matches_the_whole_sequence() -> None:
    rule = LeapResolutionRule()
    tokens = np.random.default_rng(3).integers(0, 38, (64, 32))
    tokens[:8] = [C4, G4, F4, E4, D4, C4, H, H] * 4  # some rows that resolve gradually
    whole = rule(tokens)
    state = None
    for t in range(32):
        values, state = rule.score_last(tokens[:, : t + 1], state)
        np.testing.assert_array_equal(values, whole[:, t])
    again, _ = rule.score_last(tokens[:, :6], state)  # an old state for other tokens: restart
    np.testing.assert_array_equal(again, whole[:, 5])
    _, kept = rule.score_last(tokens[:, :5], None)
    rule.score_last(tokens[:, :6], kept)
    np.testing.assert_array_equal(rule.score_last(tokens[:, :6], kept)[0], whole[:, 5])  # reusable


def test_unique_extremes() -> None:
    assert row(UniqueExtremesRule(), C4, C5, E4, D4) == [0, 0, 0, 6]
    assert row(UniqueExtremesRule(), C4, C5, E4, C5) == [0, 0, 0, 3]  # the top repeats
    assert row(UniqueExtremesRule(), H, R, H) == [0, 0, 0]
