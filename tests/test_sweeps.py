"""Real multiruns of `rlmusic finetune` with tiny models: on the joblib launcher (2 workers) with
a run that fails on purpose, an Optuna search, and (slow) local Ray; each read back by
`rlmusic sweep-report`. The objective is the end-of-run evaluation's interval L1 against a
small MIDI corpus written here."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_module

from rlmusic import cli
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.prepare import prepare_corpus
from rlmusic.evaluation.metrics import abs_interval_l1
from rlmusic.evaluation.objective import (
    critic_wanted,
    final_eval_wanted,
    final_evaluation,
    held_out_openings,
    metric_name,
)
from rlmusic.models import load_generator
from rlmusic.models.sampling import sample_seeded
from tests.conftest import make_tiny_checkpoint, tiny_batched_run, write_midi

SCALE = [60, 62, 64, 65, 67, 69, 71, 72, 74]


def tune(seed: int, notes: int = 24) -> list[tuple[int, float, float]]:
    """A seeded C major melody of eighth notes by steps and thirds (distinct per seed)."""
    rng = np.random.default_rng(seed)
    degree, out = 4, []
    for i in range(notes):
        degree = int(np.clip(degree + rng.choice([-2, -1, 1, 2]), 0, len(SCALE) - 1))
        out.append((SCALE[degree], i / 2, (i + 1) / 2))
    return out


@pytest.fixture(scope="module")
def sweep_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two tiny checkpoints, a 12-tune MIDI corpus (half of it the test split) with its cache
    built once (parallel jobs would all build it at once), and the overrides of a tiny run."""
    root = tmp_path_factory.mktemp("sweep_inputs")
    for i in range(12):
        write_midi(root / "midi" / f"t{i}.mid", tune(i))
    a, b = make_tiny_checkpoint(root, seed=0), make_tiny_checkpoint(root, seed=1)
    data = [
        "data=midi_dir",
        f"data.path={root / 'midi'}",
        f"data.cache_dir={root / 'cache'}",
        "data.test_fraction=0.5",
        "data.min_notes=4",
        "data.workers=1",
    ]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=data)
    prepare_corpus(cfg.data, MelodyEncoding(), progress=False)
    tiny = [
        *tiny_batched_run(a),
        "final_eval.n=32",
        # the realism critic this MIDI data gets (checkpoint: auto), tiny: the test's budget
        "+reward.extra.realism.auto={steps: 10, windows: 256, samples: 64}",
        *data,
    ]
    return {"a": a, "b": b, "missing": root / "missing.safetensors", "tiny": tiny}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def report(sweep_dir: Path, *overrides: str) -> list[dict[str, str]]:
    """`rlmusic sweep-report DIR` in this process; the CSV's rows."""
    assert cli.main(["sweep-report", str(sweep_dir), *overrides]) == 0
    assert (sweep_dir / "sweep_report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return read_csv(sweep_dir / "sweep_report.csv")


def test_joblib_sweep_with_a_failing_run_is_recorded_and_reported(
    sweep_inputs: dict, tmp_path: Path
) -> None:
    plugin = "hydra_plugins.hydra_joblib_launcher"
    if importlib.util.find_spec(plugin) is None:
        pytest.skip('hydra-joblib-launcher is not installed (pip install "rlmusic[sweeps]")')
    sweep = tmp_path / "sweep"
    checkpoints = f"checkpoint={sweep_inputs['a']},{sweep_inputs['missing']},{sweep_inputs['b']}"
    cli.run_task(
        "finetune",
        [
            "-m",
            *sweep_inputs["tiny"],
            checkpoints,
            "objective=eval/interval_l1",
            "objective_direction=minimize",
            "hydra/launcher=local",  # joblib, 2 worker processes
            f"hydra.sweep.dir={sweep}",
        ],
    )
    launcher = yaml.safe_load((sweep / "multirun.yaml").read_text())["hydra"]["launcher"]
    assert launcher["_target_"].endswith("JoblibLauncher") and launcher["n_jobs"] == 2

    # the run that failed is recorded with its error; the sweep went on to the third
    failed = json.loads((sweep / "1" / "job_result.json").read_text())
    assert failed["status"] == "failed" and "no such checkpoint" in failed["error"]
    assert "CheckpointError" in (sweep / "1" / "error.txt").read_text()
    done = [json.loads((sweep / j / "job_result.json").read_text()) for j in ("0", "2")]
    assert [r["status"] for r in done] == ["ok", "ok"]
    for record in done:
        assert record["value"] == record["metrics"]["eval/interval_l1"] > 0
        assert record["direction"] == "minimize" and "final/reward/total" in record["metrics"]

    rows = report(sweep)
    assert len(rows) == 3  # one row per run
    values = [float(r["objective:eval/interval_l1"]) for r in rows if r["status"] == "ok"]
    assert values == sorted(values) and len(values) == 2  # minimised: best first
    assert rows[-1]["job"] == "1" and rows[-1]["status"] == "failed"
    assert "no such checkpoint" in rows[-1]["error"]
    markdown = (sweep / "sweep_report.md").read_text()
    assert "## Failed runs (1)" in markdown and "missing.safetensors" in markdown

    # the objective is what the evaluation says it is: the tuned model's samples against the
    # held-out openings of the test split, recomputed here from the files the job left
    job = sweep / "0"
    model, encoding = load_generator(str(job / "tuned.safetensors"))
    tokens, _ = sample_seeded(model, 32, 8, seed=0)
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=sweep_inputs["tiny"])
    reference = held_out_openings(cfg, encoding, 8)
    assert abs_interval_l1(tokens, reference, encoding) == pytest.approx(done[0]["value"])
    saved = json.loads((job / "final_eval.json").read_text())
    assert saved["n"] == 32 and saved["held_out"] == len(reference) > 0


