"""Metrics to TensorBoard and a CSV file, resumable: rows past the resumed step are dropped."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from rlmusic.runlog import tensorboard_writer, truncate_csv

CSV_COLUMNS = (
    "epoch",
    "step",
    "train_tokens",
    "train_nll",
    "valid_nll",
    "valid_ppl",
    "valid_acc",
    "lr",
    "tokens_per_s",
    "train_seconds",
)


class MetricsLog:
    """One CSV row per epoch (``metrics.csv``) and TensorBoard scalars (``tb/``).

    Only the main process writes. On resume from ``step``, CSV rows and TensorBoard events
    after ``step`` (written before a crash, after the checkpoint) are discarded.
    """

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int = 0) -> None:
        self.enabled = enabled
        self.csv_path = Path(out_dir) / "metrics.csv"
        self.writer = None
        if not enabled:
            return
        if resume_step and self.csv_path.exists():
            truncate_csv(self.csv_path, "step", resume_step)
        else:
            with open(self.csv_path, "w", newline="") as handle:
                csv.DictWriter(handle, fieldnames=CSV_COLUMNS).writeheader()
        self.writer = tensorboard_writer(Path(out_dir) / "tb", resume_step or None)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in values.items():
                if value is not None and not math.isnan(value):
                    self.writer.add_scalar(name, value, step)

    def epoch_row(self, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.csv_path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=CSV_COLUMNS).writerow(
                {k: row.get(k, "") for k in CSV_COLUMNS}
            )

    def close(self) -> None:
        """Flush and close TensorBoard (its writer thread); a second call does nothing."""
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
