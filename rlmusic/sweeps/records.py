"""What one job of a Hydra multirun leaves in its folder, and reading it back.

Every job of ``rlmusic <task> -m ...`` writes ``job_result.json`` into its job folder (beside
Hydra's ``.hydra/overrides.yaml`` and ``.hydra/config.yaml``): its status, the objective's
name, direction and value, and the task's numeric metrics. A job that fails also writes
``error.txt`` (the traceback), and the sweep goes on (:func:`record_failure`).

Reading needs nothing but those files, so a sweep folder copied back from a cluster reads the
same as one made here. A job folder without ``job_result.json`` is *unfinished*: killed (a
scheduler's time limit, out of memory), still running, or written by an older rlmusic.
"""

from __future__ import annotations

import json
import math
import re
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

JOB_RESULT = "job_result.json"
ERROR_FILE = "error.txt"
DIRECTIONS = ("maximize", "minimize")


@dataclass
class JobRecord:
    """One job of a sweep, as read from its folder.

    Attributes:
        job: the folder relative to the sweep folder (Hydra's ``hydra.sweep.subdir``, e.g. ``3``).
        folder: the job folder.
        overrides: the job's command-line overrides (``.hydra/overrides.yaml``), key -> value.
        status: ``ok``, ``failed`` or ``unfinished`` (no ``job_result.json``).
        objective, direction, value: the metric the job returned to the sweeper, whether
            larger or smaller is better, and its value (None when failed).
        metrics: the task's numeric metrics (non-finite values are None).
        error: the failure's one-line summary (its traceback is in ``error.txt``).
        seconds: the job's wall time.
    """

    job: str
    folder: Path
    overrides: dict[str, str]
    status: str
    objective: str | None = None
    direction: str | None = None
    value: float | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    error: str | None = None
    seconds: float | None = None

    def metric(self, name: str | None) -> float | None:
        """The value of ``name`` for this run (the returned objective or one of its metrics)."""
        if name is None or self.status != "ok":
            return None
        if name == self.objective and self.value is not None:
            return self.value
        value = self.metrics.get(name)
        return None if value is None else float(value)


def sweep_job_folder() -> Path | None:
    """This job's folder when the process runs one job of a Hydra multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_cfg.runtime.output_dir)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def numeric_metrics(result: Any) -> dict[str, float | None]:
    """The numbers among a task result's metrics (``result.metrics``, or the result itself when
    it is a mapping): the values a report can show. Non-finite values become None (JSON)."""
    metrics = getattr(result, "metrics", None)
    if metrics is None and isinstance(result, Mapping):
        metrics = result.get("metrics", result)
    if not isinstance(metrics, Mapping):
        return {}
    return {
        str(k): _finite(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def failure_value(objective: str | None, direction: str | None) -> float | None:
    """What a failed job returns to the sweeper: the worst possible value (+inf when minimising,
    -inf when maximising), or None for a task without an objective.

    Not NaN: the Optuna sweeper cannot record a NaN (Optuna refuses it, and the sweeper's
    fallback then fails as well, ending the search). An infinite value is a completed trial
    that is never the best, so a search goes on and steers away from it.
    """
    if objective is None:
        return None
    if direction not in DIRECTIONS:
        raise ValueError(f"objective_direction must be one of {DIRECTIONS}, got {direction!r}")
    return math.inf if direction == "minimize" else -math.inf


def _write(folder: Path, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (JOB_RESULT + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, allow_nan=False, default=str))
    tmp.replace(folder / JOB_RESULT)  # a reader never sees half a file


def record_success(
    folder: Path,
    task: str,
    objective: str | None,
    direction: str | None,
    value: float | None,
    metrics: Mapping[str, float | None],
    seconds: float,
) -> None:
    """Write ``job_result.json`` for a job that finished."""
    _write(
        folder,
        {
            "status": "ok",
            "task": task,
            "objective": objective,
            "direction": direction,
            "value": _finite(value),
            "metrics": dict(metrics),
            "seconds": round(seconds, 3),
        },
    )


def record_failure(
    folder: Path,
    task: str,
    error: BaseException,
    objective: str | None,
    direction: str | None,
    seconds: float,
    metrics: Mapping[str, float | None] | None = None,
) -> float | None:
    """Write ``error.txt`` (the traceback) and ``job_result.json`` for a job that raised; return
    the value the sweeper gets (:func:`failure_value`)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ERROR_FILE).write_text(
        "".join(traceback.format_exception(type(error), error, error.__traceback__))
    )
    summary = f"{type(error).__name__}: {error}".strip().splitlines()[0]
    _write(
        folder,
        {
            "status": "failed",
            "task": task,
            "objective": objective,
            "direction": direction,
            "value": None,
            "metrics": dict(metrics or {}),
            "error": summary,
            "seconds": round(seconds, 3),
        },
    )
    return failure_value(objective, direction if direction in DIRECTIONS else "maximize")


