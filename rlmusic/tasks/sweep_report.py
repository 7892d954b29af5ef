"""`rlmusic sweep-report DIR`: one report of a Hydra multirun folder.

``DIR`` is the sweep folder of ``rlmusic <task> -m ...`` (``hydra.sweep.dir``, e.g.
``multirun/finetune/2025-01-31_12-00-00``), made here or copied back from a cluster: only the
files in its job folders are read (:mod:`rlmusic.sweeps.records`). Written into ``out``
(default: ``DIR`` itself):

* ``sweep_report.csv`` -- every run, best first: every override, every numeric metric;
* ``sweep_report.md`` -- the same ranking with the swept overrides and a few metrics, then the
  failed runs with their errors (also printed);
* ``sweep_report.png`` -- the objective against each swept parameter.

``rank_by=<metric> direction=minimize`` ranks by another metric than the one the runs returned.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from rlmusic.sweeps.records import read_sweep
from rlmusic.sweeps.report import SweepReport, build_report, write_report


def run(cfg: DictConfig) -> SweepReport:
    if not cfg.get("dir"):
        raise ValueError("give the sweep folder: rlmusic sweep-report DIR (or dir=DIR)")
    sweep_dir = Path(str(cfg.dir)).expanduser()
    records = read_sweep(sweep_dir)
    report = build_report(
        records,
        sweep_dir,
        objective=cfg.get("rank_by"),
        direction=cfg.get("direction"),
    )
    out = Path(str(cfg.out)).expanduser() if cfg.get("out") else sweep_dir
    write_report(report, out, list(cfg.markdown_metrics), plot=bool(cfg.plot))
    print(report.files["markdown"].read_text())
    print("\n".join(f"{kind}: {path}" for kind, path in report.files.items()))
    return report
