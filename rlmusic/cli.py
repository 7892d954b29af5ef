"""`rlmusic <task> [hydra overrides]`: thin dispatch to the Hydra task entry points.

Every task is a module with ``run(cfg) -> object`` (testable without Hydra) and a config
``conf/<task>.yaml``. Hydra's own flags (``-m`` for sweeps, ``--cfg job``, ``--help``) pass
straight through, so ``rlmusic pretrain -m model=lstm,transformer`` is a sweep.

A user's mistake (:class:`rlmusic.errors.UserError`: a bad config value, a missing or damaged
checkpoint, an unreadable input, a missing optional dependency) is one line on stderr,
``error: <message>``, and exit status 2; ``HYDRA_FULL_ERROR=1`` shows its traceback instead.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from rlmusic.errors import (
    EXIT_USER_ERROR,
    MissingDependencyError,
    UserError,
    full_traceback_wanted,
    one_line,
)

# task name -> (module with run(cfg), config name in conf/, one-line description)
TASKS: dict[str, tuple[str, str, str]] = {
    "data": (
        "rlmusic.tasks.data",
        "prepare_data",
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
        "list_rewards",
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
    "harmonise": (
        "rlmusic.tasks.harmonise",
        "harmonise",
        "alto, tenor and bass under melodies (MIDI / MusicXML / ABC files) by a harmoniser",
    ),
}

# tasks whose first bare argument (no `=`) is the value of a config key: `rlmusic sweep-report DIR`
POSITIONAL: dict[str, str] = {"sweep-report": "dir"}

# tasks with a dict of the user's own names (`rlmusic compare models.tuned=DIR`): Hydra refuses a
# new key without `+`, so `<key>.NAME=VALUE` is passed on as `++<key>.NAME=VALUE` (add or override)
OPEN_DICTS: dict[str, str] = {"compare": "models", "listen": "models"}

CONFIG_MODULE = "rlmusic.conf"


@dataclass(frozen=True)
class Plugin:
    """A Hydra plug-in of an optional extra: what it is, the modules it needs, and the extra."""

    what: str
    modules: tuple[str, ...]
    extra: str = "sweeps"


_JOBLIB = Plugin("the joblib launcher", ("hydra_plugins.hydra_joblib_launcher", "joblib"))
_SUBMITIT = Plugin("the SLURM launcher", ("hydra_plugins.hydra_submitit_launcher", "submitit"))
_RAY = Plugin("the Ray launcher", ("hydra_plugins.hydra_ray_launcher", "ray"))
_OPTUNA = Plugin("the Optuna sweeper", ("hydra_plugins.hydra_optuna_sweeper", "optuna"))

# Hydra group -> option (conf/hydra/launcher/*.yaml and the plug-ins' own configs they extend)
# -> the plug-in it needs. Without it Hydra fails while composing, before any task runs.
OPTIONAL_PLUGINS: dict[str, dict[str, Plugin]] = {
    "hydra/launcher": {
        "local": _JOBLIB,
        "joblib": _JOBLIB,
        "slurm": _SUBMITIT,
        "submitit_slurm": _SUBMITIT,
        "submitit_local": _SUBMITIT,
        "ray_cluster": _RAY,
        "ray": _RAY,
        "ray_aws": _RAY,
    },
    "hydra/sweeper": {"optuna": _OPTUNA},
}

# keys a release renamed or removed -> what replaced them: the command line is told, instead of
# Hydra's "Could not override" (the old key no longer exists in the config)
RENAMED_KEYS: dict[str, str] = {
    "data.seed": "data.split_seed (the held-out split no longer follows the run's seed; "
    "data.split_seed='${seed}' makes it follow on purpose)",
    "final_eval.data_seed": "data.split_seed (one split for every evaluation and critic)",
}

# overrides that may choose a launcher or sweeper: the groups themselves, or a config that
# overrides them (hparams_search=*, experiment=*)
_CHOOSES_PLUGIN = re.compile(
    r"^(?:override\s+|\+{1,2})?/?(?:hydra/launcher|hydra/sweeper|hparams_search|experiment)="
)


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
        ConfigError: the result has no such metric (the message lists the ones it has). The
            task's preflight refuses such a name before any work where it can
            (:mod:`rlmusic.config.preflight`); this is the last word for the rest.
    """
    from rlmusic.config import ConfigError

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
    raise ConfigError(f"objective={name!r} is not a metric of this task's result; known: {known}")


