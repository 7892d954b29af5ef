"""Shared fixtures: tiny models and checkpoints, small MIDI files made on the fly (nothing is
downloaded).

- ``tiny_lstm(seed)`` / ``make_tiny_checkpoint(dir, seed)``: a one-layer NoteLSTM (8-dim
  embeddings, 16 hidden units, no dropout) and its safetensors checkpoint;
- ``tiny_checkpoint``: that checkpoint, built once per session (tests only read it);
- ``toy_generator``: :class:`tests.toy_generator.ToyGenerator`, a GRU test double;
- ``one_torch_thread``: torch limited to one thread for the test, restored after (a module opts
  in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``);
- ``compose_finetune(overrides)``: the ``finetune`` Hydra config with those overrides;
- ``tiny_batched_run(prior)``: overrides for a one-iteration batched run of a tiny model;
- ``run_rlmusic(*args, cwd=...)``: the ``rlmusic`` command in a subprocess.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest
import torch
from hydra import compose, initialize_config_module

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import LSTMConfig, NoteLSTM, save_checkpoint
from tests.toy_generator import ToyGenerator

# Small models gain nothing from intra-op threads, and two test processes (or a training run
# beside the tests) thrash the 2 cores when each uses both: one thread keeps the suite steady.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def restore_logging():
    """Each test leaves the logging configuration as it found it. A task run in-process
    (``cli.main`` under Hydra) configures the root logger with handlers on that test's captured
    stderr; left behind, a later test's log call writes to a closed stream, and the "Logging
    error" report lands in that test's own captured output."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


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


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine: a second thread only waits (and can stall)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def compose_task(task: str, overrides: list[str]):
    """A task's config composed from ``rlmusic.conf`` with these overrides."""
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(task, overrides=overrides)


def compose_finetune(overrides: list[str]):
    """The ``finetune`` config composed from ``rlmusic.conf`` with these overrides."""
    return compose_task("finetune", overrides)


def tiny_chorale_finetune(checkpoint: Path, length: int) -> list[str]:
    """Overrides for a two-iteration batched run of a chorale model on CPU, against the harmony
    rules and KL to the start model (no critic: it needs the chorale corpus)."""
    return [
        f"checkpoint={checkpoint}",
        "reward=chorale",
        "~reward.extra.realism",
        f"length={length}",
        "algo.iterations=2",
        "algo.batch_size=16",
        "algo.minibatch_size=8",
        "algo.group_size=8",
        "n_samples=2",
        "device=cpu",
        "threads=1",
    ]


def tiny_batched_run(prior: Path) -> list[str]:
    """Overrides for a one-iteration batched run on CPU (8 steps, one sample), ``prior`` the
    reward's prior checkpoint."""
    return [
        f"reward.prior.checkpoint={prior}",
        "length=8",
        "algo.iterations=1",
        "algo.batch_size=16",
        "algo.minibatch_size=8",
        "algo.group_size=8",
        "algo.sample_every=0",
        "n_samples=1",
        "device=cpu",
    ]


def run_rlmusic(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m rlmusic.cli *args`` in ``cwd`` (5 minutes at most) with ``env`` added to this
    process's environment; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "rlmusic.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, **env},
    )


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
