"""Voice-leading counting (:mod:`rlmusic.rewards.harmony`) on hand-worked progressions, the
reward terms that pay from it (:mod:`rlmusic.rewards.harmony_terms`) and the voice-leading
table's counts (:mod:`rlmusic.rewards.harmony_statistics`).

Pitches are MIDI numbers, one list per voice (soprano, alto, tenor, bass), -1 silent."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import NOTE_OFF, MelodyEncoding, Note
from rlmusic.evaluation.table_rows import HarmonyPieceCounts, table_for
from rlmusic.rewards import harmony
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.build import build_reward
from rlmusic.rewards.harmony_statistics import HarmonyStatistic, harmony_stats
from rlmusic.rewards.harmony_terms import (
    HARMONY_RULES,
    FinalCadenceRule,
    ParallelFifthsRule,
    ParallelOctavesRule,
    PerVoice,
    SpacingRule,
    VoiceCrossingRule,
)
from rlmusic.rewards.registry import build_term, default_context
from rlmusic.rewards.theory import KeyRule

ENC = ChoraleEncoding()
S = HarmonyStatistic


def frames_of(*voices: list[int]) -> np.ndarray:
    """Four voices' pitches per frame -> (1, 4, n)."""
    return np.array([voices])


def tokens_of(*voices: list[int]) -> np.ndarray:
    """Four voices' pitches per frame, each struck at every frame (-1: NOTE_OFF) -> (1, 4 n),
    every token in its voice's block."""
    columns = [
        [v * ENC.voice_size + NOTE_OFF if p < 0 else ENC.pitch_to_token(p, v) for p in line]
        for v, line in enumerate(voices)
    ]
    return np.array(columns).T.reshape(1, -1)


def random_tokens(rng: np.random.Generator, pieces: int, steps: int) -> np.ndarray:
    """(pieces, 4 steps) random tokens, each drawn from its voice's block."""
    local = rng.integers(0, ENC.voice_size, size=(pieces, 4 * steps))
    return local + ENC.voice_size * (np.arange(4 * steps) % 4)


