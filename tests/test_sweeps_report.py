"""`rlmusic sweep-report DIR` on sweep folders laid out by hand as a cluster leaves them: only the
files in the job folders count (no process state), failed and unfinished jobs are listed with
their errors, and the ranking follows the objective's direction."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from rlmusic import cli
from rlmusic.sweeps import build_report, read_sweep
from rlmusic.sweeps.records import numeric_metrics, record_failure, record_success


def job(
    sweep: Path,
    name: str,
    overrides: list[str],
    result: dict | None,
    objective: str = "eval/interval_l1",
) -> Path:
    """A job folder as Hydra and rlmusic leave it (``result`` None: the job never finished)."""
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    config = {"objective": objective, "objective_direction": "minimize", "seed": 0}
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if result is not None:
        (folder / "job_result.json").write_text(json.dumps(result))
    return folder


def ok(value: float, reward: float) -> dict:
    return {
        "status": "ok",
        "objective": "eval/interval_l1",
        "direction": "minimize",
        "value": value,
        "metrics": {"eval/interval_l1": value, "final/reward/total": reward},
        "seconds": 1.5,
    }


@pytest.fixture
def copied_sweep(tmp_path: Path) -> Path:
    """Five jobs (0, 1, 2, 3, 10): three finished, one failed, one killed before the end; plus
    SLURM's log folder, which is not a job."""
    sweep = tmp_path / "from_cluster"
    job(sweep, "0", ["algo.kl_coef=1.0", "algo.lr=1e-5", "seed=0"], ok(0.9, 50.0))
    job(sweep, "1", ["algo.kl_coef=2.0", "algo.lr=1e-4", "seed=0"], ok(0.4, 40.0))
    failed = {
        "status": "failed",
        "objective": "eval/interval_l1",
        "direction": "minimize",
        "value": None,
        "metrics": {},
        "error": "RuntimeError: CUDA out of memory",
    }
    job(sweep, "2", ["algo.kl_coef=3.0", "algo.lr=1e-3", "seed=0"], failed)
    (sweep / "2" / "error.txt").write_text("Traceback ...\nRuntimeError: CUDA out of memory\n")
    job(sweep, "3", ["algo.kl_coef=4.0", "algo.lr=1e-2", "seed=0"], None)
    job(sweep, "10", ["algo.kl_coef=5.0", "algo.lr=1e-2", "seed=0"], ok(0.6, 60.0))
    (sweep / ".submitit" / "123_0").mkdir(parents=True)
    (sweep / ".submitit" / "123_0" / "123_0_log.err").write_text("srun: error")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def test_a_copied_back_sweep_is_ranked_with_its_failures(copied_sweep: Path) -> None:
    records = read_sweep(copied_sweep)
    assert [r.job for r in records] == ["0", "1", "2", "3", "10"]  # numeric order
    assert [r.status for r in records] == ["ok", "ok", "failed", "unfinished", "ok"]
    assert "did not finish" in records[3].error

    assert cli.main(["sweep-report", str(copied_sweep)]) == 0
    with (copied_sweep / "sweep_report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["job"] for r in rows] == ["1", "10", "0", "2", "3"]  # minimised; no value: last
    assert [r["rank"] for r in rows] == ["1", "2", "3", "", ""]
    assert rows[0]["algo.kl_coef"] == "2.0" and rows[0]["final/reward/total"] == "40.0"
    assert rows[3]["error"] == "RuntimeError: CUDA out of memory"

    markdown = (copied_sweep / "sweep_report.md").read_text()
    assert "ranked by `eval/interval_l1` (minimize" in markdown
    assert "Every run: `seed=0`" in markdown  # a fixed override is said once, not a column
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0].split(" | ")[2:4] == ["algo.kl_coef", "algo.lr"]
    assert table[1].startswith("| 1 | 1 | 2.0 | 1e-4 | 0.4 |")
    assert "## Failed runs (2)" in markdown
    assert "job 2 (algo.kl_coef=3.0 algo.lr=1e-3): RuntimeError: CUDA out of memory" in markdown
    assert "job 3" in markdown and "did not finish" in markdown
    assert (copied_sweep / "sweep_report.png").read_bytes()[:4] == b"\x89PNG"


def test_the_report_ranks_by_another_metric_and_writes_elsewhere(
    copied_sweep: Path, tmp_path: Path
) -> None:
    out = tmp_path / "elsewhere"
    args = ["rank_by=final/reward/total", "direction=maximize", f"out={out}", "plot=false"]
    assert cli.main(["sweep-report", str(copied_sweep), *args]) == 0
    with (out / "sweep_report.csv").open() as f:
        assert [r["job"] for r in csv.DictReader(f)][:3] == ["10", "0", "1"]
    assert not (out / "sweep_report.png").exists()
    assert not (copied_sweep / "sweep_report.csv").exists()


