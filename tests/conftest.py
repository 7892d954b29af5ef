"""Shared fixtures: tiny models and checkpoints, small MIDI files made on the fly (nothing is
downloaded).

- ``tiny_lstm(seed)`` / ``make_tiny_checkpoint(dir, seed)``: a one-layer NoteLSTM (8-dim
  embeddings, 16 hidden units, no dropout) and its safetensors checkpoint;
- ``tiny_checkpoint``: that checkpoint, built once per session (tests only read it);
- ``toy_generator``: :class:`tests.toy_generator.ToyGenerator`, a GRU test double.
"""

from __future__ import annotations

from pathlib import Path

import pretty_midi
import pytest
import torch

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import LSTMConfig, NoteLSTM, save_checkpoint
from tests.toy_generator import ToyGenerator

# Small models gain nothing from intra-op threads, and two test processes (or a training run
# beside the tests) thrash the 2 cores when each uses both: one thread keeps the suite steady.
torch.set_num_threads(1)


@pytest.fixture
def encoding() -> MelodyEncoding:
    return MelodyEncoding()


def tiny_lstm(seed: int = 0, **config: object) -> NoteLSTM:
    """A one-layer NoteLSTM small enough to train in milliseconds (seeded weights)."""
    torch.manual_seed(seed)
    options: dict[str, object] = dict(embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0)
    options.update(config)
    return NoteLSTM(LSTMConfig(**options))


def make_tiny_checkpoint(
    directory: Path, seed: int = 0, name: str = "tiny", **config: object
) -> Path:
    """:func:`tiny_lstm` saved as ``directory/<name>_<seed>.safetensors`` (a vocabulary other
    than 38 gets the matching wider encoding, C2..B6)."""
    model = tiny_lstm(seed, **config)
    encoding = (
        MelodyEncoding() if model.vocab_size == 38 else MelodyEncoding(min_pitch=36, max_pitch=95)
    )
    return save_checkpoint(Path(directory) / f"{name}_{seed}.safetensors", model, encoding)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LSTM's checkpoint, built once per session (read only)."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def toy_generator() -> ToyGenerator:
    return ToyGenerator()


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
