"""Forgiving MIDI: harmless defects are repaired with a warning, broken notes still reject.

pretty_midi cannot write these defects, so the files are written byte by byte here; long files
and long rests are written the way real tools write them (music21 at 10,080 ticks per quarter).
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import pretty_midi
import pytest

from rlmusic.data import MelodyEncoding, MelodyLoadError, MelodyWarning, load_melodies, load_melody
from rlmusic.data.midi_repair import repair_midi
from rlmusic.data.readers import RejectedInput, parse_midi

TPQ = 480  # ticks per quarter note
SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


def vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def meta(meta_type: int, payload: bytes, delta: int = 0) -> bytes:
    return vlq(delta) + bytes([0xFF, meta_type]) + vlq(len(payload)) + payload


def track(*events: bytes, end: bool = True) -> bytes:
    body = b"".join(events) + (meta(0x2F, b"") if end else b"")
    return b"MTrk" + struct.pack(">I", len(body)) + body


def smf(*tracks: bytes, file_format: int = 1, announced: int | None = None) -> bytes:
    count = len(tracks) if announced is None else announced
    return b"MThd" + struct.pack(">IHHH", 6, file_format, count, TPQ) + b"".join(tracks)


def scale_events(pitches: list[int] = SCALE, first_delta: int = 0) -> list[bytes]:
    """Quarter notes; the first note-on waits ``first_delta`` ticks. Running status after the first."""
    events = []
    for i, pitch in enumerate(pitches):
        on = bytes([0x90, pitch, 100]) if i == 0 else bytes([pitch, 100])
        events += [vlq(first_delta if i == 0 else 0) + on, vlq(TPQ) + bytes([pitch, 0])]
    return events


TEMPO = meta(0x51, (500000).to_bytes(3, "big"))
GOOD_KEY = meta(0x59, bytes([1, 0]))  # G major


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def expected_scale() -> list[tuple[int, float, float]]:
    return [(p, float(i), float(i + 1)) for i, p in enumerate(SCALE)]


@pytest.mark.parametrize(
    ("name", "data", "fix"),
    [
        (
            "empty_track.mid",
            smf(track(TEMPO), b"MTrk\x00\x00\x00\x00", track(*scale_events())),
            "dropped an empty track chunk (track 2 of 3)",
        ),
        (
            "key_9_sharps.mid",
            smf(track(TEMPO, meta(0x59, bytes([9, 0])), *scale_events()), file_format=0),
            "dropped an unusable key signature event in track 1",
        ),
        (
            "key_mode_5.mid",
            smf(track(TEMPO, meta(0x59, bytes([0xFF, 5]))), track(*scale_events())),
            "dropped an unusable key signature event in track 1",
        ),
        (
            "time_signature_0.mid",
            smf(track(TEMPO, meta(0x58, bytes([0, 2, 24, 8]))), track(*scale_events())),
            "dropped an unusable time signature event in track 1",
        ),
    ],
)
def test_harmless_defects_are_repaired_with_a_warning(
    tmp_path: Path, name: str, data: bytes, fix: str
) -> None:
    path = write(tmp_path / name, data)
    with pytest.warns(MelodyWarning) as caught:
        notes = parse_midi(path)
    assert [tuple(n) for n in notes] == expected_scale()
    messages = [str(w.message) for w in caught]
    assert any(str(path) in m and fix in m for m in messages), messages
    # the single-file API loads it too, passing the warning on to its caller
    with pytest.warns(MelodyWarning, match="dropped an"):
        tokens = load_melody(path)
    assert MelodyEncoding().decode(tokens)[0].pitch == 60


def test_a_dropped_event_keeps_the_time_of_what_follows(tmp_path: Path) -> None:
    # the bad key signature sits 2 quarters in; its delta must carry to the first note-on
    events = [TEMPO, meta(0x59, bytes([12, 1]), delta=2 * TPQ), *scale_events(first_delta=TPQ)]
    path = write(tmp_path / "late_bad_key.mid", smf(track(*events), file_format=0))
    with pytest.warns(MelodyWarning):
        notes = parse_midi(path)
    assert notes[0] == (60, 3.0, 4.0) and notes[-1] == (72, 10.0, 11.0)


def test_a_good_file_is_never_rewritten(tmp_path: Path) -> None:
    path = write(tmp_path / "fine.mid", smf(track(TEMPO, GOOD_KEY), track(*scale_events())))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MelodyWarning)
        assert [tuple(n) for n in parse_midi(path)] == expected_scale()
    repaired, fixes = repair_midi(path.read_bytes())
    assert fixes == [] and repaired == path.read_bytes()


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        # the header promises 3 tracks, the file holds 2: tracks (and notes) are missing
        (smf(track(TEMPO), track(*scale_events()), announced=3), "EOFError"),
        # a track cut short inside its events
        (smf(track(TEMPO), track(*scale_events())[:-9]), ""),
        # an undefined status byte (0xF4), next to a bad key signature
        (smf(track(meta(0x59, bytes([9, 0])), vlq(0) + b"\xf4", *scale_events())), ""),
    ],
    ids=["missing_track", "truncated_track", "bad_event"],
)
def test_defects_that_break_the_notes_are_still_corrupt(
    tmp_path: Path, data: bytes, detail: str
) -> None:
    path = write(tmp_path / "broken.mid", data)
    with pytest.raises(RejectedInput, match=f"corrupt MIDI.*{detail}"):
        parse_midi(path)
    with pytest.raises(MelodyLoadError, match=r"broken\.mid: corrupt MIDI"):
        load_melody(path)


def long_note_midi(path: Path, final_seconds: float | None, drone_seconds: float | None) -> Path:
    """C major scale in quarters at 120 bpm, a final note and/or a low-then-high drone."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0)
    for i, pitch in enumerate(SCALE):
        end = i * 0.5 + 0.5
        if final_seconds is not None and i == len(SCALE) - 1:
            end = final_seconds  # the last note's note-off comes minutes later
        piano.notes.append(pretty_midi.Note(100, pitch, i * 0.5, end))
    if drone_seconds is not None:  # a top note held for minutes from the start
        piano.notes.append(pretty_midi.Note(100, 84, 0.0, drone_seconds))
    midi.instruments.append(piano)
    midi.write(str(path))
    return path


