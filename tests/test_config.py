"""Typed task configs: a misspelt key or a wrong type fails before any work; a resumed run may
not silently train with changed values; the CLI hands the task's objective to Hydra."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from rlmusic import cli
from rlmusic.config import ConfigError, validate_config
from rlmusic.config.schemas import TASK_SCHEMAS
from rlmusic.tasks import finetune
from tests.conftest import tiny_batched_run

TASKS = sorted(TASK_SCHEMAS)


def tiny_run(checkpoint: Path) -> list[str]:
    """Overrides for a one-iteration batched run of the tiny model."""
    return [f"checkpoint={checkpoint}", *tiny_batched_run(checkpoint)]


def composed(task: str, overrides: list[str] | None = None):
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(task, overrides=overrides or [])


@pytest.mark.parametrize("task", TASKS)
def test_every_task_default_config_fits_its_schema(task: str) -> None:
    validate_config(task, composed(task))


@pytest.mark.parametrize("algo", ["batched", "ppo", "rl_tuner"])
def test_every_algorithm_config_fits_its_schema(algo: str) -> None:
    cfg = validate_config("finetune", composed("finetune", [f"algo={algo}"]))
    finetune.check_algo(cfg)  # the algorithm's own config class


def plain(overrides: list[str] | None = None) -> DictConfig:
    """A composed finetune config as plain data (as a saved run's config is read back)."""
    return OmegaConf.create(OmegaConf.to_container(composed("finetune", overrides)))


def test_a_wrong_type_names_the_key_the_value_and_the_type() -> None:
    with pytest.raises(
        ConfigError, match=r"algo.lr=abc: config key 'algo.lr' expects float, got 'abc' \(str\)"
    ):
        cli.check_overrides("finetune", ["algo.lr=abc"])  # Hydra's composition refuses it
    cfg = plain()
    cfg.algo.lr = "abc"
    with pytest.raises(ConfigError, match=r"'algo.lr' expects float, got 'abc' \(str\)"):
        finetune.check_algo(cfg)


def test_a_misspelt_key_is_named() -> None:
    with pytest.raises(ConfigError, match=r"algo.lrr=0.1: unknown config key 'algo.lrr'"):
        cli.check_overrides("finetune", ["algo.lrr=0.1"])
    cfg = composed("finetune", ["+algo.lrr=0.1"])  # `+` adds it past the class
    with pytest.raises(ConfigError, match=r"unknown config key 'algo.lrr'"):
        finetune.check_algo(cfg)


def test_a_bad_value_is_named_by_the_algorithms_config_class() -> None:
    with pytest.raises(ConfigError, match=r"algo.variant='zz' is not known"):
        finetune.check_algo(composed("finetune", ["algo=rl_tuner", "algo.variant=zz"]))


def test_values_are_converted_to_their_declared_types() -> None:
    cfg = plain(["seed=3"])
    cfg.algo.lr = 1
    cfg = finetune.check_algo(cfg)
    assert isinstance(cfg.algo.lr, float) and cfg.algo.lr == 1.0


def test_a_required_value_left_unset_is_named() -> None:
    cfg = composed("finetune", ["~seed"])
    with pytest.raises(ConfigError, match=r"\['seed'\] must be set"):
        validate_config("finetune", cfg)


def test_cli_fails_before_any_work_on_a_bad_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["finetune", "algo.lr=abc", f"hydra.run.dir={tmp_path}"])
    assert exited.value.code == 2
    assert "config key 'algo.lr' expects float, got 'abc'" in capsys.readouterr().err
    assert not (tmp_path / "run_config.yaml").exists()


def test_resuming_with_a_changed_training_value_is_an_error_until_allowed(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    from rlmusic.tasks import finetune

    base = tiny_run(tiny_checkpoint)
    run = tmp_path / "run"
    finetune.run(composed("finetune", base), output_dir=run)
    # a longer budget is a resume, not a change
    again = finetune.run(composed("finetune", [*base, "algo.iterations=2"]), output_dir=run)
    assert again.resumed_from == 1 and again.steps == 2
    changed = [*base, "algo.iterations=3", "algo.lr=0.5"]
    with pytest.raises(ConfigError, match=r"algo.lr: 8e-05 -> 0.5.*allow_config_change=true"):
        finetune.run(composed("finetune", changed), output_dir=run)
    resumed = finetune.run(
        composed("finetune", [*changed, "allow_config_change=true"]), output_dir=run
    )
    assert resumed.steps == 3
    trainer = resumed.extras["trainer"]
    assert trainer.optimizer.param_groups[0]["lr"] == 0.5  # the new value is what trains
    assert (run / "run_config.1.yaml").exists()  # the old config is kept


def test_objective_value_reads_the_named_metric() -> None:
    class Result:
        metrics = {"final/reward/total": 3.5}

    assert cli.objective_value(Result(), "final/reward/total") == 3.5
    assert cli.objective_value(Result(), None) is None
    assert cli.objective_value({"metrics": {"a": 1}}, "a") == 1.0
    # a name the preflight could not refuse: one line at the end, not a KeyError traceback
    with pytest.raises(ConfigError, match="known: \\['final/reward/total'\\]"):
        cli.objective_value(Result(), "missing")


def test_the_task_main_returns_the_objective_to_hydra(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = composed("finetune", [*tiny_run(tiny_checkpoint), "objective=final/policy/entropy"])
    monkeypatch.chdir(tmp_path)  # outside Hydra the run goes to outputs/finetune under the cwd
    results = []
    run = finetune.run

    def recording_run(cfg, *args, **kwargs):
        results.append(run(cfg, *args, **kwargs))
        return results[-1]

    monkeypatch.setattr(finetune, "run", recording_run)
    value = cli.task_main("finetune", cfg)
    (result,) = results
    # what Hydra gets is the run's own metric of that name, not another of its numbers (the
    # entropy, where the distinct share of a tiny run is 1.0 in more than one metric)
    assert value == result.metrics["final/policy/entropy"] > 0
    others = {k: v for k, v in result.metrics.items() if k != "final/policy/entropy"}
    assert value not in others.values()
    assert (tmp_path / "outputs" / "finetune" / "tuned.safetensors").exists()
