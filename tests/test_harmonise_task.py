"""`rlmusic harmonise`: a tiny random harmoniser under hand-made melodies. The soprano comes
back note for note, the harmony is written in the melody's own key, files are named by the
input's stem, melodies it cannot harmonise are refused in one line while the others are
written, and the same seed writes the same harmony."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from hydra import compose, initialize_config_module

from rlmusic.data.chorale_encoding import VOICE_NAMES, ChoraleEncoding
from rlmusic.data.corpus import Corpus
from rlmusic.data.encoding import Note
from rlmusic.data.harmonisation import CONDITIONING_KEY, SOPRANO
from rlmusic.data.melody import TimedNote
from rlmusic.data.melody_input import Refusal, Soprano, soprano_from_notes
from rlmusic.models import LSTMConfig, NoteLSTM, save_checkpoint
from rlmusic.models.harmoniser import NotAHarmoniserError
from rlmusic.tasks import harmonise
from tests.test_cli_errors import assert_one_line, run_main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENC = ChoraleEncoding()
QPM = 80.0
SECONDS_PER_STEP = 60.0 / QPM / ENC.steps_per_quarter
# a G major tune in quarter notes (pitch, start, end): G A B G | D5 B G(half) | C5 B A G | F# G(half)
G_TUNE = [
    (67, 0, 1), (69, 1, 2), (71, 2, 3), (67, 3, 4), (74, 4, 5), (71, 5, 6), (67, 6, 8),
    (72, 8, 9), (71, 9, 10), (69, 10, 11), (67, 11, 12), (66, 12, 13), (67, 13, 15),
]  # fmt: skip
G_SHIFT = 5  # G major -> C major


def tiny_harmoniser(path: Path, conditioning: str | None = SOPRANO) -> Path:
    """A seeded random-init LSTM over the chorale vocabulary, recorded as a harmoniser."""
    torch.manual_seed(0)
    config = LSTMConfig(
        vocab_size=ENC.vocab_size, embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0
    )
    info = {CONDITIONING_KEY: conditioning} if conditioning else {}
    return save_checkpoint(path, NoteLSTM(config), ENC, info)


def write_midi(path: Path, notes: list[tuple[int, float, float]], tracks: int = 1) -> Path:
    """A MIDI file of ``notes`` in quarter notes (at 120 qpm: the reader counts quarters)."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for _ in range(tracks):
        track = pretty_midi.Instrument(program=0)
        track.notes = [pretty_midi.Note(90, p, s * 0.5, e * 0.5) for p, s, e in notes]
        midi.instruments.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


def grid(notes: list[tuple[int, float, float]], shift: int = 0) -> list[Note]:
    """Quarter-note notes -> grid notes (16ths), pitches moved by ``shift``."""
    return [Note(p + shift, round(s * 4), round(e * 4)) for p, s, e in notes]


def midi_voices(path: Path) -> dict[str, list[Note]]:
    """Each track of a written file by name, as grid notes."""
    midi = pretty_midi.PrettyMIDI(str(path))
    return {
        track.name: [
            Note(n.pitch, round(n.start / SECONDS_PER_STEP), round(n.end / SECONDS_PER_STEP))
            for n in track.notes
        ]
        for track in midi.instruments
    }


def config(checkpoint: Path, melody: Path | str, out: Path, *overrides: str):
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(
            "harmonise",
            overrides=[
                f"checkpoint={checkpoint}",
                f"melody={melody}",
                f"out={out}",
                "resamples=20",
                "threads=1",
                "device=cpu",
                *overrides,
            ],
        )


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return tiny_harmoniser(tmp_path / "harmoniser.safetensors")


