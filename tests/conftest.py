"""Shared fixtures: small MIDI files made on the fly (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import pretty_midi
import pytest
import torch

from rlmusic.data.encoding import MelodyEncoding

# Small models gain nothing from intra-op threads, and two test processes (or a training run
# beside the tests) thrash the 2 cores when each uses both: one thread keeps the suite steady.
torch.set_num_threads(1)


@pytest.fixture
def encoding() -> MelodyEncoding:
    return MelodyEncoding()


def write_midi(
    path: Path, notes: list[tuple[int, float, float]], drum: bool = False, qpm: float = 120.0
) -> Path:
    """Write (pitch, start_beat, end_beat) notes as a one-track MIDI file."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    instrument = pretty_midi.Instrument(program=0, is_drum=drum)
    seconds = 60.0 / qpm
    for pitch, start, end in notes:
        instrument.notes.append(pretty_midi.Note(100, pitch, start * seconds, end * seconds))
    midi.instruments.append(instrument)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))
    return path


C_MAJOR_TUNE = [
    (60, 0, 1),
    (62, 1, 2),
    (64, 2, 3),
    (65, 3, 4),
    (67, 4, 6),
    (64, 6, 7),
    (60, 7, 8),
    (62, 8, 9),
    (60, 9, 12),
]
D_MAJOR_TUNE = [(p + 2, s, e) for p, s, e in C_MAJOR_TUNE]
