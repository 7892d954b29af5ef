"""Check a composed task config against its schema before the task does any work."""

from __future__ import annotations

import re

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from rlmusic.config.schemas import TASK_SCHEMAS
from rlmusic.errors import UserError


class ConfigError(UserError, ValueError):
    """A config value that cannot be used: one that does not fit its task's schema, or names
    nothing usable; the message names the key or the value (a user error: one line)."""


def _describe(exc: OmegaConfBaseException, cfg: DictConfig) -> str:
    key = getattr(exc, "full_key", None) or "?"
    if isinstance(exc, ConfigKeyError):
        return f"unknown config key {key!r} (misspelt? `rlmusic <task> --cfg job` shows the keys)"
    value = (
        OmegaConf.select(cfg, key, default="<unset>", throw_on_missing=False) if key != "?" else "?"
    )
    reason = getattr(exc, "msg", str(exc)).split("\n")[0]
    wanted = re.search(r"converted to (\w+)", reason)
    expected = wanted.group(1).lower() if wanted else reason
    return f"config key {key!r} expects {expected}, got {value!r} ({type(value).__name__})"


def validate_config(task: str, cfg: DictConfig) -> DictConfig:
    """``cfg`` merged onto ``task``'s schema: values converted to their declared types.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or a required value left unset
            (``???``), naming the key, the expected type and the value.
    """
    if task not in TASK_SCHEMAS:
        return cfg  # a task without a schema (a plug-in) checks its own config
    schema, groups = TASK_SCHEMAS[task]
    base = OmegaConf.structured(schema)
    for group, (selector, options) in groups.items():
        choice = OmegaConf.select(cfg, f"{group}.{selector}")
        if choice not in options:
            raise ConfigError(
                f"config key '{group}.{selector}': {choice!r} is not one of {sorted(options)}"
            )
        OmegaConf.set_struct(base, False)
        base[group] = OmegaConf.structured(options[choice])
        # back to the schema's own flag (None): struct on the root would also close the open
        # Dict[str, Any] nodes (reward.extra, rule_params); the typed nodes stay closed anyway
        OmegaConf.set_struct(base, None)
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


__all__ = ["ConfigError", "validate_config"]