def test_a_final_note_lasting_minutes_is_cut_to_one_bar(tmp_path: Path) -> None:
    path = long_note_midi(tmp_path / "stuck_final.mid", final_seconds=300.0, drone_seconds=None)
    with pytest.warns(MelodyWarning, match=r"stuck_final\.mid: cut 1 note.*longer than 8 bars"):
        tokens = load_melody(path)
    notes = MelodyEncoding().decode(tokens)
    assert [n.pitch for n in notes] == SCALE
    last = notes[-1]
    assert last.end - last.start == MelodyEncoding().steps_per_bar  # one bar, not 600 beats


def test_a_note_lasting_minutes_ends_with_the_melody(tmp_path: Path) -> None:
    # a high note held from the first beat for 5 minutes: capped at the melody's end (4 bars)
    path = long_note_midi(tmp_path / "drone.mid", final_seconds=None, drone_seconds=300.0)
    with pytest.warns(MelodyWarning, match="cut 1 note"):
        tunes, rejected = load_melodies(path)
    assert rejected == []
    tokens = tunes[0].tokens
    # the top line is the held note (it sounds over the scale), ending where the scale ends
    assert len(tokens) == len(SCALE) * MelodyEncoding().steps_per_quarter
    assert len(MelodyEncoding().decode(tokens)) == 1


def test_a_long_note_inside_the_melody_is_kept(tmp_path: Path) -> None:
    # 8 bars is the limit: a 4-bar final note is music, not a stuck note-off
    path = long_note_midi(tmp_path / "long_final.mid", final_seconds=3.5 + 8.0, drone_seconds=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MelodyWarning)
        tokens = load_melody(path)
    notes = MelodyEncoding().decode(tokens)
    assert [n.pitch for n in notes] == SCALE
    assert notes[-1].end - notes[-1].start == 4 * MelodyEncoding().steps_per_bar


