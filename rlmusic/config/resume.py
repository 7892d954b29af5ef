"""A run folder remembers the config it was started with (``run_config.yaml``); running again
in it resumes, and a resumed run may not silently train with other values."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rlmusic.config.validate import ConfigError

log = logging.getLogger(__name__)
RUN_CONFIG = "run_config.yaml"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out if node else {prefix[:-1]: {}}
    return {prefix[:-1]: node}


def _exempt(key: str, resumable: Iterable[str]) -> bool:
    return any(key == r or key.startswith(r + ".") for r in resumable)


def check_resumed_config(
    run_dir: Path, cfg: DictConfig, resumable: Iterable[str], allow_change: bool = False
) -> None:
    """Compare ``cfg`` with the run folder's saved config, then save ``cfg`` there.

    Args:
        run_dir: the run folder.
        cfg: this command's config.
        resumable: keys (or key prefixes) a resumed run may change: budgets, intervals, device.
        allow_change: continue even though training values differ (the old config is kept as
            ``run_config.<n>.yaml``).

    Raises:
        ConfigError: the folder holds a run started with other training values; the message
            names every differing key with both values and how to continue anyway.
    """
    path = Path(run_dir) / RUN_CONFIG
    now = OmegaConf.to_container(cfg, resolve=True)
    if path.exists():
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        old, new = _flatten(saved), _flatten(now)
        changed = sorted(
            k
            for k in set(old) | set(new)
            if old.get(k, "<unset>") != new.get(k, "<unset>") and not _exempt(k, resumable)
        )
        if changed:
            listing = "; ".join(
                f"{k}: {old.get(k, '<unset>')!r} -> {new.get(k, '<unset>')!r}" for k in changed
            )
            if not allow_change:
                raise ConfigError(
                    f"{run_dir} holds a run started with other training values ({listing}). "
                    "Resuming would silently train with the saved state. Use another run folder "
                    "(hydra.run.dir=...), or add allow_config_change=true to continue with the "
                    "new values."
                )
            n = 1
            while (backup := path.with_name(f"run_config.{n}.yaml")).exists():
                n += 1
            path.replace(backup)
            log.warning(
                "continuing %s with changed values (%s); old config: %s", run_dir, listing, backup
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(now)))
    tmp.replace(path)
