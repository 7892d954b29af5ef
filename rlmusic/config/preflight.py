"""Every check a command can make from its config alone, made before any work.

:func:`validate_config` checks a config's keys and types; :func:`preflight` then checks what the
values mean: counts that must be positive (``n``, ``pairs``, ``length``), the model lists of
``rlmusic compare`` and ``rlmusic listen`` (given, named, each spec resolvable), the generator
specs a task loads, the device, and the ``objective`` a sweeper reads (a metric the task's
result will hold). A mistake is one :class:`~rlmusic.errors.UserError` naming the key, the value
and the fix, raised before a corpus is read or a step is trained, where it was a traceback at
the end of the run (``objective=nope``) or the start of the work (``n=0``).

The config layer knows configs, not what the code above it computes: the caller passes the
task's metric names (:class:`MetricNames`, from the task module's ``metric_names(cfg)``: e.g.
``rlmusic finetune``'s ``final/*`` and ``eval/*`` rows) and how a model spec resolves
(``rlmusic.evaluation.columns.spec_kind``); both are optional, and what is not given is not
checked.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlmusic.config.validate import ConfigError
from rlmusic.models.checkpoint import CheckpointError
from rlmusic.models.registry import PRETRAINED, PRETRAINED_PREFIX, pretrained_path

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class MetricNames:
    """The metric names a task's result can hold, as ``objective=`` names them.

    Attributes:
        exact: names in full (``final/reward/total``).
        families: prefix -> the names allowed after it, or None for any name (what a run
            decides: an algorithm's ``losses/*``, a comparison's ``<model>/<metric>``).

    >>> names = MetricNames(frozenset({"final/reward/total"}), {"losses/": None})
    >>> "final/reward/total" in names, "losses/td" in names, "losses/" in names, "x" in names
    (True, True, False, False)
    """

    exact: frozenset[str] = frozenset()
    families: Mapping[str, frozenset[str] | None] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self.exact:
            return True
        for prefix, allowed in self.families.items():
            rest = name[len(prefix) :]
            if name.startswith(prefix) and rest and (allowed is None or rest in allowed):
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.exact or self.families)

    def candidates(self) -> list[str]:
        """Every name spelt out, then each open family as ``<prefix><name>``."""
        names = set(self.exact)
        for prefix, allowed in self.families.items():
            names |= {prefix + rest for rest in allowed or ()}
        return sorted(names) + sorted(f"{p}<name>" for p, a in self.families.items() if a is None)

    def describe(self) -> str:
        """The names grouped by their first path segment, on one line:
        ``final/{kl/prior_per_token, reward/total}; losses/<name>``."""
        groups: dict[str, list[str]] = {}
        for name in self.candidates():
            head, sep, rest = name.partition("/")
            groups.setdefault(head + sep, []).append(rest if sep else head)
        parts = []
        for head, rests in groups.items():
            if not head.endswith("/"):
                parts.extend(rests)
            elif len(rests) == 1:
                parts.append(head + rests[0])
            else:
                parts.append(head + "{" + ", ".join(rests) + "}")
        return "; ".join(parts)


NO_METRICS = MetricNames()  # a task whose result has no metrics: no objective to optimise


@dataclass(frozen=True)
class Bound:
    """A number a config key must hold: ``low <= value`` (``<`` when ``open_low``) and
    ``value <= high`` (``<`` when ``open_high``); ``when`` (the config -> bool) limits it to
    the configs that read the key; an unset (null) value is not checked."""

    key: str
    low: float | None = None
    high: float | None = None
    what: str = ""
    open_low: bool = False
    open_high: bool = False
    when: Callable[[Any], bool] | None = None

    def wanted(self) -> str:
        """``>= 1``, ``in (0, 1]``, ..."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            return f"in {left}{_number(self.low)}, {_number(self.high)}{right}"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {_number(self.low)}"
        return f"{'<' if self.open_high else '<='} {_number(self.high)}"

    def holds(self, value: float) -> bool:
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return low_ok and high_ok


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _enabled(path: str) -> Callable[[Any], bool]:
    return lambda cfg: bool(OmegaConf.select(cfg, path, default=False))


