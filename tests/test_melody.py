"""Top line, grid, key detection, transposition to C and range folding."""

from __future__ import annotations

import numpy as np
import pytest

from rlmusic.data.encoding import MelodyEncoding, Note
from rlmusic.data.melody import (
    Key,
    TimedNote,
    encode_melody,
    estimate_key,
    fit_range,
    semitones_to_c,
    shorten_long_rests,
    to_grid,
    top_line,
)

MAJOR_SCALE = [0, 2, 4, 5, 7, 9, 11, 12]
HARMONIC_MINOR = [0, 2, 3, 5, 7, 8, 11, 12, 7, 0]


def scale_notes(tonic: int, steps: list[int], length: int = 4) -> list[Note]:
    notes = [Note(tonic + s, i * length, (i + 1) * length) for i, s in enumerate(steps)]
    # dwell on the tonic and fifth, as tunes do
    end = notes[-1].end
    return notes + [Note(tonic + 7, end, end + 8), Note(tonic, end + 8, end + 24)]


def test_top_line_keeps_the_highest_voice() -> None:
    chords = [
        TimedNote(48, 0, 4),
        TimedNote(64, 0, 1),
        TimedNote(67, 1, 2),
        TimedNote(52, 1, 3),
        TimedNote(65, 3, 4),
    ]
    # 48 and 52 start under higher notes (or share their onset) and are dropped
    assert top_line(chords) == [TimedNote(64, 0, 1), TimedNote(67, 1, 2), TimedNote(65, 3, 4)]


def test_top_line_cuts_a_sounding_note_at_the_next_onset() -> None:
    assert top_line([TimedNote(60, 0, 4), TimedNote(72, 2, 3)]) == [
        TimedNote(60, 0, 2),
        TimedNote(72, 2, 3),
    ]


def test_grid_rounds_and_never_loses_a_short_note() -> None:
    # a 32nd note gets one 16th step; a triplet rounds to the nearest step
    notes = [TimedNote(60, 0, 0.125), TimedNote(62, 0.125, 1 / 3), TimedNote(64, 1 / 3, 1.0)]
    # 60 -> step 0..1 (min one step); 62 rounds to [0, 1) too and is higher, so it wins step 0
    assert to_grid(notes, 4) == [Note(62, 0, 1), Note(64, 1, 4)]
    assert to_grid([TimedNote(60, 1.0, 2.0)], 4) == [Note(60, 0, 4)]  # leading silence dropped


@pytest.mark.parametrize("tonic", range(12))
def test_major_keys_are_found_and_moved_to_c(tonic: int) -> None:
    notes = scale_notes(60 + tonic, MAJOR_SCALE)
    key = estimate_key(notes)
    assert key == Key(tonic, "major")
    shift = semitones_to_c(key)
    assert -6 <= shift <= 5 and (tonic + shift) % 12 == 0


@pytest.mark.parametrize("tonic", [9, 2, 4, 0])
def test_minor_keys_go_to_a_minor(tonic: int) -> None:
    key = estimate_key(scale_notes(60 + tonic, HARMONIC_MINOR))
    assert key == Key(tonic % 12, "minor")
    assert (tonic + semitones_to_c(key)) % 12 == 9


def test_fit_range_prefers_an_octave_shift_then_folds_outliers(encoding: MelodyEncoding) -> None:
    notes = [Note(96, 0, 1), Note(98, 1, 2), Note(100, 2, 3), Note(60, 3, 4)]
    fitted, shift, folded = fit_range(notes, encoding)
    assert shift == -24
    assert [n.pitch for n in fitted] == [72, 74, 76, 48]  # 60-24=36 folds up to the range's C
    assert folded == 1


def test_encode_melody_transposes_d_major_to_c(encoding: MelodyEncoding) -> None:
    tune = [TimedNote(n.pitch + 2, n.start / 4, n.end / 4) for n in scale_notes(60, MAJOR_SCALE)]
    melody = encode_melody(tune, encoding)
    assert str(melody.key) == "D major"
    assert melody.transposition == -2
    pitches = encoding.pitches(melody.tokens)
    assert pitches[0] == 60
    assert set(pitches[pitches >= 0] % 12) <= {0, 2, 4, 5, 7, 9, 11}
    assert melody.folded_notes == 0 and melody.notes == 10
    assert melody.tokens.dtype == np.uint8


def test_long_rests_shorten_to_the_limit_and_later_notes_move_up() -> None:
    line = [Note(60, 0, 4), Note(62, 4 + 8, 16), Note(64, 16 + 20, 40), Note(65, 40 + 30, 72)]
    shortened, lengths = shorten_long_rests(line, max_steps=8)
    assert lengths == [20, 30]  # the 8-step rest is at the limit: kept as it is
    assert shortened == [Note(60, 0, 4), Note(62, 12, 16), Note(64, 24, 28), Note(65, 36, 38)]
    assert shorten_long_rests(shortened, max_steps=8) == (shortened, [])
