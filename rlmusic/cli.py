"""`rlmusic <task> [hydra overrides]`: thin dispatch to the Hydra task entry points.

Every task is a module with ``run(cfg) -> object`` (testable without Hydra) and a config
``conf/<task>.yaml``. Hydra's own flags (``-m`` for sweeps, ``--cfg job``, ``--help``) pass
straight through, so ``rlmusic pretrain -m model=lstm,transformer`` is a sweep.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

# task name -> (module with run(cfg), config name in conf/, one-line description)
TASKS: dict[str, tuple[str, str, str]] = {
    "data": (
        "rlmusic.tasks.data",
        "data",
        "prepare a corpus (cached .npz splits) and print its summary",
    ),
    "pretrain": (
        "rlmusic.tasks.pretrain",
        "pretrain",
        "train a NoteLSTM / MusicTransformer by MLE (resumable; torchrun for DDP)",
    ),
    "sample": (
        "rlmusic.tasks.sample",
        "sample",
        "sample MIDI / MusicXML from a checkpoint or pretrained:<name>",
    ),
    "rewards": (
        "rlmusic.tasks.rewards",
        "rewards",
        "list the reward terms with one-line descriptions",
    ),
    "finetune": (
        "rlmusic.tasks.finetune",
        "finetune",
        "RL fine-tuning of a generator against a reward (algo=batched | ppo | rl_tuner)",
    ),
    "evaluate": (
        "rlmusic.tasks.evaluate",
        "evaluate",
        "RL Tuner's table and realism measures for checkpoints",
    ),
    "train-critic": (
        "rlmusic.tasks.train_critic",
        "train_critic",
        "train a learned critic reward (critic=discriminator | ensemble | preference)",
    ),
    "sweep-report": (
        "rlmusic.tasks.sweep_report",
        "sweep_report",
        "one table (CSV, Markdown) and a plot of a sweep folder's runs, ranked by the objective",
    ),
    "compare": (
        "rlmusic.tasks.compare",
        "compare",
        "models side by side with bootstrap intervals: report.html with plots, piano rolls, audio",
    ),
    "listen": (
        "rlmusic.tasks.listen",
        "listen",
        "a static blind A/B listening page of two models; answers download as preferences",
    ),
}

# tasks whose first bare argument (no `=`) is the value of a config key: `rlmusic sweep-report DIR`
POSITIONAL: dict[str, str] = {"sweep-report": "dir"}

# tasks with a dict of the user's own names (`rlmusic compare models.tuned=DIR`): Hydra refuses a
# new key without `+`, so `<key>.NAME=VALUE` is passed on as `++<key>.NAME=VALUE` (add or override)
OPEN_DICTS: dict[str, str] = {"compare": "models", "listen": "models"}

CONFIG_MODULE = "rlmusic.conf"


def usage() -> str:
    width = max(len(name) for name in TASKS)
    lines = [
        "usage: rlmusic <task> [hydra overrides ...]   (rlmusic <task> --help for its config)",
        "",
        "tasks:",
    ]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, _, desc) in TASKS.items()]
    lines += [
        "",
        "Sweeps: rlmusic <task> -m key=a,b  (Hydra multirun; pip install rlmusic[sweeps] for the joblib/submitit/ray launchers)",
    ]
    return "\n".join(lines)


def objective_value(result: Any, name: str | None) -> float | None:
    """The metric ``name`` of a task's result (``result.metrics[name]``, ``result[name]`` or an
    attribute), as the number a Hydra sweeper optimises; None when ``name`` is None.

    Raises:
        KeyError: the result has no such metric (the message lists the ones it has).
    """
    if name is None:
        return None
    metrics = getattr(result, "metrics", None)
    if metrics is None and isinstance(result, Mapping):
        metrics = result.get("metrics", result)
    if isinstance(metrics, Mapping) and name in metrics:
        return float(metrics[name])
    if hasattr(result, name):
        return float(getattr(result, name))
    known = sorted(metrics) if isinstance(metrics, Mapping) else []
    raise KeyError(f"objective={name!r} is not a metric of this task's result; known: {known}")


def task_main(task: str, cfg: Any) -> float | None:
    """What Hydra's main runs: check ``cfg`` against the task's schema (a bad value exits with
    status 2 and one line naming it, before any work), run the task, and return its
    ``objective`` metric (a sweeper optimises what this returns)."""
    from rlmusic.config import ConfigError, validate_config
    from rlmusic.sweeps.records import sweep_job_folder

    module_name, config_name, _ = TASKS[task]
    module = importlib.import_module(module_name)
    job_dir = sweep_job_folder()
    if job_dir is not None:
        return _sweep_job(task, module, config_name, cfg, job_dir)
    try:
        cfg = validate_config(config_name, cfg)
    except ConfigError as exc:  # a user's typo: one clear line, no traceback
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None
    result = module.run(cfg)
    return objective_value(result, cfg.get("objective"))


def _sweep_job(task: str, module: Any, config_name: str, cfg: Any, job_dir: Any) -> float | None:
    """One job of a Hydra multirun: run it as :func:`task_main` runs a single run, and record
    it in its folder (``job_result.json``: status, objective, metrics; ``error.txt`` when it
    fails). A job that fails, a bad config value included, is logged and recorded and returns
    the worst objective value instead of raising: Hydra's sweepers end the whole sweep on one
    job's exception (the basic sweeper after the batch, Optuna at once)."""
    import logging
    import time

    from rlmusic.config import validate_config
    from rlmusic.sweeps.records import numeric_metrics, record_failure, record_success

    started = time.perf_counter()
    objective = cfg.get("objective")
    direction = cfg.get("objective_direction") or "maximize"
    result = None
    try:
        cfg = validate_config(config_name, cfg)
        result = module.run(cfg)
        value = objective_value(result, cfg.get("objective"))
    except Exception as exc:  # the sweep goes on; KeyboardInterrupt still stops it
        logging.getLogger("rlmusic").exception("rlmusic %s: job %s failed", task, job_dir)
        return record_failure(
            job_dir,
            task,
            exc,
            objective,
            direction,
            time.perf_counter() - started,
            numeric_metrics(result) if result is not None else None,
        )
    record_success(
        job_dir,
        task,
        objective,
        direction,
        value,
        numeric_metrics(result),
        time.perf_counter() - started,
    )
    return value


