"""ABC, MusicXML and MIDI readers, including music21's known ABC pitfalls."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

from rlmusic.data.melody import TimedNote
from rlmusic.data.readers import (
    RejectedInput,
    check_abc,
    parse_abc,
    parse_file,
    parse_midi,
    split_abc_tunes,
)
from tests.conftest import C_MAJOR_TUNE, write_midi


def abc(body: str, key: str = "C", extra: str = "") -> str:
    return f"X:1\nT:test\nM:4/4\nL:1/8\n{extra}K:{key}\n{body}\n"


def pitches(notes: list[TimedNote]) -> list[int]:
    return [n.pitch for n in notes]


def test_accidentals_carry_through_the_bar() -> None:
    # ^F then F in the same bar are both F#; the next bar resets
    assert pitches(parse_abc(abc("^F F G A | F4 z4 |"))) == [66, 66, 67, 69, 65]


def test_ties_merge_only_on_the_same_pitch() -> None:
    # O'Neill's writes slurs as ties between different pitches: both notes must survive
    notes = parse_abc(abc("c2-d2 e2-e2 | c8 |"))
    assert pitches(notes) == [72, 74, 76, 72]
    assert notes[2] == TimedNote(76, 2.0, 4.0)  # e2-e2 is one half note


def test_voices_declared_in_the_header_read_the_first_voice_with_notes() -> None:
    # Aird's Airs book 6 and the American fife tunes declare V:1 and V:2 before K:, which
    # music21 reads as two empty parts first: the tune was refused for "no notes"
    tune = "X:1\nT:Two fifes\nM:2/4\nL:1/8\nV:1\nV:2\nK:D\nV:1\ndA dA|df f2|\nV:2\nFA FA|FA A2|\n"
    assert [n.pitch for n in parse_abc(tune)] == [74, 69, 74, 69, 74, 78, 78]


def test_chords_give_their_top_pitch() -> None:
    assert pitches(parse_abc(abc("[CEG]2 [DFA]2 c4 |"))) == [67, 69, 72]


@pytest.mark.parametrize(
    ("key", "reason"), [("Xyz", "unknown key"), ("Bn", "unknown key"), ("H", "unknown key")]
)
def test_unknown_keys_are_rejected_not_read_as_c(key: str, reason: str) -> None:
    with pytest.raises(RejectedInput, match=reason):
        parse_abc(abc("CDEF GABc |", key=key))


@pytest.mark.parametrize(
    "key", ["G", "Gmaj", "Em", "Ador", "F#m", "Bb", "Dmix=c", "none", "C clef=treble"]
)
def test_legal_keys_pass(key: str) -> None:
    check_abc(abc("CDEF |", key=key))


def test_absurd_octaves_are_rejected() -> None:
    with pytest.raises(RejectedInput, match="absurd octave"):
        parse_abc(abc("c'''''2 C,,,,,2 |"))


def test_split_keeps_good_tunes_around_a_broken_one() -> None:
    text = (
        abc("CDEF GABc |")
        + "\n"
        + abc("CDEF |", key="Xyz").replace("X:1", "X:2")
        + "\n"
        + abc("cBAG FEDC |").replace("X:1", "X:3")
    )
    tunes = split_abc_tunes(text)
    assert [number for number, _, _ in tunes] == ["1", "2", "3"]
    good = []
    for _, _, tune in tunes:
        try:
            good.append(pitches(parse_abc(tune)))
        except RejectedInput:
            pass
    assert good == [[60, 62, 64, 65, 67, 69, 71, 72], [72, 71, 69, 67, 65, 64, 62, 60]]


def test_midi_reader_uses_beats_not_seconds(tmp_path: Path) -> None:
    slow = parse_midi(write_midi(tmp_path / "slow.mid", C_MAJOR_TUNE, qpm=60))
    fast = parse_midi(write_midi(tmp_path / "fast.mid", C_MAJOR_TUNE, qpm=180))
    assert slow == fast
    assert [tuple(n) for n in slow] == [(p, float(s), float(e)) for p, s, e in C_MAJOR_TUNE]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello, not a midi file", "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00", "corrupt MIDI"),
    ],
)
def test_bad_midi_bytes_have_reasons(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(RejectedInput, match=reason):
        parse_midi(path)


def test_drum_only_and_silent_midi(tmp_path: Path) -> None:
    with pytest.raises(RejectedInput, match="drum tracks only"):
        parse_midi(write_midi(tmp_path / "drums.mid", C_MAJOR_TUNE, drum=True))
    with pytest.raises(RejectedInput, match="no notes"):
        parse_midi(write_midi(tmp_path / "silent.mid", []))


def test_unknown_suffix_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("C D E")
    with pytest.raises(RejectedInput, match="unsupported format: suffix '.txt'"):
        parse_file(path)


@pytest.mark.parametrize(
    "module", ["rlmusic.data.readers", "rlmusic.data.melody", "rlmusic.data.io"]
)
def test_data_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