def _final_eval_wanted(cfg: Any) -> bool:
    """As :func:`rlmusic.evaluation.objective.final_eval_wanted` decides (``final_eval.enabled``
    or an ``eval/*`` objective), from the config alone."""
    return bool(OmegaConf.select(cfg, "final_eval.enabled", default=False)) or str(
        cfg.get("objective") or ""
    ).startswith("eval/")


def _final_critic_wanted(cfg: Any) -> bool:
    return bool(OmegaConf.select(cfg, "final_eval.critic.enabled", default=False)) or (
        str(cfg.get("objective") or "") == "eval/critic_accuracy"
    )


_THREADS = Bound("threads", 1, what="torch CPU threads; null: torch's default")
_QPM = Bound("qpm", 0, what="the tempo in quarter notes per minute", open_low=True)

# config name -> the numbers its task reads, as the code that reads them needs them
BOUNDS: dict[str, tuple[Bound, ...]] = {
    "sample": (
        Bound("n", 1, what="the number of samples"),
        Bound("length", 0, what="steps sampled after the primer"),
        Bound("batch_size", 1, what="samples drawn at once"),
        Bound("musicxml", 0, what="MusicXML files for the first this many samples"),
        Bound("temperature", 0, what="0 = greedy"),
        Bound("top_k", 0, what="0 = off"),
        Bound("top_p", 0, 1, what="1 = off", open_low=True),
        _QPM,
        _THREADS,
    ),
    "evaluate": (
        Bound("n", 1, what="compositions sampled per model"),
        Bound("length", 1, what="steps per composition"),
    ),
    "compare": (
        Bound("n", 2, what="compositions per model: the bootstrap resamples them"),
        Bound("length", 2, what="steps per composition"),
        Bound("k", 0, what="samples shown per model"),
        Bound("bootstrap.resamples", 0, what="bootstrap resamples"),
        Bound(
            "bootstrap.confidence", 0, 1, "the interval's coverage", open_low=True, open_high=True
        ),
        Bound("diversity.ngram", 1, what="the n of distinct n-grams"),
        Bound("overlap.distances", 1, what="distances per side of the overlap areas"),
        Bound(
            "critic.holdout",
            0,
            1,
            "the share the critic test scores",
            open_low=True,
            open_high=True,
            when=_enabled("critic.enabled"),
        ),
        Bound("critic.samples", 2, what="pieces per model", when=_enabled("critic.enabled")),
        Bound("critic.real_windows", 2, what="real windows", when=_enabled("critic.enabled")),
        _QPM,
        _THREADS,
    ),
    "listen": (
        Bound("pairs", 1, what="pairs on the page"),
        Bound("length", 1, what="steps per piece"),
        _QPM,
    ),
    "finetune": (
        Bound("length", 1, what="steps per composition"),
        Bound("n_samples", 0, what="MIDI samples per sample folder"),
        Bound("final_eval.n", 1, what="compositions evaluated", when=_final_eval_wanted),
        Bound("final_eval.critic.samples", 2, what="pieces", when=_final_critic_wanted),
        _THREADS,
    ),
}


def check_bounds(task: str, cfg: Any, bounds: Iterable[Bound]) -> None:
    """Raise :class:`ConfigError` for the first value outside its :class:`Bound`."""
    for bound in bounds:
        if bound.when is not None and not bound.when(cfg):
            continue
        value = OmegaConf.select(cfg, bound.key, default=None)
        if value is None:
            continue
        if not bound.holds(float(value)):
            why = f" ({bound.what})" if bound.what else ""
            raise ConfigError(
                f"rlmusic {task}: need {bound.key} {bound.wanted()}{why}, got {bound.key}={value}"
            )


def check_direction(task: str, cfg: Any) -> None:
    """``objective_direction`` is ``maximize`` or ``minimize`` (the sweepers read it)."""
    direction = cfg.get("objective_direction")
    if direction is not None and str(direction) not in DIRECTIONS:
        raise ConfigError(
            f"rlmusic {task}: objective_direction={direction!r} is not one of {list(DIRECTIONS)}"
        )


