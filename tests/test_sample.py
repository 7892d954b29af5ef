"""`rlmusic sample`: files written, seeded reproducibility, primers, the command through Hydra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.io import MelodyLoadError, load_melody, load_piece
from rlmusic.models import LSTMConfig, NoteLSTM, save_checkpoint
from rlmusic.tasks import sample
from tests.conftest import C_MAJOR_TUNE, write_midi
from tests.test_models import one_thread  # noqa: F401  (autouse fixture)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = NoteLSTM(LSTMConfig(embed_dim=8, hidden_size=16))
    return save_checkpoint(tmp_path / "tiny.safetensors", model, MelodyEncoding())


@pytest.fixture
def chorale_checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = NoteLSTM(
        LSTMConfig(vocab_size=ChoraleEncoding().vocab_size, embed_dim=8, hidden_size=16)
    )
    return save_checkpoint(tmp_path / "chorale.safetensors", model, ChoraleEncoding())


def sample_cfg(checkpoint: Path, out: Path, *overrides: str) -> DictConfig:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(
            "sample",
            overrides=[
                f"checkpoint={checkpoint}",
                f"out={out}",
                "n=5",
                "length=24",
                "musicxml=2",
                *overrides,
            ],
        )


def test_writes_midi_per_sample_and_musicxml_for_the_first(
    tmp_path: Path, checkpoint: Path
) -> None:
    result = sample.run(sample_cfg(checkpoint, tmp_path / "out"))
    assert result.tokens.shape == (5, 24)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mid")) == [
        f"sample_{i:03d}.mid" for i in range(5)
    ]
    assert len(list((tmp_path / "out").glob("*.musicxml"))) == 2
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "tokens.npy"), result.tokens)
    notes = pretty_midi.PrettyMIDI(str(result.midi[0])).instruments[0].notes
    assert [n.pitch for n in notes] == [n.pitch for n in MelodyEncoding().decode(result.tokens[0])]


def test_seeded_and_reproducible(tmp_path: Path, checkpoint: Path) -> None:
    a = sample.run(sample_cfg(checkpoint, tmp_path / "a", "seed=7", "top_p=0.9", "top_k=10"))
    b = sample.run(sample_cfg(checkpoint, tmp_path / "b", "seed=7", "top_p=0.9", "top_k=10"))
    c = sample.run(sample_cfg(checkpoint, tmp_path / "c", "seed=8", "top_p=0.9", "top_k=10"))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)
    assert (tmp_path / "a" / "sample_000.mid").read_bytes() == (
        tmp_path / "b" / "sample_000.mid"
    ).read_bytes()


def test_primer_melody_starts_every_sample(tmp_path: Path, checkpoint: Path) -> None:
    primer = write_midi(tmp_path / "primer.mid", C_MAJOR_TUNE, qpm=80)
    expected = load_melody(primer, MelodyEncoding())
    result = sample.run(sample_cfg(checkpoint, tmp_path / "out", f"primer={primer}", "length=8"))
    assert result.tokens.shape == (5, len(expected) + 8)
    assert (result.tokens[:, : len(expected)] == expected).all()


def test_bad_arguments_fail_clearly(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="temperature"):
        sample.run(sample_cfg(checkpoint, tmp_path / "out", "temperature=-1"))
    with pytest.raises(ValueError, match="n >= 1"):
        sample.run(sample_cfg(checkpoint, tmp_path / "out", "n=0"))


def test_the_command_through_hydra(tmp_path: Path, checkpoint: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlmusic.cli",
            "sample",
            f"checkpoint={checkpoint}",
            "n=2",
            "length=16",
            "musicxml=1",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 samples of 16 steps" in result.stdout
    assert (tmp_path / "run" / "sample_001.mid").is_file()
    assert (tmp_path / "run" / "sample_000.musicxml").is_file()


def test_chorale_samples_count_steps_and_write_a_track_and_a_staff_per_voice(
    tmp_path: Path, chorale_checkpoint: Path
) -> None:
    music21 = pytest.importorskip("music21")
    result = sample.run(sample_cfg(chorale_checkpoint, tmp_path / "out", "length=8"))
    encoding = ChoraleEncoding()
    assert result.tokens.shape == (5, 32)  # 8 time steps of 4 voices
    midi = pretty_midi.PrettyMIDI(str(result.midi[0]))
    assert [i.name for i in midi.instruments] == ["soprano", "alto", "tenor", "bass"]
    for instrument, notes in zip(midi.instruments, encoding.decode_voices(result.tokens[0])):
        assert [n.pitch for n in instrument.notes] == [n.pitch for n in notes]
        assert {instrument.program} == {encoding.default_program}
    score = music21.converter.parse(str(result.musicxml[0]))
    assert [p.partName for p in score.parts] == ["Soprano", "Alto", "Tenor", "Bass"]


def test_a_chorale_primer_is_four_parts_or_a_clear_refusal(
    tmp_path: Path, chorale_checkpoint: Path
) -> None:
    music21 = pytest.importorskip("music21")
    bach = str(music21.corpus.getWork("bach/bwv66.6"))  # a four-part chorale music21 ships
    expected = load_piece(bach, ChoraleEncoding())
    assert len(expected) % 4 == 0 and len(expected) > 0
    result = sample.run(
        sample_cfg(chorale_checkpoint, tmp_path / "out", f"primer={bach}", "length=4")
    )
    assert result.tokens.shape == (5, len(expected) + 16)
    assert (result.tokens[:, : len(expected)] == expected).all()
    melody = write_midi(tmp_path / "melody.mid", C_MAJOR_TUNE)
    with pytest.raises(MelodyLoadError, match="melody.mid: not a chorale of 4 voice tracks"):
        sample.run(sample_cfg(chorale_checkpoint, tmp_path / "out", f"primer={melody}"))