def test_preparation_keeps_a_repaired_file_and_logs_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from rlmusic.data import prepare_corpus

    folder = tmp_path / "midi"
    folder.mkdir()
    write(folder / "bad_key.mid", smf(track(TEMPO, meta(0x59, bytes([9, 0])), *scale_events())))
    config = {"source": "midi_dir", "path": str(folder), "cache_dir": str(tmp_path / "cache")}
    with caplog.at_level("WARNING", logger="rlmusic.data.prepare"):
        corpus = prepare_corpus({**config, "workers": 1}, MelodyEncoding(), progress=False)
    assert corpus.metadata["tune_id"].tolist() == ["bad_key.mid"] and corpus.rejected == []
    assert "bad_key.mid: dropped an unusable key signature event" in caplog.text


# ---- long files: pretty_midi's 10^7-tick limit is a memory bound, not a property of music ----
M21_TPQ = 10_080  # music21.defaults.ticksPerQuarter: what music21 writes


def music21_midi(path: Path, events: list[tuple[int | None, float]]) -> Path:
    """A melody written by music21 itself: (pitch or None for a rest, quarter notes)."""
    from music21 import note, stream

    part = stream.Part()
    for pitch, quarters in events:
        part.append(
            note.Rest(quarterLength=quarters)
            if pitch is None
            else note.Note(pitch, quarterLength=quarters)
        )
    part.write("midi", fp=str(path))
    return path


def last_tick(path: Path) -> tuple[int, int]:
    import mido

    midi = mido.MidiFile(str(path))
    return max(sum(m.time for m in t) for t in midi.tracks), midi.ticks_per_beat


def test_a_long_music21_file_is_read_exactly(tmp_path: Path) -> None:
    # 264 bars of 4/4 at 10,080 ticks per quarter: past pretty_midi's limit of 10^7 ticks
    pitches = [SCALE[i % len(SCALE)] for i in range(264 * 4)]
    path = music21_midi(tmp_path / "long.mid", [(p, 1.0) for p in pitches])
    tick, resolution = last_tick(path)
    assert resolution == M21_TPQ and tick > 10**7
    with pytest.raises(ValueError, match="likely corrupt"):
        pretty_midi.PrettyMIDI(str(path))  # what refused these files before
    with warnings.catch_warnings():
        warnings.simplefilter("error", MelodyWarning)  # an exact re-timing: nothing to say
        notes = parse_midi(path)
    assert [tuple(n) for n in notes] == [(p, float(i), float(i + 1)) for i, p in enumerate(pitches)]
    tokens = load_melody(path)
    assert len(tokens) == len(pitches) * MelodyEncoding().steps_per_quarter


def test_a_long_file_of_odd_ticks_is_rounded_with_a_warning(tmp_path: Path) -> None:
    import mido

    # a performance at 10,080 ticks per quarter whose delta times share no divisor
    midi = mido.MidiFile(ticks_per_beat=M21_TPQ)
    events = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)])
    played = []
    for i in range(1100):
        pitch, start = SCALE[i % len(SCALE)], i * M21_TPQ + (7 if i % 2 else 0)
        played.append((pitch, start / M21_TPQ, (start + M21_TPQ - 13) / M21_TPQ))
    tick = 0
    for pitch, start, end in played:
        on, off = round(start * M21_TPQ), round(end * M21_TPQ)
        events.append(mido.Message("note_on", note=pitch, velocity=90, time=on - tick))
        events.append(mido.Message("note_off", note=pitch, velocity=0, time=off - on))
        tick = off
    midi.tracks.append(events)
    midi.save(str(tmp_path / "performance.mid"))
    assert last_tick(tmp_path / "performance.mid")[0] > 10**7
    with pytest.warns(MelodyWarning, match=r"performance\.mid: read at \d+ ticks per quarter"):
        notes = parse_midi(tmp_path / "performance.mid")
    assert len(notes) == len(played)
    error = max(
        abs(a - b) for n, p in zip(notes, played, strict=True) for a, b in zip(n[1:], p[1:])
    )
    assert [n.pitch for n in notes] == [p[0] for p in played] and error < 1 / 96