@pytest.mark.parametrize(
    "name",
    [
        "rlmusic.rewards.harmony",
        "rlmusic.rewards.harmony_terms",
        "rlmusic.rewards.harmony_statistics",
        "rlmusic.rewards.registry",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


# ---- parallels ------------------------------------------------------------------------------
SILENT = [-1, -1]


def count(pitch: np.ndarray) -> tuple[int, int, int]:
    fifths, octaves, moving = harmony.parallels(pitch)
    return int(fifths.sum()), int(octaves.sum()), int(moving.sum())


def test_a_parallel_fifth_counts_once() -> None:
    # S G4 -> A4 over T C4 -> D4: a fifth to a fifth, both up; A and B silent
    assert count(frames_of([67, 69], SILENT, [60, 62], SILENT)) == (1, 0, 1)


def test_a_compound_parallel_fifth_counts() -> None:
    # S G4 -> A4 over B C3 -> D3: a twelfth to a twelfth (7 mod 12)
    assert count(frames_of([67, 69], SILENT, SILENT, [48, 50])) == (1, 0, 1)


def test_a_hidden_fifth_does_not_count() -> None:
    # S F4 -> G4 over B A3 -> C4: a sixth into a fifth in similar motion (a hidden fifth)
    assert count(frames_of([65, 67], SILENT, SILENT, [57, 60])) == (0, 0, 1)


def test_contrary_fifths_do_not_count_but_music21_counts_them() -> None:
    # S G4 -> D5 up, B C4 -> G3 down: a fifth to a twelfth in contrary motion
    assert count(frames_of([67, 74], SILENT, SILENT, [60, 55])) == (0, 0, 1)
    from music21 import note, voiceLeading

    quartet = voiceLeading.VoiceLeadingQuartet(
        note.Note(midi=67), note.Note(midi=74), note.Note(midi=60), note.Note(midi=55)
    )
    assert quartet.parallelFifth() and quartet.contraryMotion()


def test_parallel_octaves_and_unisons_count() -> None:
    # A E4 -> D4 over T E3 -> D3: octaves down; in the second piece, A and T in unison up
    pitch = np.concatenate(
        [
            frames_of(SILENT, [64, 62], [52, 50], SILENT),
            frames_of(SILENT, [60, 62], [60, 62], SILENT),
        ]
    )
    assert count(pitch) == (0, 2, 2)


def test_oblique_and_restruck_notes_are_not_parallels() -> None:
    # the bass strikes C3 again (no motion); S moves G4 -> A4 against it: oblique
    assert count(frames_of([67, 69], SILENT, SILENT, [48, 48])) == (0, 0, 1)
    # nobody changes pitch: not a moving transition at all
    assert count(frames_of([67, 67], SILENT, SILENT, [48, 48])) == (0, 0, 0)


def test_a_voice_that_rests_breaks_the_pair() -> None:
    assert count(frames_of([67, -1, 69], SILENT + [-1], SILENT + [-1], [60, 60, 62])) == (0, 0, 0)


def test_the_tiny_progression_counts_every_case_at_once() -> None:
    """Four frames: a parallel fifth (S-T), a hidden fifth (S-B), contrary fifths (S-B) and
    a parallel unison (A-T), every other pair checked by hand in the comments."""
    pitch = frames_of(
        [67, 69, 67, 60],  # G4 A4 G4 C4
        [64, 65, 64, 62],  # E4 F4 E4 D4
        [60, 62, 64, 62],  # C4 D4 E4 D4
        [48, 48, 36, 41],  # C3 C3 C2 F2
    )
    fifths, octaves, moving = harmony.parallels(pitch)
    # t=1: S-T G4/C4 -> A4/D4, both up: the one parallel fifth (S-B 19 -> 21: the bass holds)
    assert fifths[0, :, 1].tolist() == [False, True, False, False, False, False]
    # t=2: S-B A4/C3 (21) -> G4/C2 (31 = 7 mod 12), both down: a hidden fifth, not counted;
    # S-T 7 -> 3 in contrary motion
    assert not fifths[0, :, 2].any()
    # t=3: S-B G4/C2 -> C4/F2, a fifth to a fifth in contrary motion: not counted
    assert not fifths[0, :, 3].any()
    # t=3: A-T E4/E4 -> D4/D4: a parallel unison (the octaves' class)
    assert octaves[0, :, 3].tolist() == [False, False, False, True, False, False]
    assert int(fifths.sum()) == 1 and int(octaves.sum()) == 1
    # moving pair transitions: every pair has a voice that moves at t = 1, 2, 3 (6 each)
    assert int(moving.sum()) == 18


# ---- crossing, spacing, range, voicing ---------------------------------------------------------
def test_voice_crossing_is_a_lower_voice_strictly_above() -> None:
    pitch = frames_of([72, 64, 72], [67, 67, 67], [64, 60, 67], [48, 48, 48])
    # frame 1: the alto G4 over the soprano E4; frame 2: tenor = alto (a unison is no crossing)
    assert harmony.crossing(pitch).tolist() == [[False, True, False]]


def test_spacing_bounds_the_upper_voices_only() -> None:
    pitch = frames_of([76, 77, 72], [64, 64, 64], [52, 52, 60], [36, 36, 36])
    # frame 0: S-A 12, A-T 12, T-B 16 (wide bass is fine); frame 1: S-A 13
    assert harmony.spacing(pitch).tolist() == [[False, True, False]]
    assert harmony.spacing(pitch, max_gap=11)[0, 0]


def test_out_of_range_counts_onsets_not_holds() -> None:
    pitch = frames_of([90, 90], [60, 60], [55, 55], [40, 40])
    onset = np.zeros_like(pitch, bool)
    onset[..., 0] = True  # the soprano's 90 is struck once, then held
    assert harmony.out_of_range(pitch, onset, [(60, 81), (53, 74), (48, 69), (36, 62)]).sum() == 1
    with pytest.raises(ValueError, match="four"):
        harmony.out_of_range(pitch, onset, [(60, 81)])


def test_full_voicing_and_onsets_per_voice_per_bar() -> None:
    voices = [[Note(72, 0, 16)], [Note(67, 0, 8)], [Note(64, 0, 4), Note(62, 4, 16)], []]
    stats = harmony_stats([ENC.encode_voices(voices, steps=16)], ENC)
    table = stats.table()
    assert table[S.FULL_VOICING] == 0.0  # the bass never sounds
    assert table[S.ONSETS_PER_VOICE_PER_BAR] == 4 / 4  # four onsets, four voices, one bar


def test_pitch_changes_count_moves_not_repeats_holds_or_entries() -> None:
    voices = [
        [Note(72, 0, 4), Note(72, 4, 8), Note(74, 8, 16)],  # a repeat, then a move: 1
        [Note(67, 0, 4), Note(65, 4, 8), Note(64, 8, 12), Note(65, 12, 16)],  # three moves
        [Note(64, 0, 16)],  # held: 0
        [Note(48, 0, 4), Note(43, 8, 16)],  # an entry after a rest: 0
    ]
    stats = harmony_stats([ENC.encode_voices(voices, steps=16)], ENC)
    assert stats.moves == 4
    assert stats.table()[S.PITCH_CHANGES_PER_VOICE_PER_BAR] == 4 / 4  # four voices, one bar
    rule = HARMONY_RULES["voice_motion"][0](encoding=ENC, reward=0.5)
    rewards = rule(ENC.encode_voices(voices, steps=16)[None])
    assert rewards.sum() == 0.5 * 4 and rewards[0, 0::4].sum() == 0.5  # paid on each voice


# ---- strong-beat dissonance ---------------------------------------------------------------------
def test_a_fourth_is_dissonant_against_the_bass_only() -> None:
    onset = np.ones((1, 4, 1), bool)
    # a 6/4 chord, C5 G4 E4 over G3: S-B a fourth (17 = 5 mod 12) against the bass; S-A C5/G4
    # is a fourth too, between upper voices: consonant
    six_four = harmony.unprepared_dissonance(frames_of([72], [67], [64], [55]), onset, ENC)
    assert six_four[0, :, 0].tolist() == [False, False, True, False, False, False]
    # F major, C5 F4 C4 over F2: A-T F4/C4 is an upper fourth, every pair with the bass a fifth,
    # octave or unison: nothing dissonant
    assert not harmony.unprepared_dissonance(frames_of([72], [65], [60], [41]), onset, ENC).any()


def test_weak_beats_and_suspensions_are_not_unprepared() -> None:
    # a 2nd (D5 over C5) on step 2 (a weak 8th) counts nothing
    pitch = frames_of([74] * 3, [72] * 3, [64] * 3, [48] * 3)
    onset = np.zeros_like(pitch, bool)
    onset[..., 2] = True
    assert not harmony.unprepared_dissonance(pitch, onset, ENC)[..., 2].any()


# ---- final cadence ------------------------------------------------------------------------------
def test_final_cadence_in_the_relative_minor_with_a_picardy_third() -> None:
    E2, A2, CS5 = 40, 45, 73
    pitch = frames_of([71, CS5], [64, 64], [56, 57], [E2, A2])
    assert harmony.final_cadence(pitch, (0, 9)).tolist() == [True]
    assert harmony.final_cadence(pitch, (0,)).tolist() == [False]
    assert harmony.cadence_tonics(0, "major") == (0, 9)
    assert harmony.cadence_tonics(9, "minor") == (9, 0)


# ---- terms ------------------------------------------------------------------------------------
def test_a_pair_offence_is_paid_on_the_lower_voices_token() -> None:
    tokens = tokens_of([67, 69], [-1, -1], [60, 62], [-1, -1])  # S-T parallel fifth at frame 1
    rewards = ParallelFifthsRule(ENC, penalty=-2.0)(tokens)
    assert rewards.tolist() == [[0, 0, 0, 0, 0, 0, -2.0, 0]]  # token 4 * 1 + 2 (the tenor)
    octaves = ParallelOctavesRule(ENC)(tokens_of([-1, -1], [64, 62], [52, 50], [-1, -1]))
    assert np.flatnonzero(octaves[0]).tolist() == [6]


def test_crossing_and_spacing_are_paid_on_the_lower_voice() -> None:
    crossed = VoiceCrossingRule(ENC)(tokens_of([64], [67], [60], [48]))
    assert crossed.tolist() == [[0, -1.0, 0, 0]]
    spread = SpacingRule(ENC)(tokens_of([77], [64], [50], [36]))  # S-A 13, A-T 14
    assert spread.tolist() == [[0, -1.0, -1.0, 0]]


def test_a_prefix_inside_a_frame_earns_what_it_earns_in_the_piece() -> None:
    tokens = tokens_of([67, 69, 71], [64, 65, 59], [60, 62, 64], [48, 50, 52])
    for term in (ParallelFifthsRule(ENC), ParallelOctavesRule(ENC), VoiceCrossingRule(ENC)):
        whole = term(tokens)
        for cut in range(1, tokens.shape[1]):
            np.testing.assert_array_equal(term(tokens[:, :cut]), whole[:, :cut])


def test_term_penalties_sum_to_the_tables_counts() -> None:
    rng = np.random.default_rng(0)
    tokens = random_tokens(rng, 20, 32)
    stats = harmony_stats(tokens, ENC)
    assert -ParallelFifthsRule(ENC)(tokens).sum() == stats.fifths
    assert -ParallelOctavesRule(ENC)(tokens).sum() == stats.octaves
    assert stats.fifths + stats.octaves > 0  # random voices do write parallels


def test_final_cadence_pays_on_the_last_token_only() -> None:
    tokens = tokens_of([74, 72], [67, 67], [59, 64], [43, 48])
    assert FinalCadenceRule(ENC)(tokens).tolist() == [[0] * 7 + [3.0]]
    assert FinalCadenceRule.sequence_level


def test_per_voice_applies_a_melody_rule_to_each_column() -> None:
    tokens = tokens_of([72, 73], [67, 66], [64, 64], [48, 49])  # C#5, F#4, C#3: out of C major
    rewards = PerVoice("key", encoding=ENC)(tokens)
    assert np.flatnonzero(rewards[0]).tolist() == [4, 5, 7]
    assert rewards[0, [4, 5, 7]].tolist() == [-1.0, -1.0, -1.0]
    with pytest.raises(RewardError, match="unknown melody rule"):
        PerVoice("no_such_rule", encoding=ENC)


def test_terms_refuse_the_other_kind_of_music_in_one_line() -> None:
    with pytest.raises(RewardError, match="judges chorale pieces") as caught:
        build_term("parallel_fifths", default_context(MelodyEncoding()))
    assert "\n" not in str(caught.value)
    with pytest.raises(RewardError, match="needs encoding=chorale"):
        ParallelFifthsRule(MelodyEncoding())  # type: ignore[arg-type]
    with pytest.raises(RewardError, match="judges melody pieces") as caught:
        build_term("key", default_context(ENC))
    assert "\n" not in str(caught.value)
    with pytest.raises(RewardError, match="melody rules read one line"):
        KeyRule(encoding=ENC)(tokens_of([72], [67], [64], [48]))  # type: ignore[arg-type]


def test_the_chorale_reward_preset_builds() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load("conf/reward/chorale.yaml")
    cfg.prior = None
    cfg.extra = {}
    reward = build_reward(cfg, ENC)
    assert reward.names == list(cfg.rules)
    total, _ = reward.score(tokens_of([67, 69], [64, 65], [60, 62], [48, 50]))
    assert total.shape == (1, 8) and total.sum() < 0  # the parallels cost


# ---- the table and its resampling ---------------------------------------------------------------
def test_resampled_counts_at_unit_weights_are_the_sets_table() -> None:
    rng = np.random.default_rng(1)
    tokens = random_tokens(rng, 12, 16)
    counts = HarmonyPieceCounts.of(tokens, ENC)
    rows = counts.rows(np.ones((1, len(tokens))))
    table = harmony_stats(tokens, ENC).table()
    for statistic, value in table.items():
        np.testing.assert_allclose(rows[statistic][0], value)
    doubled = counts.rows(np.full((1, len(tokens)), 2))  # every piece twice: same shares
    np.testing.assert_allclose(doubled[S.PARALLELS][0], table[S.PARALLELS])


def test_the_encodings_kind_picks_the_table() -> None:
    assert table_for(ENC).statistic is HarmonyStatistic
    assert table_for(MelodyEncoding()).section == "RL Tuner statistics"
    with pytest.raises(ValueError, match="four-part"):
        harmony_stats(np.zeros((1, 8), int), MelodyEncoding())  # type: ignore[arg-type]


def test_statistic_values_are_pinned() -> None:
    assert {s.name: s.value for s in HarmonyStatistic} == {
        "PARALLEL_FIFTHS": "parallel_fifths",
        "PARALLEL_OCTAVES": "parallel_octaves",
        "PARALLELS": "parallel_fifths_and_octaves",
        "VOICE_CROSSING": "voice_crossing",
        "SPACING": "upper_voice_spacing",
        "OUT_OF_RANGE": "notes_out_of_range",
        "UNPREPARED_DISSONANCE": "unprepared_strong_dissonance",
        "FINAL_CADENCE": "final_cadence",
        "FULL_VOICING": "full_voicing",
        "ONSETS_PER_VOICE_PER_BAR": "onsets_per_voice_per_bar",
        "PITCH_CHANGES_PER_VOICE_PER_BAR": "pitch_changes_per_voice_per_bar",
    }