def test_the_soprano_comes_back_and_the_harmony_is_in_the_melodys_key(
    tmp_path: Path, checkpoint: Path
) -> None:
    melody = write_midi(tmp_path / "in" / "song.mid", G_TUNE)
    result = harmonise.run(config(checkpoint, melody, tmp_path / "out"))
    (done,) = result.summary.harmonised
    assert done.soprano.key == "G major" and done.soprano.shift == G_SHIFT
    assert done.soprano.octave == 0 and done.kept == [True]
    midi, xml = tmp_path / "out" / "song_satb.mid", tmp_path / "out" / "song_satb.musicxml"
    assert done.files == [midi, xml]
    voices = midi_voices(midi)
    assert list(voices) == list(VOICE_NAMES)  # four tracks, soprano first
    assert voices["soprano"] == grid(G_TUNE)  # note for note, in G as given
    in_c = ENC.decode_voices(done.pieces[0])  # what the model wrote, in C
    assert in_c[0] == grid(G_TUNE, G_SHIFT)
    for name, written in zip(VOICE_NAMES, in_c, strict=True):  # every voice back to G
        assert voices[name] == [n._replace(pitch=n.pitch - G_SHIFT) for n in written], name
    from music21 import converter

    score = converter.parse(str(xml))
    assert [p.partName for p in score.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    (signature,) = score.parts[0].recurse().getElementsByClass("KeySignature")
    assert str(signature) == "G major"
    assert [n.pitch.midi for n in score.parts[0].recurse().notes] == [p for p, _, _ in G_TUNE]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["written"] == 1 and summary["refused"] == 0
    assert summary["soprano_kept"] == {"harmonisations": 1, "of": 1, "notes": 13, "of_notes": 13}
    assert "voice crossing" in (tmp_path / "out" / "summary.md").read_text()


def test_a_melody_too_low_is_moved_up_by_the_fewest_octaves(
    tmp_path: Path, checkpoint: Path
) -> None:
    low = [(p - 12, s, e) for p, s, e in G_TUNE]  # F#3..D4; in C B3..G4, B3 under C4
    melody = write_midi(tmp_path / "low.mid", low)
    (done,) = harmonise.run(config(checkpoint, melody, tmp_path / "out")).summary.harmonised
    assert done.soprano.octave == 12 and done.kept == [True]  # B4..G5 in C
    written = midi_voices(tmp_path / "out" / "low_satb.mid")["soprano"]
    assert written == grid(G_TUNE)  # back in G, an octave over the input


def test_melodies_it_cannot_harmonise_are_refused_in_one_line_and_the_others_written(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    write_midi(folder / "good.mid", G_TUNE)
    write_midi(folder / "deep" / "also.mid", G_TUNE)
    write_midi(folder / "wide.mid", [(55, 0, 1), (60, 1, 2), (84, 2, 3), (86, 3, 4)])
    write_midi(folder / "triplets.mid", [(60, 0, 1 / 3), (62, 1 / 3, 2 / 3), (64, 2 / 3, 1)])
    write_midi(folder / "chords.mid", [(60, 0, 1), (64, 0, 1), (67, 0, 1), (65, 1, 2), (69, 1, 2)])
    (folder / "notes.txt").write_text("not music")
    (folder / "broken.mid").write_bytes(b"RIFF, not a MIDI file")
    result = harmonise.run(config(checkpoint, folder, tmp_path / "out"))
    summary = result.summary
    assert sorted(h.soprano.name for h in summary.harmonised) == ["deep/also", "good"]
    assert (tmp_path / "out" / "deep" / "also_satb.mid").is_file()
    reasons = {Path(r.source).name: r.reason for r in summary.refused}
    assert sorted(reasons) == ["broken.mid", "chords.mid", "notes.txt", "triplets.mid", "wide.mid"]
    assert reasons["wide.mid"].startswith("outside the soprano range after octave moves")
    assert reasons["triplets.mid"].startswith("a grid finer than 16ths")
    assert reasons["chords.mid"].startswith("polyphony: its top line drops 3 of 5 notes")
    assert reasons["notes.txt"].startswith("unreadable: unsupported format")
    assert reasons["broken.mid"].startswith("unreadable: not a MIDI file")
    printed = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("refused ")]
    assert len(printed) == 5  # one line each, naming the file
    assert f"refused {folder / 'wide.mid'}: outside the soprano range" in "\n".join(printed)
    assert result.metrics["written"] == 2 and result.metrics["refused"] == 5
    assert result.metrics["soprano_kept"] == 1.0


def test_the_same_seed_writes_the_same_harmony(tmp_path: Path, checkpoint: Path) -> None:
    folder = tmp_path / "in"
    write_midi(folder / "a.mid", G_TUNE)
    write_midi(folder / "b.mid", [(p + 2, s, e) for p, s, e in G_TUNE])

    def pieces(seed: int, out: str) -> list[np.ndarray]:
        cfg = config(checkpoint, folder, tmp_path / out, f"seed={seed}", "n=3")
        return [h.pieces for h in harmonise.run(cfg).summary.harmonised]

    first, again, other = pieces(0, "one"), pieces(0, "two"), pieces(1, "three")
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other, strict=True))
    assert (tmp_path / "one" / "a_satb_3.mid").read_bytes() == (
        tmp_path / "two" / "a_satb_3.mid"
    ).read_bytes()
    assert all(len(p) == 3 for p in first)  # n harmonisations per melody


