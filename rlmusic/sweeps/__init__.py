"""Hydra sweeps: what each job of a multirun leaves in its folder, and the report that reads
them back (from this machine or from a folder copied back from a cluster).

* :mod:`rlmusic.sweeps.records` -- ``job_result.json`` / ``error.txt`` in every job folder
  (written by the CLI for each job of ``rlmusic <task> -m ...``), and reading them back.
* :mod:`rlmusic.sweeps.report` -- one table (CSV, Markdown) of every run sorted by the
  objective, the failed runs with their errors, and a plot of the objective against each
  swept parameter (``rlmusic sweep-report DIR``).
"""

from rlmusic.sweeps.records import JobRecord, read_job, read_sweep
from rlmusic.sweeps.report import SweepReport, build_report, write_report

__all__ = ["JobRecord", "SweepReport", "build_report", "read_job", "read_sweep", "write_report"]
