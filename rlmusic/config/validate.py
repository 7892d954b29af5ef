"""Check a composed task config against its schema before the task does any work."""

from __future__ import annotations

import re
from collections.abc import Mapping

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from rlmusic.config.schemas import TASK_SCHEMAS
from rlmusic.errors import UserError


class ConfigError(UserError, ValueError):
    """A config value that cannot be used: one that does not fit its task's schema, or names
    nothing usable; the message names the key or the value (a user error: one line)."""


def _describe(exc: OmegaConfBaseException, cfg: DictConfig) -> str:
    key = getattr(exc, "full_key", None) or "?"
    value = (
        OmegaConf.select(cfg, key, default="<unset>", throw_on_missing=False) if key != "?" else "?"
    )
    return describe_error(exc, key, value)


def describe_error(exc: OmegaConfBaseException, key: str, value: object) -> str:
    """OmegaConf's error for ``key`` set to ``value`` as one line naming both."""
    if isinstance(exc, (ConfigKeyError, ConfigAttributeError)):
        return f"unknown config key {key!r} (misspelt? `rlmusic <task> --cfg job` shows the keys)"
    reason = getattr(exc, "msg", str(exc)).split("\n")[0]
    wanted = re.search(r"converted to (\w+)", reason)
    expected = wanted.group(1).lower() if wanted else reason
    return f"config key {key!r} expects {expected}, got {value!r} ({type(value).__name__})"


def validate_config(
    task: str, cfg: DictConfig, nodes: Mapping[str, type] | None = None
) -> DictConfig:
    """``cfg`` merged onto ``task``'s schema: values converted to their declared types.

    Args:
        task: the task's config name (:data:`TASK_SCHEMAS`).
        cfg: the composed config.
        nodes: schemas for the schema's open nodes, chosen by the caller (``finetune``: the
            algorithm's config class for ``algo``, :func:`rlmusic.tasks.finetune.check_algo`).

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or a required value left unset
            (``???``), naming the key, the expected type and the value.
    """
    if task not in TASK_SCHEMAS:
        return cfg  # a task without a schema (a plug-in) checks its own config
    base = OmegaConf.structured(TASK_SCHEMAS[task])
    for key, node in (nodes or {}).items():
        OmegaConf.set_struct(base, False)
        base[key] = OmegaConf.structured(node)
        # back to the schema's own flag (None): struct on the root would also close the open
        # Dict[str, Any] nodes (reward.extra, rule_params); the typed nodes stay closed anyway
        OmegaConf.set_struct(base, None)
    if nodes:
        # the composed node carries the schema class Hydra composed it onto; a sweep's worker
        # process unpickles its own copy of that (generated) class, which OmegaConf will not
        # merge onto this one: hand the values over as plain data
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    try:
        merged = OmegaConf.merge(base, cfg)
        missing = sorted(OmegaConf.missing_keys(merged))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"rlmusic {task}: {_describe(exc, cfg)}") from None
    if missing:
        raise ConfigError(
            f"rlmusic {task}: config key(s) {missing} must be set (e.g. {missing[0]}=<value>)"
        )
    return merged


__all__ = ["ConfigError", "describe_error", "validate_config"]