def test_a_delta_time_of_millions_of_quarters_is_still_corrupt(tmp_path: Path) -> None:
    # the largest delta a MIDI file holds (2^28 - 1 ticks) before the last note: 2.8M quarters
    events = [
        TEMPO,
        *scale_events()[:-2],
        vlq(0x0FFFFFFF) + bytes([72, 100]),
        vlq(TPQ) + bytes([72, 0]),
    ]
    path = write(tmp_path / "huge_delta.mid", smf(track(*events), file_format=0))
    with pytest.raises(RejectedInput, match=r"corrupt MIDI: its last event is at quarter note"):
        parse_midi(path)
    with pytest.raises(MelodyLoadError, match=r"huge_delta\.mid: corrupt MIDI"):
        load_melody(path)


# ---- long rests: a voice waiting for the others is music; a note of 9 bars is not ----------
def test_a_ten_bar_rest_is_shortened_to_the_limit_with_a_warning(tmp_path: Path) -> None:
    phrase = [(p, 1.0) for p in SCALE]
    path = music21_midi(tmp_path / "tacet.mid", [*phrase, (None, 40.0), *phrase])
    with pytest.warns(MelodyWarning, match=r"tacet\.mid: shortened 1 rest.*8 bars.*lasted 10 bars"):
        tokens = load_melody(path)
    encoding = MelodyEncoding()
    notes = encoding.decode(tokens)
    assert [n.pitch for n in notes] == SCALE + SCALE
    assert notes[8].start - notes[7].end == 8 * encoding.steps_per_bar


def test_a_nine_bar_note_is_still_refused(tmp_path: Path) -> None:
    path = music21_midi(tmp_path / "held.mid", [(60, 1.0), (62, 36.0), (64, 1.0)])
    tunes, rejected = load_melodies(path)
    assert tunes == [] and rejected[0].reason == "absurd duration"
    assert "a note of 144 steps" in str(rejected[0])


def test_a_long_rest_in_abc_is_shortened_too() -> None:
    from rlmusic.data.prepare import process_item
    from rlmusic.data.sources import WorkItem

    item = WorkItem("test", "rest", "", abc_text="X:1\nT:rest\nM:4/4\nL:1/4\nK:C\nCDEF|z40|GABc|\n")
    result = process_item(item, MelodyEncoding(), min_notes=1, timeout_s=20)
    assert result.reason == "" and len(result.tokens) == (8 + 8 * 4) * 4
    assert "shortened 1 rest(s) longer than 8 bars" in result.warnings[0]


def test_preparation_keeps_long_files_and_long_rests(tmp_path: Path) -> None:
    from rlmusic.data import prepare_corpus

    folder = tmp_path / "midi"
    folder.mkdir()
    music21_midi(folder / "long.mid", [(SCALE[i % 8], 1.0) for i in range(1040)])
    music21_midi(folder / "tacet.mid", [(60, 4.0), (None, 44.0), (67, 4.0)] * 3)
    music21_midi(folder / "held.mid", [(60, 1.0), (62, 40.0), (64, 1.0)] * 3)
    config = {"source": "midi_dir", "path": str(folder), "cache_dir": str(tmp_path / "cache")}
    corpus = prepare_corpus(
        {**config, "workers": 1, "min_notes": 3}, MelodyEncoding(), progress=False
    )
    assert sorted(corpus.metadata["tune_id"].tolist()) == ["long.mid", "tacet.mid"]
    assert [(name, reason.split(":")[0]) for name, reason in corpus.rejected] == [
        ("held.mid", "absurd duration")
    ]
