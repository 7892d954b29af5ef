"""Logs that survive a resume: a run continued from step ``s`` drops what was logged after ``s``.

One implementation for every trainer (pretraining, the batched trainer, the SB3 runs): a CSV
with a step column, and TensorBoard events purged past the resume step.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any


def truncate_csv(path: Path, step_column: str, keep_until: int) -> list[str]:
    """Drop the rows of ``path`` whose ``step_column`` is past ``keep_until``; return the header.

    Rows without a value in that column go too (they were written after the last step).
    """
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return []
    header = rows[0]
    column = header.index(step_column) if step_column in header else None
    kept = [
        r for r in rows[1:] if column is not None and r[column] and float(r[column]) <= keep_until
    ]
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *kept])
    return header


def tensorboard_writer(folder: Path, purge_step: int | None = None) -> Any | None:
    """A SummaryWriter (events past ``purge_step`` hidden), or None without tensorboard."""
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)


class CSVLog:
    """``metrics.csv`` (one row per step, columns fixed by the first row) plus TensorBoard.

    Args:
        directory: the run folder (``metrics.csv`` and ``tb/`` go there).
        step_column: the name of the step column.
        resume_step: a resumed run's step: later rows and events are dropped.
    """

    def __init__(
        self, directory: Path, step_column: str = "iteration", resume_step: int | None = None
    ) -> None:
        self.path = Path(directory) / "metrics.csv"
        self.step_column = step_column
        header = (
            truncate_csv(self.path, step_column, resume_step) if resume_step is not None else []
        )
        if not header and self.path.exists():
            with open(self.path, newline="") as handle:
                header = next(csv.reader(handle), [])
        self.columns: list[str] | None = header or None
        purge = None if resume_step is None else resume_step + 1
        self.writer = tensorboard_writer(Path(directory) / "tb", purge)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        row = {self.step_column: step, **metrics}
        if self.columns is None:
            self.columns = list(row)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle, lineterminator="\n").writerow(self.columns)
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerow([row.get(c, "") for c in self.columns])
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