def report_user_error(exc: BaseException) -> None:
    """Print a user's mistake as the one line ``error: <message>`` on stderr."""
    print(f"error: {one_line(exc)}", file=sys.stderr)


def _exit_on_user_error(exc: UserError) -> NoReturn:
    """One line and exit status 2 for a user's mistake; its traceback when the user asked
    for tracebacks (``HYDRA_FULL_ERROR=1``: Hydra, around the task, then prints it)."""
    if full_traceback_wanted():
        raise exc
    report_user_error(exc)
    # SystemExit passes through Hydra's error report (it catches Exception) untouched
    raise SystemExit(EXIT_USER_ERROR) from None


def checked_config(config_name: str, module: Any, cfg: Any, task: str | None = None) -> Any:
    """``cfg`` checked before any work: against its task's schema (keys and types), then
    every check its values allow (:func:`rlmusic.config.preflight.preflight`: counts, model
    lists and specs, the device, the objective among the metrics the task's module names
    with ``metric_names(cfg)``, else those its config decides).

    Raises:
        UserError: the first mistake, naming the key and the value.
    """
    from rlmusic.config import validate_config
    from rlmusic.config.preflight import preflight
    from rlmusic.evaluation.columns import spec_kind

    cfg = validate_config(config_name, cfg)
    names = getattr(module, "metric_names", None)
    # the preflight names the task as the user typed it (`rlmusic data`, not its config file)
    preflight(task or config_name, cfg, names(cfg) if names else None, resolve_spec=spec_kind)
    return cfg


def task_main(task: str, cfg: Any) -> float | None:
    """What Hydra's main runs: check ``cfg`` (:func:`checked_config`, before any work), run
    the task, and return its ``objective`` metric (a sweeper optimises what this returns).
    A user's mistake (a bad value, a missing checkpoint or input, ...) exits with status 2 and
    one line naming it."""
    from rlmusic.sweeps.records import sweep_job_folder

    module_name, config_name, _ = TASKS[task]
    module = importlib.import_module(module_name)
    job_dir = sweep_job_folder()
    if job_dir is not None:
        return _sweep_job(task, module, config_name, cfg, job_dir)
    try:
        cfg = checked_config(config_name, module, cfg, task)
        result = module.run(cfg)
        return objective_value(result, cfg.get("objective"))
    except UserError as exc:
        _exit_on_user_error(exc)


def _sweep_job(task: str, module: Any, config_name: str, cfg: Any, job_dir: Any) -> float | None:
    """One job of a Hydra multirun: run it as :func:`task_main` runs a single run, and record
    it in its folder (``job_result.json``: status, objective, metrics; ``error.txt`` when it
    fails). A job that fails, a bad config value included, is logged and recorded and returns
    the worst objective value instead of raising: Hydra's sweepers end the whole sweep on one
    job's exception (the basic sweeper after the batch, Optuna at once)."""
    import logging
    import time

    from rlmusic.sweeps.records import numeric_metrics, record_failure, record_success

    started = time.perf_counter()
    objective = cfg.get("objective")
    direction = cfg.get("objective_direction") or "maximize"
    result = None
    try:
        cfg = checked_config(config_name, module, cfg, task)
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


def _config_overrides(args: Sequence[str]) -> list[str]:
    """The ``key=value`` overrides of a command line, without Hydra's flags and their values."""
    out, flag_value = [], False
    for arg in args:
        if not flag_value and not arg.startswith("-") and "=" in arg:
            out.append(arg)
        flag_value = arg in _FLAGS_WITH_VALUE
    return out


def _chosen(overrides: Sequence[str], group: str) -> str | None:
    """The override that names ``group`` itself (``hydra/launcher=ray_cluster``), if any."""
    for arg in overrides:
        key = re.sub(r"^(?:override\s+|\+{1,2})?/?", "", arg).split("=", 1)[0]
        if key == group:
            return arg
    return None


def check_renamed(args: Sequence[str]) -> None:
    """Refuse an override of a key a release renamed (:data:`RENAMED_KEYS`), naming its heir.

    Raises:
        ConfigError: ``data.seed=1`` -> "data.seed was renamed: use data.split_seed ...".
    """
    from rlmusic.config import ConfigError

    for arg in _config_overrides(args):
        key = _override_key(arg)
        if key in RENAMED_KEYS:
            raise ConfigError(f"{arg}: {key} was renamed: use {RENAMED_KEYS[key]}")