def check_objective(task: str, cfg: Any, names: MetricNames) -> None:
    """``objective`` (when set) names a metric in ``names``.

    Raises:
        ConfigError: naming the objective, the closest metric names and every known one.
    """
    objective = cfg.get("objective")
    if objective is None or str(objective) in names:
        return
    objective = str(objective)
    if not names:
        raise ConfigError(
            f"rlmusic {task}: objective={objective!r}, but this task's result has no metrics "
            "for a sweeper to optimise: leave objective unset (objective=null)"
        )
    close = difflib.get_close_matches(objective, names.candidates(), n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise ConfigError(
        f"rlmusic {task}: objective={objective!r} is not a metric this run returns{hint}; "
        f"its metrics: {names.describe()}"
    )


def check_device(task: str, cfg: Any) -> None:
    """``device`` is ``auto`` or a torch device this machine has."""
    name = cfg.get("device")
    if name is None or str(name) == "auto":
        return
    import torch

    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"rlmusic {task}: device={name!r} is not a device (auto | cpu | cuda | cuda:1 | mps)"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ConfigError(
                f"rlmusic {task}: device={name} but this machine has {count} CUDA GPU(s) "
                "visible (device=auto uses one when there is one, else the CPU)"
            )


def check_generator_spec(key: str, spec: Any) -> None:
    """A generator spec (``pretrained:<name>``, a checkpoint file or a run folder) names
    something that exists; its contents are read, and checked, when it is loaded.

    Raises:
        CheckpointError: an unknown pretrained name (listing the known ones) or no such path.
    """
    spec = str(spec)
    if spec.startswith(PRETRAINED_PREFIX):
        pretrained_path(spec[len(PRETRAINED_PREFIX) :])  # raises naming the known ones
        return
    if not spec.strip() or not Path(spec).expanduser().exists():
        known = ", ".join(PRETRAINED_PREFIX + name for name in sorted(PRETRAINED))
        raise CheckpointError(
            f"{key}={spec}: no such checkpoint file or run folder (give a checkpoint file, a "
            f"run folder, or one of {known})"
        )


def check_models(
    task: str,
    cfg: Any,
    resolve_spec: Callable[[str], Any] | None = None,
    exactly: int | None = None,
) -> dict[str, str]:
    """The ``models`` dict of ``rlmusic compare`` / ``rlmusic listen``: at least one model
    (``exactly`` that many when given), each a name and a spec, every spec resolvable:
    ``resolve_spec(spec)`` raises for one that is not, and a ``pretrained:<name>`` is known.

    Returns:
        name -> spec.
    """
    node = cfg.get("models") or {}
    models = {str(k): v for k, v in node.items()}
    example = "models.a=pretrained:note_lstm models.b=outputs/finetune/<run>"
    if exactly is not None and len(models) != exactly:
        count = {1: "one", 2: "two", 3: "three"}.get(exactly, str(exactly))
        raise ConfigError(
            f"rlmusic {task} compares exactly {count} models ({example}), got "
            f"{len(models)}: {sorted(models)}"
        )
    if not models:
        raise ConfigError(
            f"rlmusic {task}: no models given: name each as models.NAME=SPEC (a SPEC is "
            "pretrained:<name>, a checkpoint, a run folder, a folder of MIDI files or heldout), "
            f"e.g. {example}"
        )
    for name, spec in models.items():
        if not name.strip():
            raise ConfigError(f"rlmusic {task}: a model needs a name (models.NAME=SPEC)")
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(
                f"rlmusic {task}: models.{name}={spec!r}: a spec is a non-empty string "
                "(pretrained:<name>, a checkpoint, a run folder, a MIDI folder or heldout)"
            )
        if spec.startswith(PRETRAINED_PREFIX):
            check_generator_spec(f"models.{name}", spec)
        elif resolve_spec is not None:
            resolve_spec(spec)
    return {name: str(spec) for name, spec in models.items()}


def compare_metric_names(cfg: Any) -> MetricNames:
    """``rlmusic compare``'s result: ``<model>/<metric>`` per configured model, and the critic
    test's own rows as ``critic/<row>`` when the test runs (rlmusic.tasks.compare)."""
    families: dict[str, frozenset[str] | None] = {
        f"{name}/": None for name in (cfg.get("models") or {})
    }
    if OmegaConf.select(cfg, "critic.enabled", default=False):
        families["critic/"] = None
    return MetricNames(families=families)


# config name -> its result's metric names, where the config alone decides them (the caller's
# metric_names, from the task module, comes first)
CONFIG_METRICS: dict[str, Callable[[Any], MetricNames]] = {
    "compare": compare_metric_names,
    "sample": lambda cfg: NO_METRICS,  # SampleResult: tokens and files
    "evaluate": lambda cfg: NO_METRICS,  # a table per model, no metric by name
    "listen": lambda cfg: NO_METRICS,  # the page's path
    "rewards": lambda cfg: NO_METRICS,  # the terms' descriptions
}


def _task_checks(task: str, cfg: Any, resolve_spec: Callable[[str], Any] | None) -> None:
    """What each task reads before its work, beyond :data:`BOUNDS`."""
    if task == "compare":
        check_models(task, cfg, resolve_spec)
        if cfg.get("prior"):  # null: the first model's recorded reference, else itself
            check_generator_spec("prior", cfg.prior)
    elif task == "listen":
        check_models(task, cfg, resolve_spec, exactly=2)
    elif task == "sample":
        check_generator_spec("checkpoint", cfg.checkpoint)
    elif task == "evaluate":
        if cfg.get("prior"):  # null: the checkpoint's recorded reference, else itself
            check_generator_spec("prior", cfg.prior)
        for i, spec in enumerate([cfg.checkpoint, *(cfg.get("compare_to") or [])]):
            check_generator_spec("checkpoint" if i == 0 else f"compare_to[{i - 1}]", spec)
    elif task == "finetune":
        check_generator_spec("checkpoint", cfg.checkpoint)
        prior = OmegaConf.select(cfg, "reward.prior.checkpoint", default=None)
        if prior not in (None, "start"):
            check_generator_spec("reward.prior.checkpoint", prior)
        algo = OmegaConf.select(cfg, "algo.name", default=None)
        # the run harness calls the refresh hook; SB3's learn() owns its loop (no hooks)
        if int(OmegaConf.select(cfg, "critic_refresh.every", default=0) or 0) > 0 and (
            algo not in ("batched", "rl_tuner")
        ):
            raise ConfigError(
                f"rlmusic {task}: critic_refresh.every > 0 needs algo=batched or algo=rl_tuner "
                f"(algo={algo} trains against a static critic): set critic_refresh.every=0"
            )
        if _final_eval_wanted(cfg) and cfg.get("data") is None:
            raise ConfigError(
                f"rlmusic {task}: final_eval (and an eval/* objective) needs a `data` group, "
                "the held-out melodies, e.g. data=all"
            )


def preflight(
    task: str,
    cfg: DictConfig | Mapping[str, Any],
    metric_names: MetricNames | None = None,
    resolve_spec: Callable[[str], Any] | None = None,
) -> None:
    """Every check of ``task``'s config (its name in conf/) that needs no work: bounds, model
    lists and specs, the device, the objective.

    Args:
        task: the config's name (``finetune``, ``sample``, ``compare``, ...).
        cfg: the validated config.
        metric_names: the names the task's result will hold (None: the config decides them
            where it can, :data:`CONFIG_METRICS`; else ``objective`` is not checked).
        resolve_spec: raises for a model spec of ``compare`` / ``listen`` that names nothing
            usable (``rlmusic.evaluation.columns.spec_kind``); None: only their form.

    Raises:
        UserError: a :class:`ConfigError`, or a ``CheckpointError`` for a generator spec that
            names nothing, naming the key, the value and the fix.
    """
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(dict(cfg))
    check_bounds(task, cfg, BOUNDS.get(task, ()))
    _task_checks(task, cfg, resolve_spec)
    check_device(task, cfg)
    if metric_names is None and task in CONFIG_METRICS:
        metric_names = CONFIG_METRICS[task](cfg)
    check_direction(task, cfg)
    if metric_names is not None:
        check_objective(task, cfg, metric_names)


__all__ = [
    "BOUNDS",
    "CONFIG_METRICS",
    "NO_METRICS",
    "Bound",
    "MetricNames",
    "check_bounds",
    "check_device",
    "check_direction",
    "check_generator_spec",
    "check_models",
    "check_objective",
    "compare_metric_names",
    "preflight",
]


def reward_preset() -> str:
    """The ``reward=`` preset Hydra composed (``custom`` outside Hydra's main)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return str(HydraConfig.get().runtime.choices.get("reward", "custom"))
    return "custom"
