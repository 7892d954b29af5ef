"""A user's mistake through the `rlmusic` command: one line `error: <message>` on stderr naming
the file or value and the fix, exit status 2, no traceback; HYDRA_FULL_ERROR=1 brings the
traceback back, and a bug keeps its traceback.

Most cases run the CLI's ``main`` in this process (what ``rlmusic`` runs, without a fresh
interpreter's start-up); two run the real entry point in a subprocess. Nothing trains: every
input is made in ``tmp_path`` and every mistake is found before any work.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from rlmusic import cli
from rlmusic.errors import EXIT_USER_ERROR
from rlmusic.models.checkpoint import CheckpointError
from tests.conftest import run_rlmusic, write_midi

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 3474792\n"
)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """``rlmusic ARGS`` in this process: the exit status and stderr's non-blank lines."""
    try:
        code = cli.main(args)
    except SystemExit as exc:  # a task's own exit, from inside Hydra
        code = exc.code
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def assert_one_line(code: int, lines: list[str], *named: str) -> None:
    assert code == EXIT_USER_ERROR, lines
    assert len(lines) == 1, "\n".join(lines)
    assert lines[0].startswith("error: ") and "Traceback" not in lines[0]
    for text in named:
        assert text in lines[0], lines[0]


# ---- checkpoints: every task that takes one ------------------------------------------------
def _missing(tmp: Path, good: Path) -> tuple[str, str]:
    return str(tmp / "nope.pt"), "no such checkpoint"


def _lfs_pointer(tmp: Path, good: Path) -> tuple[str, str]:
    (tmp / "model.safetensors").write_text(LFS_POINTER)
    return str(tmp / "model.safetensors"), "git lfs pull"


def _text_file(tmp: Path, good: Path) -> tuple[str, str]:
    (tmp / "notes.pt").write_text("not a checkpoint at all\n")
    return str(tmp / "notes.pt"), "not a torch checkpoint"


def _truncated_safetensors(tmp: Path, good: Path) -> tuple[str, str]:
    (tmp / "cut.safetensors").write_bytes(good.read_bytes()[:300])
    return str(tmp / "cut.safetensors"), "truncated or not a safetensors file"


def _foreign_torch_file(tmp: Path, good: Path) -> tuple[str, str]:
    torch.save({"weights": torch.zeros(3)}, tmp / "foreign.pt")
    return str(tmp / "foreign.pt"), "not an rlmusic generator checkpoint"


def _folder_without_checkpoint(tmp: Path, good: Path) -> tuple[str, str]:
    (tmp / "run").mkdir()
    return str(tmp / "run"), "without tuned.safetensors, model.safetensors, best.pt or last.pt"


def _unknown_pretrained(tmp: Path, good: Path) -> tuple[str, str]:
    return (
        "pretrained:note_lsmt",
        "known: pretrained:chorale_harmoniser, pretrained:chorale_lstm, pretrained:chorale_transformer, pretrained:music_transformer, pretrained:note_lstm",
    )


BAD_CHECKPOINTS: dict[str, Callable[[Path, Path], tuple[str, str]]] = {
    "missing": _missing,
    "lfs-pointer": _lfs_pointer,
    "text-file": _text_file,
    "truncated-safetensors": _truncated_safetensors,
    "foreign-torch-file": _foreign_torch_file,
    "folder-without-checkpoint": _folder_without_checkpoint,
    "unknown-pretrained": _unknown_pretrained,
}


