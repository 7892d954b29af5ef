"""Chorale pieces in and out: four voice tracks read back as written, ABC with a V: voice per
part, the report's piano roll with a colour per voice, the text piano roll."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from rlmusic.envs.render import piano_roll_text

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding, Note
from rlmusic.data.io import (
    MelodyLoadError,
    load_piece,
    read_voice_tracks,
    save_abc,
    save_midi,
    tokens_to_abc,
)
from rlmusic.evaluation.plots import VOICE_COLOURS, piano_roll
from tests.test_chorale_encoding import random_voices

CHORALE = ChoraleEncoding()
VOICES = [
    [Note(72, 0, 4), Note(73, 4, 20)],  # a C#5 tied over the bar line
    [Note(67, 0, 2), Note(65, 4, 8)],
    [Note(64, 0, 8)],
    [Note(48, 0, 6)],
]


@pytest.mark.parametrize("seed", range(8))
def test_midi_voice_tracks_read_back_as_written(tmp_path: Path, seed: int) -> None:
    voices = random_voices(seed)
    tokens = CHORALE.encode_voices(voices, steps=40)
    path = save_midi(tokens, tmp_path / "piece.mid", CHORALE, qpm=97.0)
    read = load_piece(path, CHORALE)  # four tracks: read as they are, no transposition
    assert CHORALE.decode_voices(read) == voices
    # a voice that ends early leaves no trailing rest in MIDI; the notes are all there
    assert len(read) <= len(tokens) and (read == tokens[: len(read)]).all()


def test_a_file_that_is_not_four_voice_tracks_is_refused_by_name(tmp_path: Path) -> None:
    melody = save_midi(np.array([14, 1, 16, 1]), tmp_path / "tune.mid", MelodyEncoding())
    with pytest.raises(MelodyLoadError, match="tune.mid: not a chorale of 4 voice tracks"):
        read_voice_tracks(melody, CHORALE)
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd nonsense")
    with pytest.raises(MelodyLoadError, match="broken.mid: not a readable MIDI file"):
        load_piece(broken, CHORALE)
    with pytest.raises(MelodyLoadError, match="missing.mid: no such file"):
        load_piece(tmp_path / "missing.mid", CHORALE)


def test_abc_has_a_voice_per_part_that_music21_reads_back(tmp_path: Path) -> None:
    music21 = pytest.importorskip("music21")
    tokens = CHORALE.encode_voices(VOICES, steps=20)
    text = tokens_to_abc(tokens, CHORALE, title="t")
    lines = text.splitlines()
    assert lines[:6] == ["X:1", "T:t", "M:4/4", "L:1/16", "Q:1/4=80", "K:C"]
    assert lines[6:] == [
        'V:1 name="Soprano" clef=treble', "c4^c12- | ^c4 |]",
        'V:2 name="Alto" clef=treble', "G2z2F4z8 | z4 |]",
        'V:3 name="Tenor" clef=treble-8', "E8z8 | z4 |]",
        'V:4 name="Bass" clef=bass', "C,6z10 | z4 |]",
    ]  # fmt: skip
    path = save_abc(tokens, tmp_path / "piece.abc", CHORALE)
    score = music21.converter.parse(str(path))
    assert len(score.parts) == 4
    for part, notes in zip(score.parts, VOICES):
        sounded = [n for n in part.flatten().notes if not (n.tie and n.tie.type == "stop")]
        assert [n.pitch.midi for n in sounded] == [n.pitch for n in notes]
        assert [round(n.offset * 4) for n in sounded] == [n.start for n in notes]
    # a melody's ABC is one voice, as before
    assert "V:" not in tokens_to_abc(np.array([14, 1, 0, 1]), MelodyEncoding())


def test_piano_roll_draws_each_voice_in_its_colour() -> None:
    tokens = CHORALE.encode_voices(
        [[Note(76, 0, 32)], [Note(67, 0, 32)], [Note(60, 0, 32)], [Note(43, 0, 32)]], steps=32
    )
    image = imread(io.BytesIO(piano_roll(tokens, CHORALE)))[..., :3]
    below_legend = image[image.shape[0] // 10 :]  # the notes themselves, not the legend
    pixels = {tuple(np.round(p * 255).astype(int)) for p in below_legend.reshape(-1, 3)[::7]}
    for colour in VOICE_COLOURS[:4]:
        rgb = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
        assert any(max(abs(a - b) for a, b in zip(rgb, p)) <= 2 for p in pixels), colour
    melody = imread(io.BytesIO(piano_roll(np.array([14, 1, 1, 1] * 8), MelodyEncoding())))
    assert melody.shape[0] < image.shape[0]  # the chorale's roll is taller: its legend


def test_text_piano_roll_marks_each_voice() -> None:
    tokens = CHORALE.encode_voices(
        [[Note(72, 0, 2)], [Note(72, 0, 1)], [Note(64, 0, 2)], [Note(48, 1, 2)]], steps=2
    )
    rows = {
        line.split()[0]: line.split()[1]
        for line in piano_roll_text(tokens, CHORALE, 16).splitlines()
    }
    assert rows["C5"] == "*s.."  # soprano and alto in unison, then the soprano holds
    assert rows["E4"] == "Tt.." and rows["C3"] == ".B.."
