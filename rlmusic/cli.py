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
}

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

    module_name, config_name, _ = TASKS[task]
    module = importlib.import_module(module_name)
    try:
        cfg = validate_config(config_name, cfg)
    except ConfigError as exc:  # a user's typo: one clear line, no traceback
        print(f"rlmusic: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    result = module.run(cfg)
    return objective_value(result, cfg.get("objective"))


def run_task(task: str, overrides: Sequence[str]) -> None:
    """Run ``task`` under Hydra's main with ``overrides`` as its command line."""
    import hydra
    from omegaconf import DictConfig

    config_name = TASKS[task][1]

    @hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name=config_name)
    def _main(cfg: DictConfig) -> float | None:
        return task_main(task, cfg)

    sys.argv = [f"rlmusic {task}", *overrides]
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