def _overrides(folder: Path) -> dict[str, str]:
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for item in yaml.safe_load(path.read_text()) or []:
        key, sep, value = str(item).partition("=")
        out[key.lstrip("+")] = value if sep else ""
    return out


def _config(folder: Path) -> dict[str, Any]:
    path = folder / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return {}


def read_job(folder: Path, sweep_dir: Path | None = None) -> JobRecord:
    """One job folder as a :class:`JobRecord` (only files are read)."""
    folder = Path(folder)
    job = str(folder.relative_to(sweep_dir)) if sweep_dir is not None else folder.name
    overrides = _overrides(folder)
    config = _config(folder)
    objective = config.get("objective")
    direction = config.get("objective_direction")
    path = folder / JOB_RESULT
    if not path.is_file():
        reason = "no job_result.json: the job did not finish (killed, timed out or still running)"
        if (folder / ERROR_FILE).is_file():
            reason = (folder / ERROR_FILE).read_text().strip().splitlines()[-1]
        return JobRecord(job, folder, overrides, "unfinished", objective, direction, error=reason)
    data = json.loads(path.read_text())
    return JobRecord(
        job=job,
        folder=folder,
        overrides=overrides,
        status=str(data.get("status", "failed")),
        objective=data.get("objective", objective),
        direction=data.get("direction") or direction,
        value=_finite(data.get("value")),
        metrics={str(k): _finite(v) for k, v in (data.get("metrics") or {}).items()},
        error=data.get("error"),
        seconds=_finite(data.get("seconds")),
    )


def _natural(path: Path) -> list[Any]:
    # job folders 0, 1, ..., 10 in numeric order
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(path))]


def find_job_folders(sweep_dir: Path) -> list[Path]:
    """Every job folder under ``sweep_dir`` (any depth): a folder holding Hydra's
    ``.hydra/overrides.yaml`` or a ``job_result.json``. Hidden folders (``.submitit``,
    ``.hydra``) are not searched."""
    sweep_dir = Path(sweep_dir)
    found = set()
    for marker in ("*/.hydra/overrides.yaml", f"*/{JOB_RESULT}"):
        for path in sweep_dir.rglob(marker):
            folder = path.parent.parent if path.name == "overrides.yaml" else path.parent
            relative = folder.relative_to(sweep_dir).parts
            if relative and not any(part.startswith(".") for part in relative):
                found.add(folder)
    return sorted(found, key=lambda p: _natural(p.relative_to(sweep_dir)))


def read_sweep(sweep_dir: Path) -> list[JobRecord]:
    """Every job of the sweep folder ``sweep_dir``, in job order.

    Raises:
        FileNotFoundError: ``sweep_dir`` is not a folder, or holds no job folder.
    """
    sweep_dir = Path(sweep_dir).expanduser()
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such folder")
    folders = find_job_folders(sweep_dir)
    if not folders:
        raise FileNotFoundError(
            f"{sweep_dir}: no job folder (a folder with .hydra/overrides.yaml or {JOB_RESULT}); "
            "give the sweep folder of `rlmusic <task> -m ...` (hydra.sweep.dir)"
        )
    return [read_job(folder, sweep_dir) for folder in folders]