def _positional(task: str, overrides: Sequence[str]) -> list[str]:
    """``rlmusic sweep-report DIR`` -> ``dir='DIR'`` (quoted: a path may hold Hydra's special
    characters); only a task in :data:`POSITIONAL` takes one, and only its first bare word
    (not a Hydra flag's value: ``--cfg job``)."""
    key, out, taken, flag_value = POSITIONAL.get(task), [], False, False
    for arg in overrides:
        bare = "=" not in arg and not arg.startswith("-") and not flag_value
        flag_value = arg in _FLAGS_WITH_VALUE
        if key and not taken and bare:
            quoted = arg.replace("'", "\\'")
            out.append(f"{key}='{quoted}'")
            taken = True
        else:
            out.append(arg)
    return out


_FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--info", "-i"}
_FLAGS_WITH_VALUE |= {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"}


def run_task(task: str, overrides: Sequence[str]) -> None:
    """Run ``task`` under Hydra's main with ``overrides`` as its command line."""
    import hydra
    from omegaconf import DictConfig

    config_name = TASKS[task][1]

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name=config_name)
    def _main(cfg: DictConfig) -> float | None:
        return task_main(task, cfg)

    open_dict = OPEN_DICTS.get(task)
    if open_dict:  # see OPEN_DICTS
        prefix = f"{open_dict}."
        overrides = [f"++{a}" if a.startswith(prefix) and "=" in a else a for a in overrides]
    sys.argv = [f"rlmusic {task}", *_positional(task, overrides)]
    _main()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    task, overrides = args[0], args[1:]
    if task not in TASKS:
        print(f"rlmusic: unknown task {task!r}; known tasks: {', '.join(TASKS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return 2
    run_task(task, overrides)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