@pytest.mark.parametrize("mistake", list(BAD_CHECKPOINTS))
def test_sample_names_a_bad_checkpoint_in_one_line(
    mistake: str, tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, why = BAD_CHECKPOINTS[mistake](tmp_path, tiny_checkpoint)
    code, lines = run_main(
        ["sample", f"checkpoint={spec}", f"hydra.run.dir={tmp_path / 'o'}"], capsys
    )
    assert_one_line(code, lines, spec, why)


@pytest.fixture
def midi_folder(tmp_path: Path) -> Path:
    """Eight seeded C major tunes of 13 notes (52-76 steps): a corpus that prepares in about a
    second."""
    rng = np.random.default_rng(0)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    for i in range(8):
        beats = np.cumsum([1.0, *rng.choice([1.0, 1.5], 12)])
        notes = [(int(rng.choice(scale)), s, e) for s, e in zip(beats[:-1], beats[1:])]
        write_midi(tmp_path / "midi" / f"t{i}.mid", [(60, 0.0, 1.0), *notes])
    return tmp_path / "midi"


def _small_data(tmp_path: Path, folder: Path) -> list[str]:
    """Overrides for the corpus of ``folder``, half of it the test split (held-out melodies)."""
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    return ["data=midi_dir", f"data.path={folder}", cache, "data.test_fraction=0.5"]


# task -> overrides putting the bad spec where that task reads a checkpoint (the corpus, where
# one is read, is the small folder; the reward, where one is built, has no critic to find)
TASKS_WITH_CHECKPOINTS: dict[str, Callable[[str, Path, Path], list[str]]] = {
    "evaluate": lambda spec, tmp, midi: ["evaluate", f"checkpoint={spec}", *_small_data(tmp, midi)],
    "evaluate-prior": lambda spec, tmp, midi: [
        "evaluate",
        f"prior={spec}",
        *_small_data(tmp, midi),
    ],
    "finetune": lambda spec, tmp, midi: ["finetune", f"checkpoint={spec}", "reward=rl_tuner"],
    "pretrain-init": lambda spec, tmp, midi: ["pretrain", f"init={spec}", *_small_data(tmp, midi)],
    "compare": lambda spec, tmp, midi: [
        "compare",
        f"models.mine={spec}",
        "reward=rl_tuner",
        "audio=false",
        *_small_data(tmp, midi),
    ],
    "compare-prior": lambda spec, tmp, midi: [
        "compare",
        "models.a=heldout",
        f"prior={spec}",
        "reward=rl_tuner",
        *_small_data(tmp, midi),
    ],
    "listen": lambda spec, tmp, midi: [
        "listen",
        "models.a=pretrained:note_lstm",
        f"models.b={spec}",
        "synth=sine",
    ],
}


@pytest.mark.parametrize("mistake", ["missing", "lfs-pointer", "unknown-pretrained"])
@pytest.mark.parametrize("where", list(TASKS_WITH_CHECKPOINTS))
def test_every_task_names_a_bad_checkpoint_in_one_line(
    where: str,
    mistake: str,
    tmp_path: Path,
    tiny_checkpoint: Path,
    midi_folder: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, why = BAD_CHECKPOINTS[mistake](tmp_path, tiny_checkpoint)
    args = TASKS_WITH_CHECKPOINTS[where](spec, tmp_path, midi_folder)
    code, lines = run_main([*args, f"hydra.run.dir={tmp_path / 'o'}"], capsys)
    if where in ("compare", "listen") and mistake == "missing":
        why = "no such file or folder"  # a model spec may also be a run or a MIDI folder
    assert_one_line(code, lines, spec, why)


# ---- input files and folders ---------------------------------------------------------------
def test_a_missing_midi_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "no" / "such"
    code, lines = run_main(
        ["data", "data=midi_dir", f"data.path={folder}", f"hydra.run.dir={tmp_path / 'o'}"], capsys
    )
    assert_one_line(code, lines, str(folder), "no such folder")


def test_a_file_given_as_the_midi_folder_is_one_line(
    tmp_path: Path, midi_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = midi_folder / "t0.mid"
    code, lines = run_main(
        ["data", "data=midi_dir", f"data.path={file}", f"hydra.run.dir={tmp_path / 'o'}"], capsys
    )
    assert_one_line(code, lines, str(file), "it is a file", "under the folder")


def test_an_empty_midi_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code, lines = run_main(
        ["data", "data=midi_dir", f"data.path={tmp_path / 'empty'}", f"hydra.run.dir={tmp_path}"],
        capsys,
    )
    assert_one_line(code, lines, str(tmp_path / "empty"), "no files under")


def test_a_folder_of_only_corrupt_files_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.mid").write_bytes(b"MThd\x00")
    code, lines = run_main(
        ["data", *_small_data(tmp_path, tmp_path / "bad"), f"hydra.run.dir={tmp_path / 'o'}"],
        capsys,
    )
    assert_one_line(code, lines, str(tmp_path / "bad"), "no usable tune", "corrupt MIDI")


def test_a_corrupt_file_beside_good_ones_is_skipped_not_an_error(
    tmp_path: Path, midi_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (midi_folder / "broken.mid").write_bytes(b"MThd\x00")
    code, lines = run_main(
        ["data", *_small_data(tmp_path, midi_folder), f"hydra.run.dir={tmp_path / 'o'}"], capsys
    )
    assert code == 0 and not any(line.startswith("error:") for line in lines)


def test_a_cache_folder_that_cannot_be_written_is_one_line(
    tmp_path: Path, midi_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be\n")
    code, lines = run_main(
        ["data", *_small_data(tmp_path, midi_folder), f"hydra.run.dir={tmp_path / 'o'}"], capsys
    )
    assert_one_line(code, lines, str(not_a_folder), "cannot write the corpus cache", "cache_dir")


def test_pretrain_names_a_missing_corpus_folder_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "nowhere"
    code, lines = run_main(
        ["pretrain", "data=midi_dir", f"data.path={folder}", f"hydra.run.dir={tmp_path / 'o'}"],
        capsys,
    )
    assert_one_line(code, lines, str(folder), "no such folder")


def test_a_missing_primer_file_is_one_line(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primer = tmp_path / "primer.mid"
    code, lines = run_main(
        ["sample", f"checkpoint={tiny_checkpoint}", f"primer={primer}", f"out={tmp_path / 'o'}"],
        capsys,
    )
    assert_one_line(code, lines, str(primer), "no such file")


def test_a_missing_preference_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefs = tmp_path / "prefs.jsonl"
    code, lines = run_main(
        [
            "train-critic",
            "critic=preference",
            f"critic.preferences={prefs}",
            f"hydra.run.dir={tmp_path / 'o'}",
        ],
        capsys,
    )
    assert_one_line(code, lines, str(prefs), "cannot read the preference file")


# ---- optional dependencies -----------------------------------------------------------------
def test_a_plugin_whose_config_hydra_cannot_find_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An uninstalled plug-in's own config is missing: Hydra cannot compose (the Ray launcher
    without hydra-ray-launcher: `Could not load 'hydra/launcher/ray'`)."""
    plugin = cli.Plugin("a launcher", ("rlmusic_tests_no_such_plugin",))
    monkeypatch.setitem(cli.OPTIONAL_PLUGINS["hydra/launcher"], "not_installed", plugin)
    code, lines = run_main(
        ["sample", "-m", "hydra/launcher=not_installed", f"hydra.sweep.dir={tmp_path}"], capsys
    )
    assert_one_line(
        code,
        lines,
        "hydra/launcher=not_installed needs a launcher",
        "pip install 'rlmusic[sweeps]'",
    )
    assert not (tmp_path / "multirun.yaml").exists()  # refused before Hydra started


@pytest.mark.parametrize(
    ("args", "missing", "named"),
    [
        (
            ["hparams_search=finetune_optuna"],
            "optuna",
            "hydra/sweeper=optuna (set by hparams_search",
        ),
        (["-m", "hydra/launcher=local", "seed=1,2"], "joblib", "hydra/launcher=local needs"),
        (["-m", "hydra/launcher=slurm", "seed=1,2"], "submitit", "hydra/launcher=slurm needs"),
        (["-m", "hydra/launcher=ray_cluster", "seed=1,2"], "ray", "hydra/launcher=ray_cluster"),
    ],
    ids=["optuna", "joblib", "submitit", "ray"],
)
def test_a_sweep_plugin_that_is_not_installed_is_one_line(
    args: list[str],
    missing: str,
    named: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "_importable", lambda module: module != missing)
    code, lines = run_main(["finetune", *args, f"hydra.sweep.dir={tmp_path}"], capsys)
    assert_one_line(code, lines, named, f"no module {missing}", "pip install 'rlmusic[sweeps]'")


def test_a_plain_run_does_not_compose_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("composed for a command line that chooses no plug-in")

    monkeypatch.setattr("hydra.initialize_config_module", fail)
    cli.check_plugins("sample", ["n=2", "--cfg", "job", "model.x=hydra/launcher=y"])


@pytest.mark.parametrize("group", list(cli.OPTIONAL_PLUGINS))
def test_every_shipped_plugin_option_is_known(group: str) -> None:
    conf = importlib.resources.files(cli.CONFIG_MODULE) / group
    shipped = {p.name.removesuffix(".yaml") for p in conf.iterdir()} if conf.is_dir() else set()
    assert shipped <= set(cli.OPTIONAL_PLUGINS[group])


# ---- tracebacks: on request, and for bugs --------------------------------------------------
def test_full_error_shows_the_traceback_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        cli.main(["sample", f"checkpoint={tmp_path / 'nope.pt'}", f"hydra.run.dir={tmp_path}"])


def test_a_bug_keeps_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(cfg: object) -> None:
        raise ZeroDivisionError("a bug, not a user's mistake")

    monkeypatch.setattr("rlmusic.tasks.sample.run", broken)
    code, lines = run_main(["sample", f"hydra.run.dir={tmp_path}"], capsys)
    assert code not in (0, EXIT_USER_ERROR)
    assert any("Traceback" in line for line in lines)
    assert "ZeroDivisionError: a bug, not a user's mistake" in lines
    assert not any(line.startswith("error: ") for line in lines)


@pytest.mark.parametrize("full_error", [False, True], ids=["one-line", "HYDRA_FULL_ERROR=1"])
def test_the_entry_point_on_a_git_lfs_pointer(tmp_path: Path, full_error: bool) -> None:
    (tmp_path / "model.safetensors").write_text(LFS_POINTER)
    env = {"HYDRA_FULL_ERROR": "1" if full_error else "0"}
    done = run_rlmusic(
        "sample",
        "checkpoint=model.safetensors",
        f"hydra.run.dir={tmp_path / 'o'}",
        cwd=tmp_path,
        **env,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if full_error:
        assert "Traceback (most recent call last)" in done.stderr
        assert "CheckpointError: model.safetensors: this is a Git LFS pointer" in done.stderr
    else:
        assert done.returncode == EXIT_USER_ERROR
        assert lines == [
            "error: model.safetensors: this is a Git LFS pointer, not the checkpoint (the "
            "3474792-byte file itself was never fetched); run `git lfs pull` to fetch it"
        ]
