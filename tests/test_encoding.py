"""The token convention: values, validation, and round trips through every format."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlmusic.data.encoding import NO_EVENT, NOTE_OFF, MelodyEncoding, Note
from rlmusic.data.io import save_abc, save_midi, save_musicxml, tokens_to_abc
from rlmusic.data.melody import TimedNote, to_grid
from rlmusic.data.readers import notes_from_music21, parse_abc, parse_midi, parse_score


def test_rl_tuner_default_layout(encoding: MelodyEncoding) -> None:
    assert (NOTE_OFF, NO_EVENT) == (0, 1)
    assert encoding.vocab_size == 38
    assert encoding.pitch_to_token(48) == 2 and encoding.pitch_to_token(83) == 37
    assert encoding.token_to_pitch(14) == 60
    assert encoding.steps_per_bar == 16
    np.testing.assert_array_equal(encoding.pitches(np.array([0, 1, 2, 37])), [-1, -1, 48, 83])


def test_range_and_resolution_are_parameters() -> None:
    enc = MelodyEncoding(min_pitch=36, max_pitch=95, steps_per_quarter=2)
    assert enc.vocab_size == 62
    assert enc.steps_per_bar == 8
    assert enc.cache_key() != MelodyEncoding().cache_key()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_pitch": 80, "max_pitch": 70},
        {"max_pitch": 130},
        {"min_pitch": 60, "max_pitch": 65},
        {"steps_per_quarter": 0},
    ],
)
def test_bad_encoding_parameters_are_named(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MelodyEncoding(**kwargs)


def test_rests_holds_and_restrikes(encoding: MelodyEncoding) -> None:
    notes = [Note(60, 0, 2), Note(60, 2, 3), Note(62, 5, 8)]
    tokens = encoding.encode_notes(notes)
    assert tokens.tolist() == [14, 1, 14, 0, 1, 16, 1, 1]
    assert encoding.decode(tokens) == notes


def test_decode_accepts_any_sequence(encoding: MelodyEncoding) -> None:
    # leading holds/rests are silence; NOTE_OFF while resting keeps resting
    assert encoding.decode(np.array([1, 0, 0, 14, 1, 0, 0, 1, 16])) == [
        Note(60, 3, 5),
        Note(62, 8, 9),
    ]


def test_overlapping_or_out_of_range_notes_are_refused(encoding: MelodyEncoding) -> None:
    with pytest.raises(ValueError, match="overlaps"):
        encoding.encode_notes([Note(60, 0, 4), Note(62, 2, 6)])
    with pytest.raises(ValueError, match="outside"):
        encoding.encode_notes([Note(90, 0, 4)])


@st.composite
def melodies(draw) -> list[Note]:
    """Random monophonic notes on the grid (gaps become rests), starting at step 0."""
    count = draw(st.integers(1, 24))
    notes, cursor = [], 0
    for i in range(count):
        gap = 0 if i == 0 else draw(st.integers(0, 5))
        length = draw(st.integers(1, 20))
        pitch = draw(st.integers(48, 83))
        notes.append(Note(pitch, cursor + gap, cursor + gap + length))
        cursor += gap + length
    return notes


@settings(max_examples=150, deadline=None)
@given(melodies())
def test_encode_decode_round_trip(notes: list[Note]) -> None:
    enc = MelodyEncoding()
    tokens = enc.encode_notes(notes)
    assert enc.decode(tokens) == notes
    np.testing.assert_array_equal(enc.encode_notes(enc.decode(tokens)), tokens)


@settings(max_examples=25, deadline=None)
@given(melodies())
def test_pretty_midi_round_trip(tmp_path_factory, notes: list[Note]) -> None:
    enc = MelodyEncoding()
    tokens = enc.encode_notes(notes)
    path = save_midi(tokens, tmp_path_factory.mktemp("midi") / "m.mid", enc)
    np.testing.assert_array_equal(enc.encode_notes(to_grid(parse_midi(path), 4)), tokens)


@settings(max_examples=15, deadline=None)
@given(melodies())
def test_music21_stream_round_trip(notes: list[Note]) -> None:
    enc = MelodyEncoding()
    tokens = enc.encode_notes(notes)
    parsed = notes_from_music21(enc.to_music21(tokens))
    np.testing.assert_array_equal(enc.encode_notes(to_grid(parsed, 4)), tokens)


@settings(max_examples=15, deadline=None)
@given(melodies())
def test_abc_round_trip_through_music21s_reader(notes: list[Note]) -> None:
    enc = MelodyEncoding()
    tokens = enc.encode_notes(notes)
    parsed = parse_abc(tokens_to_abc(tokens, enc))
    np.testing.assert_array_equal(enc.encode_notes(to_grid(parsed, 4)), tokens)


def test_files_round_trip(tmp_path, encoding: MelodyEncoding) -> None:
    # chromatic notes in one bar: the ABC writer must cancel carried accidentals
    notes = [Note(66, 0, 2), Note(65, 2, 4), Note(66, 4, 5), Note(48, 8, 24), Note(83, 26, 40)]
    tokens = encoding.encode_notes(notes)
    for path, reader in [
        (save_midi(tokens, tmp_path / "a.mid", encoding), parse_midi),
        (save_musicxml(tokens, tmp_path / "a.musicxml", encoding), parse_score),
    ]:
        assert encoding.decode(encoding.encode_notes(to_grid(reader(path), 4))) == notes, path
    abc_path = save_abc(tokens, tmp_path / "a.abc", encoding)
    assert (
        encoding.decode(encoding.encode_notes(to_grid(parse_abc(abc_path.read_text()), 4))) == notes
    )


def test_midi_tempo_is_80_qpm(tmp_path, encoding: MelodyEncoding) -> None:
    midi = encoding.to_pretty_midi(encoding.encode_notes([Note(60, 0, 4)]))
    assert midi.instruments[0].notes[0].end == pytest.approx(0.75)  # one quarter at 80 qpm
    assert midi.get_tempo_changes()[1][0] == pytest.approx(80.0)


def test_timed_notes_on_a_grid_of_eighths() -> None:
    assert to_grid([TimedNote(60, 0.0, 0.5), TimedNote(62, 0.5, 2.0)], 2) == [
        Note(60, 0, 1),
        Note(62, 1, 4),
    ]
