"""The `rlmusic` command: task listing, errors, and the data task end to end through Hydra."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from rlmusic import cli
from rlmusic.data.encodings import encoding_from_cfg
from tests.conftest import C_MAJOR_TUNE, run_rlmusic, write_midi


def run_data_task(tmp_path: Path) -> subprocess.CompletedProcess:
    """`rlmusic data` on the MIDI folder ``tmp_path/in`` (cache and run folder beside it)."""
    return run_rlmusic(
        "data",
        "data=midi_dir",
        f"data.path={tmp_path / 'in'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )


def test_help_lists_every_task(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for task in cli.TASKS:
        assert f"  {task}" in out


def test_unknown_task_lists_known_ones(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["pretrian"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'pretrian'; known tasks: " in err
    assert all(task in err for task in cli.TASKS)


@pytest.mark.parametrize("data", ["all", "essen", "oneills", "ryans", "bach", "midi_dir"])
def test_every_data_option_composes(data: str) -> None:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("prepare_data", overrides=[f"data={data}", "data.path=/x"])
    assert cfg.data.source == data
    assert cfg.data.split_seed == 0  # fixed: the run's seed does not move the split
    assert encoding_from_cfg(cfg.encoding).vocab_size == 38


def test_data_task_on_a_midi_folder(tmp_path: Path) -> None:
    write_midi(tmp_path / "in" / "a.mid", C_MAJOR_TUNE)
    (tmp_path / "in" / "broken.mid").write_bytes(b"MThd\x00")
    result = run_data_task(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tunes kept: 1" in result.stdout
    assert "broken.mid (corrupt MIDI" in result.stdout
    assert "broken.mid\tcorrupt MIDI" in (tmp_path / "run" / "rejected.tsv").read_text()
    assert '"kept": 1' in (tmp_path / "run" / "summary.json").read_text()


def test_data_task_fails_clearly_when_nothing_is_usable(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.mid").write_bytes(b"")
    result = run_data_task(tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no usable tune in "), result.stderr
    assert "empty file" in lines[0] and "Traceback" not in result.stderr