def test_a_folder_without_jobs_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no job folder"):
        read_sweep(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        read_sweep(tmp_path / "nope")


def test_maximised_objectives_rank_the_largest_first(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    for i, value in enumerate([1.0, 3.0, 2.0]):
        result = {"status": "ok", "objective": "final/reward/total", "direction": "maximize"}
        job(sweep, str(i), [f"seed={i}"], {**result, "value": value}, "final/reward/total")
    report = build_report(read_sweep(sweep), sweep)
    assert [r.job for r in report.ranked] == ["1", "2", "0"] and report.swept == ["seed"]
    assert report.best.job == "1" and report.metrics["best"] == 3.0


def test_job_records_round_trip_and_hold_no_nan(tmp_path: Path) -> None:
    class Result:
        metrics = {"a": 1.5, "b": float("nan"), "c": math.inf, "note": "text", "n": 3}

    metrics = numeric_metrics(Result())
    assert metrics == {"a": 1.5, "b": None, "c": None, "n": 3.0}
    record_success(tmp_path / "ok", "finetune", "a", "maximize", 1.5, metrics, 2.0)
    json.loads((tmp_path / "ok" / "job_result.json").read_text())  # strict JSON: no NaN
    try:
        raise ValueError("bad value\nsecond line")
    except ValueError as exc:
        returned = record_failure(tmp_path / "bad", "finetune", exc, "a", "maximize", 0.1)
    assert returned == -math.inf
    (ok_record, bad_record) = (read_sweep(tmp_path)[i] for i in (1, 0))
    assert ok_record.status == "ok" and ok_record.value == 1.5 and ok_record.metrics["b"] is None
    assert bad_record.error == "ValueError: bad value"
    assert "second line" in (tmp_path / "bad" / "error.txt").read_text()


def test_the_sweep_folder_is_the_first_bare_argument() -> None:
    assert cli._positional("sweep-report", ["multirun/x", "plot=false"]) == [
        "dir='multirun/x'",
        "plot=false",
    ]
    # a Hydra flag's value is not the folder; other tasks take no bare argument
    assert cli._positional("sweep-report", ["--cfg", "job", "d"]) == ["--cfg", "job", "dir='d'"]
    assert cli._positional("finetune", ["x"]) == ["x"]
    assert cli._positional("sweep-report", ["it's"]) == ["dir='it\\'s'"]


MEETS_EVERY_CHECK = {
    "eval/notes_excessively_repeated": 0.0,
    "eval/notes_not_in_key": 0.005,
    "eval/compositions_starting_with_tonic": 0.30,
    "eval/leaps_resolved": 0.92,
    "eval/notes_in_motif": 0.42,
    "eval/distinct_share": 0.99,
    "eval/interval_l1": 0.15,
    "eval/onsets_per_piece": 13.0,
    "eval/prior_logp_per_onset": -2.3,
    "eval/reference_logp_per_onset": -2.0,
}


def test_the_best_run_meeting_every_music_check_is_named(tmp_path: Path) -> None:
    """Ranked by the critic's accuracy (lower: more like real music) subject to the checks:
    the most realistic run misses the tonic check, so the second is the one to take."""
    sweep = tmp_path / "frontier"
    runs = {
        "0": (0.62, {**MEETS_EVERY_CHECK, "eval/compositions_starting_with_tonic": 0.20}),
        "1": (0.66, MEETS_EVERY_CHECK),
        "2": (0.70, {**MEETS_EVERY_CHECK, "eval/prior_logp_per_onset": -2.6}),
    }
    for name, (value, metrics) in runs.items():
        result = {**ok(value, 1.0), "objective": "eval/critic_accuracy", "value": value}
        result["metrics"] = {**metrics, "eval/critic_accuracy": value}
        job(sweep, name, [f"reward.extra.realism.weight={name}"], result, "eval/critic_accuracy")
    report = build_report(read_sweep(sweep), sweep)
    assert [r.job for r in report.ranked] == ["0", "1", "2"] and report.best.job == "0"
    assert report.best_meeting_checks.job == "1"
    assert cli.main(["sweep-report", str(sweep)]) == 0
    markdown = (sweep / "sweep_report.md").read_text()
    assert "job 1, `eval/critic_accuracy` = 0.66" in markdown
    assert "fails tonic start >= 28.8%" in markdown
    assert "fails log p per onset within 0.5 nats" in markdown
    rows = {r["job"]: r for r in csv.DictReader((sweep / "sweep_report.csv").open())}
    assert rows["1"]["checks_failed"] == "" and "tonic" in rows["0"]["checks_failed"]