def test_a_checkpoint_that_is_no_harmoniser_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tiny_harmoniser(tmp_path / "plain.safetensors", conditioning=None)
    melody = write_midi(tmp_path / "song.mid", G_TUNE)
    with pytest.raises(NotAHarmoniserError, match="is not a harmoniser"):
        harmonise.run(config(plain, melody, tmp_path / "out"))
    args = [f"checkpoint={plain}", f"melody={melody}", f"hydra.run.dir={tmp_path / 'o'}"]
    code, lines = run_main(["harmonise", *args], capsys)
    assert_one_line(code, lines, str(plain), "is not a harmoniser")


def test_a_missing_melody_is_one_line(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such.mid"
    args = [f"checkpoint={checkpoint}", f"melody={missing}", f"hydra.run.dir={tmp_path / 'o'}"]
    code, lines = run_main(["harmonise", *args], capsys)
    assert_one_line(code, lines, str(missing), "no such file or folder")


def test_heldout_harmonises_the_test_chorales_beside_bachs_own(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def chorale(soprano: list[Note]) -> np.ndarray:
        lower = [[n._replace(pitch=n.pitch - d) for n in soprano] for d in (5, 12, 24)]
        return ENC.encode_voices([soprano, *lower])

    test_piece = chorale(grid(G_TUNE, G_SHIFT) + [Note(72, 60, 64)])  # 64 steps
    corpus = Corpus.from_tunes(
        [test_piece, chorale(grid(G_TUNE))],
        ENC,
        metadata={"tune_id": ["bwv1", "bwv2"], "key": ["G major", "C major"]},
    )
    corpus.metadata["transposition"] = np.array([G_SHIFT, 0])
    corpus.split = np.array(["test", "train"])
    monkeypatch.setattr("rlmusic.data.prepare.prepare_corpus", lambda *a, **k: corpus)
    summary = harmonise.run(config(checkpoint, "heldout", tmp_path / "out")).summary
    (done,) = summary.harmonised
    assert done.soprano.name == "bwv1" and done.kept == [True]
    assert summary.bach is not None and summary.bach.n == 1
    voices = midi_voices(tmp_path / "out" / "bwv1_satb.mid")
    assert voices["soprano"][:13] == grid(G_TUNE)  # back in the chorale's own key, G
    short = harmonise.run(config(checkpoint, "heldout", tmp_path / "o2", "length=16")).summary
    assert short.harmonised[0].soprano.steps == 16 and short.bach.length == 16
    too_long = harmonise.run(config(checkpoint, "heldout", tmp_path / "o3", "length=65")).summary
    assert too_long.harmonised == [] and "shorter than length=65" in too_long.refused[0].reason


@pytest.mark.parametrize(
    ("notes", "why"),
    [
        ([TimedNote(60, 0, 1), TimedNote(88, 1, 2)], "outside the soprano range"),
        ([TimedNote(60, 0, 1), TimedNote(62, 1.125, 2)], "a grid finer than 16ths"),
        ([TimedNote(60, 0, 40)], "absurd duration"),
        ([], "no notes"),
    ],
    ids=["range", "32nds", "a note over 8 bars", "empty"],
)
def test_each_refusal_says_why(notes: list[TimedNote], why: str) -> None:
    found = soprano_from_notes(notes, "x", "x.mid", ENC, (60, 82))
    assert isinstance(found, Refusal) and found.reason.startswith(why), found
    assert str(found).startswith("x.mid: ")


def test_a_few_chord_notes_keep_their_top_note() -> None:
    notes = [TimedNote(p, s, e) for p, s, e in G_TUNE] + [TimedNote(62, 0, 1)]  # one double stop
    found = soprano_from_notes(notes, "x", "x.mid", ENC, (60, 82), max_dropped=0.2)
    assert isinstance(found, Soprano) and found.dropped_notes == 1
    assert list(found.line) == grid(G_TUNE)