def check_plugins(task: str, args: Sequence[str]) -> None:
    """Refuse a launcher or sweeper whose optional plug-in is not installed, by name, before
    Hydra fails on it with a traceback (``hydra/launcher=ray_cluster`` without Ray). Composes
    the config only when an override may choose one; anything else wrong with the command line
    is left to Hydra to report.

    Raises:
        MissingDependencyError: naming the option, what it needs and the extra to install.
    """
    overrides = _config_overrides(args)
    if not any(_CHOOSES_PLUGIN.match(arg) for arg in overrides):
        return
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import MissingConfigException
    from hydra.types import RunMode

    needed: list[tuple[str, str, Plugin]] = []  # (group, option, plug-in)
    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
        loader = GlobalHydra.instance().config_loader()
        try:  # as Hydra composes to find the run mode: sweep values (a,b) are not expanded
            cfg = loader.load_configuration(
                TASKS[task][1], list(overrides), RunMode.MULTIRUN, validate_sweep_overrides=False
            )
        except MissingConfigException as exc:  # a plug-in's own config is missing
            group, _, option = str(exc.missing_cfg_file or "").rpartition("/")
            plugin = OPTIONAL_PLUGINS.get(group, {}).get(option)
            if plugin is None:
                return
            needed.append((group, option, plugin))
        except Exception:  # Hydra reports it, as it would without this check
            return
        else:
            choices = cfg.hydra.runtime.choices
            for group, options in OPTIONAL_PLUGINS.items():
                option = choices.get(group)
                if option in options:
                    needed.append((group, str(option), options[option]))
    for group, option, plugin in needed:
        missing = [m for m in plugin.modules if not _importable(m)]
        if not missing:
            continue
        setters = ", ".join(arg for arg in overrides if _CHOOSES_PLUGIN.match(arg))
        given = _chosen(overrides, group) or f"{group}={option} (set by {setters})"
        raise MissingDependencyError(
            f"{given} needs {plugin.what}, which is not installed (no module "
            f"{', '.join(missing)}): pip install 'rlmusic[{plugin.extra}]'"
        )


def check_overrides(task: str, args: Sequence[str]) -> None:
    """Refuse an override that does not fit its key's type, or names no key, as one line.

    Hydra checks overrides of the typed nodes (an algorithm's config class, registered by
    conf/__init__.py) while composing, and reports a failure in several lines with exit
    status 1; this composes first (sweep values unexpanded) and names the override instead.
    Anything else wrong is left to Hydra.

    Raises:
        ConfigError: ``algo.lr=abc`` -> "algo.lr=abc: config key 'algo.lr' expects float, ...".
    """
    overrides = _config_overrides(args)
    if not overrides:
        return
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import ConfigCompositionException
    from hydra.types import RunMode
    from omegaconf.errors import OmegaConfBaseException

    from rlmusic.config import ConfigError
    from rlmusic.config.validate import describe_error

    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
        loader = GlobalHydra.instance().config_loader()
        try:
            loader.load_configuration(
                TASKS[task][1], list(overrides), RunMode.MULTIRUN, validate_sweep_overrides=False
            )
        except ConfigCompositionException as exc:
            cause = exc.__cause__
            if not isinstance(cause, OmegaConfBaseException):
                return  # Hydra reports it, as it would without this check
            key = getattr(cause, "full_key", None) or "?"
            given = next((a for a in overrides if _override_key(a) == key), None)
            value = given.split("=", 1)[1] if given else "?"
            raise ConfigError(f"{given or key}: {describe_error(cause, key, value)}") from None
        except Exception:  # Hydra reports it, as it would without this check
            return


def _override_key(arg: str) -> str:
    return re.sub(r"^(?:override\s+|[+~]{1,2})?", "", arg).split("=", 1)[0]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or half-installed
        return False


def run_task(task: str, overrides: Sequence[str]) -> None:
    """Run ``task`` under Hydra's main with ``overrides`` as its command line.

    Raises:
        MissingDependencyError: the command line asks for a launcher or sweeper that is not
            installed (raised before Hydra starts).
        SystemExit: status 2 after one line for a user's mistake found in the task.
    """
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
    args = _positional(task, overrides)
    check_renamed(args)
    check_plugins(task, args)
    check_overrides(task, args)
    sys.argv = [f"rlmusic {task}", *args]
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
        return EXIT_USER_ERROR
    try:
        run_task(task, overrides)
    except UserError as exc:  # found before Hydra started (inside it, task_main exits itself)
        _exit_on_user_error(exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