def optuna_installed() -> None:
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        pytest.skip('hydra-optuna-sweeper is not installed (pip install "rlmusic[sweeps]")')


def test_optuna_search_of_three_trials_returns_its_best_and_survives_a_failure(
    sweep_inputs: dict, tmp_path: Path
) -> None:
    optuna_installed()
    sweep = tmp_path / "search"
    missing = sweep_inputs["missing"]
    # Optuna's grid sampler over three start models, so that the failing one is surely among
    # the three trials; the objective is minimised
    cli.run_task(
        "finetune",
        [
            "-m",
            *sweep_inputs["tiny"],
            "hydra/sweeper=optuna",
            "hydra/sweeper/sampler=grid",
            "hydra.sweeper.direction=minimize",
            "objective=eval/interval_l1",
            "objective_direction=minimize",
            f"checkpoint=choice({sweep_inputs['a']},{sweep_inputs['b']},{missing})",
            "hydra.sweeper.n_trials=3",
            f"hydra.sweep.dir={sweep}",
        ],
    )
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/job_result.json"))]
    assert len(results) == 3 and sorted(r["status"] for r in results) == ["failed", "ok", "ok"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [r["value"] for r in results if r["status"] == "ok"]
    assert best["best_value"] == pytest.approx(min(values))
    assert best["best_params"]["checkpoint"] != str(missing)

    rows = report(sweep)
    assert rows[0]["checkpoint"] == best["best_params"]["checkpoint"]
    assert float(rows[0]["objective:eval/interval_l1"]) == pytest.approx(best["best_value"])
    assert "Optuna's best" in (sweep / "sweep_report.md").read_text()


def test_the_finetune_optuna_search_runs_three_tpe_trials(
    sweep_inputs: dict, tmp_path: Path
) -> None:
    optuna_installed()
    sweep = tmp_path / "tpe"
    cli.run_task(
        "finetune",
        [
            "hparams_search=finetune_optuna",  # its hydra.mode is MULTIRUN: no -m
            *sweep_inputs["tiny"],
            f"checkpoint={sweep_inputs['a']}",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.n_jobs=1",
            f"hydra.sweep.dir={sweep}",
        ],
    )
    rows = report(sweep)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    swept = {"algo.kl_coef", "algo.kl_pitch_coef", "algo.lr", "reward.c"}
    assert swept <= set(rows[0]) and len({r["algo.lr"] for r in rows}) == 3
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert float(rows[0]["objective:eval/interval_l1"]) == pytest.approx(best["best_value"])


@pytest.mark.slow
def test_local_ray_sweep(sweep_inputs: dict, tmp_path: Path) -> None:
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None:
        pytest.skip('hydra-ray-launcher is not installed (pip install "rlmusic[sweeps]")')
    sweep = tmp_path / "ray"
    cli.run_task(
        "finetune",
        [
            "-m",
            *sweep_inputs["tiny"],
            f"checkpoint={sweep_inputs['a']}",
            "algo.kl_coef=1,3",
            "objective=eval/interval_l1",
            "objective_direction=minimize",
            "hydra/launcher=ray_cluster",  # no RAY_ADDRESS: a local Ray
            "hydra.launcher.ray.init.num_cpus=2",
            f"hydra.sweep.dir={sweep}",
        ],
    )
    rows = report(sweep)
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert {r["algo.kl_coef"] for r in rows} == {"1", "3"}


def test_final_evaluation_is_off_unless_asked_and_reads_nothing_then() -> None:
    off = {"objective": "final/reward/total", "final_eval": {"enabled": False, "n": 200}}
    # result and setup are never touched when the evaluation is off (no corpus, no sampling)
    assert final_evaluation(off, result=None, setup=None) == {}
    assert final_eval_wanted({**off, "final_eval": {"enabled": True}})
    assert final_eval_wanted({**off, "objective": "eval/interval_l1"})  # the objective asks
    assert not critic_wanted(off)
    assert critic_wanted({**off, "final_eval": {"critic": {"enabled": True}}})
    assert critic_wanted({**off, "objective": "eval/critic_accuracy"})
    assert metric_name("interval L1 to held-out") == "eval/interval_l1"
    assert metric_name("notes in motif") == "eval/notes_in_motif"


def test_the_critic_test_as_a_run_objective(sweep_inputs: dict, tmp_path: Path) -> None:
    """`objective=eval/critic_accuracy` runs compare's two-sample critic test on the tuned
    model at the end of the run and records it with its interval."""
    run = tmp_path / "run"
    cli.run_task(
        "finetune",
        [
            *sweep_inputs["tiny"],
            f"checkpoint={sweep_inputs['a']}",
            "objective=eval/critic_accuracy",
            "objective_direction=minimize",
            "final_eval.critic.steps=20",
            "final_eval.critic.samples=40",
            f"hydra.run.dir={run}",
        ],
    )
    saved = json.loads((run / "final_eval.json").read_text())["critic accuracy"]
    assert 0.0 <= saved["low"] <= saved["value"] <= saved["high"] <= 1.0
    rows = read_csv(run / "metrics.csv")
    assert "eval/critic_accuracy" not in rows[0]  # an end-of-run figure, not a training one


def test_a_failed_job_returns_the_worst_value_never_nan() -> None:
    from rlmusic.sweeps.records import failure_value

    assert failure_value("eval/interval_l1", "minimize") == math.inf
    assert failure_value("final/reward/total", "maximize") == -math.inf
    assert failure_value(None, "maximize") is None
    with pytest.raises(ValueError, match="objective_direction"):
        failure_value("x", "minimise")
