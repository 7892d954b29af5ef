"""What every algorithm's typed config shares: field markers, the ``algo`` node's schema, the
one reading of an ``algo`` node, and the one resolution of ``kl_coef: null``.

An algorithm's settings are one dataclass (``rlmusic.algos.<algo>.config``): every key of its
``algo`` node with the shipped default, checked in ``__post_init__``. Hydra composes the node
onto it (conf/__init__.py registers :func:`node_schema` as ``algo/<name>_schema``), the task
checks a composed node with :func:`read_config`, and the trainer reads the same object. Fields
are marked with metadata:

- :func:`run_key`: steers the run around the trainer (budgets, intervals, hooks);
  ``resumable=True``: a resumed run may change it (rlmusic.tasks.finetune.RESUMABLE_KEYS);
- :func:`setup_value`: not a key of the node but a value of the run's setup (``length``).

This module imports no torch: conf/__init__.py imports the configs to register them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def run_key(default: Any, *, resumable: bool = False) -> Any:
    """A run-control field (``resumable``: a resumed run may change it)."""
    return dataclasses.field(default=default, metadata={"run": True, "resumable": resumable})


def setup_value(default: Any) -> Any:
    """A field the run's setup fills (e.g. ``length``), not a key of the ``algo`` node."""
    return dataclasses.field(default=default, metadata={"setup": True})


def node_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are keys of its ``algo`` node (setup values left out)."""
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("setup")]


def run_keys(cls: type) -> tuple[str, ...]:
    """The run-control keys of ``cls`` (:func:`run_key`)."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("run"))


def resumable_keys(cls: type) -> tuple[str, ...]:
    """The keys of ``cls`` a resumed run may change."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable"))


@functools.cache
def node_schema(cls: type) -> type:
    """``cls`` without its setup values: the ``algo`` node's structured-config schema (the
    fields, types and defaults are ``cls``'s own; Hydra composes the YAML onto it)."""
    specs = [(f.name, f.type, dataclasses.field(default=f.default)) for f in node_fields(cls)]
    for f in node_fields(cls):
        if f.default is dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default (the shipped value)")
    schema = dataclasses.make_dataclass(cls.__name__, specs)
    schema.__module__ = cls.__module__  # its annotations are read in cls's module
    return schema


def read_config(cls: type[T], algo_cfg: Mapping[str, Any], **setup: Any) -> T:
    """``cls`` from an ``algo`` node (every key of it) and the setup's values (``length=``;
    those ``cls`` has no field for are left out).

    Raises:
        ValueError: an unknown key (the known ones are listed) or a bad value (named by
            ``cls.__post_init__``).
    """
    values = dict(algo_cfg)
    known = {f.name for f in node_fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        name = values.get("name", cls.__name__)
        raise ValueError(f"algo={name} has no key(s) {unknown}; known: {sorted(known)}")
    wanted = {f.name for f in dataclasses.fields(cls) if f.metadata.get("setup")}
    return cls(**values, **{k: v for k, v in setup.items() if k in wanted})


def resolve_kl_coef(kl_coef: float | None, prior_weight: float) -> float:
    """The KL weight an algorithm uses: ``algo.kl_coef``, or with ``kl_coef: null`` the reward
    preset's prior weight (``reward.prior.weight``; RL Tuner's: 1).

    >>> resolve_kl_coef(None, 2.0), resolve_kl_coef(0.5, 2.0)
    (2.0, 0.5)
    """
    return float(prior_weight if kl_coef is None else kl_coef)


__all__ = [
    "node_fields",
    "node_schema",
    "read_config",
    "resolve_kl_coef",
    "resumable_keys",
    "run_key",
    "run_keys",
    "setup_value",
]
