"""One report of a sweep: every run's overrides and final metrics sorted by the objective, the
failed runs with their errors, and the objective against each swept parameter.

:func:`build_report` ranks the records :func:`rlmusic.sweeps.records.read_sweep` read;
:func:`write_report` writes ``sweep_report.csv`` (every override and metric),
``sweep_report.md`` (the swept overrides and a few metrics, then the failures) and
``sweep_report.png``.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rlmusic.evaluation.checks import check_results, failed_checks
from rlmusic.sweeps.records import DIRECTIONS, JobRecord

REPORT_NAME = "sweep_report"
# metrics shown in the Markdown table when a run has them (the CSV has every metric)
DEFAULT_MARKDOWN_METRICS = (
    "final/reward/total",
    "final/kl/prior_per_token",
    "final/policy/distinct_share",
    "eval/interval_l1",
)


@dataclass
class SweepReport:
    """A ranked sweep.

    Attributes:
        sweep_dir: the folder read.
        objective, direction: the metric runs are ranked by and whether larger is better.
        ranked: every run, best first; runs without a value (failed, unfinished, or missing
            the metric) last, in job order.
        failed: the runs that failed or did not finish.
        swept: override keys whose values differ between runs (the plot's x axes).
        fixed: overrides every run shares.
        optuna_best: the Optuna sweeper's ``optimization_results.yaml`` when there is one.
        files: what :func:`write_report` wrote.
    """

    sweep_dir: Path
    objective: str | None
    direction: str
    ranked: list[JobRecord]
    failed: list[JobRecord]
    swept: list[str]
    fixed: dict[str, str]
    optuna_best: dict | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def best(self) -> JobRecord | None:
        """The best run with a value, if any."""
        first = self.ranked[0] if self.ranked else None
        return first if first is not None and first.metric(self.objective) is not None else None

    @property
    def checked(self) -> bool:
        """Whether any run carries the metrics the music checks read (a ``final_eval``)."""
        return any(
            any(v is not None for v in check_results(r.metrics).values()) for r in self.ranked
        )

    @property
    def best_meeting_checks(self) -> JobRecord | None:
        """The best run with a value that meets every music check
        (:mod:`rlmusic.evaluation.checks`): the objective subject to the checks."""
        for r in self.ranked:
            if r.metric(self.objective) is not None and not failed_checks(r.metrics):
                return r
        return None

    @property
    def metrics(self) -> dict[str, float]:
        """Counts and the best value (the ``sweep-report`` task's result metrics)."""
        best = self.best
        return {
            "runs": float(len(self.ranked)),
            "failed": float(len(self.failed)),
            "best": math.nan if best is None else float(best.metric(self.objective)),
        }


def _most_common(values: Sequence[str | None]) -> str | None:
    present = [v for v in values if v]
    return Counter(present).most_common(1)[0][0] if present else None


def build_report(
    records: Sequence[JobRecord],
    sweep_dir: Path,
    objective: str | None = None,
    direction: str | None = None,
) -> SweepReport:
    """Rank ``records`` by ``objective`` (default: the objective the runs returned).

    Args:
        records: the sweep's jobs (:func:`rlmusic.sweeps.records.read_sweep`).
        sweep_dir: the folder they came from.
        objective: rank by this metric instead (any key of the runs' metrics).
        direction: ``maximize`` or ``minimize``; default: the runs' ``objective_direction``
            when ranking by their own objective, else ``maximize``.
    """
    runs_objective = _most_common([r.objective for r in records])
    objective = objective or runs_objective
    if direction is None:
        direction = (
            _most_common([r.direction for r in records]) if objective == runs_objective else None
        ) or "maximize"
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    sign = -1.0 if direction == "maximize" else 1.0

    def key(item: tuple[int, JobRecord]) -> tuple[int, float, int]:
        index, record = item
        value = record.metric(objective)
        return (0, sign * value, index) if value is not None else (1, 0.0, index)

    ranked = [r for _, r in sorted(enumerate(records), key=key)]
    keys = list(dict.fromkeys(k for r in records for k in r.overrides))
    swept = [k for k in keys if len({r.overrides.get(k) for r in records}) > 1]
    fixed = {k: records[0].overrides.get(k, "") for k in keys if k not in swept}
    optuna = Path(sweep_dir) / "optimization_results.yaml"
    return SweepReport(
        sweep_dir=Path(sweep_dir),
        objective=objective,
        direction=direction,
        ranked=ranked,
        failed=[r for r in records if r.status != "ok"],
        swept=swept,
        fixed=fixed,
        optuna_best=yaml.safe_load(optuna.read_text()) if optuna.is_file() else None,
    )


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g}"


def _checks_cell(record: JobRecord) -> str:
    failed = failed_checks(record.metrics)
    return "all met" if not failed else "fails " + ", ".join(failed)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_csv(report: SweepReport, path: Path) -> Path:
    """Every run (ranked) with every override and every metric."""
    keys = list(dict.fromkeys(k for r in report.ranked for k in r.overrides))
    metrics = sorted({k for r in report.ranked for k in r.metrics})
    header = ["rank", "job", "status", f"objective:{report.objective}", *keys, *metrics]
    header += ["checks_failed"] if report.checked else []
    header += ["seconds", "error"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for rank, r in enumerate(report.ranked, 1):
            value = r.metric(report.objective)
            writer.writerow(
                [
                    rank if value is not None else "",
                    r.job,
                    r.status,
                    "" if value is None else repr(value),
                    *(r.overrides.get(k, "") for k in keys),
                    *("" if r.metrics.get(k) is None else repr(r.metrics[k]) for k in metrics),
                    *(["; ".join(failed_checks(r.metrics))] if report.checked else []),
                    "" if r.seconds is None else r.seconds,
                    r.error or "",
                ]
            )
    return path


def format_markdown(
    report: SweepReport, metrics: Sequence[str] = DEFAULT_MARKDOWN_METRICS, plot: str | None = None
) -> str:
    """The ranked table (swept overrides, the objective, ``metrics`` the runs have), then the
    failed runs with their errors."""
    shown = [
        m for m in metrics if m != report.objective and any(m in r.metrics for r in report.ranked)
    ]
    arrow = "lower is better" if report.direction == "minimize" else "higher is better"
    ok = len(report.ranked) - len(report.failed)
    lines = [
        f"# Sweep report: {report.sweep_dir}",
        "",
        f"{len(report.ranked)} runs ({ok} finished, {len(report.failed)} failed or unfinished); "
        f"ranked by `{report.objective}` ({report.direction}: {arrow}).",
        "",
    ]
    if report.fixed:
        fixed = " ".join(f"`{k}={v}`" if v else f"`{k}`" for k, v in report.fixed.items())
        lines += [f"Every run: {_md_cell(fixed)}", ""]
    checks = ["music checks"] if report.checked else []
    header = ["rank", "job", *report.swept, f"**{report.objective}**", *shown, *checks, "status"]
    lines += ["| " + " | ".join(_md_cell(h) for h in header) + " |"]
    lines += ["|" + "---|" * len(header)]
    for rank, r in enumerate(report.ranked, 1):
        value = r.metric(report.objective)
        cells = [
            str(rank) if value is not None else "-",
            r.job,
            *(r.overrides.get(k, "") for k in report.swept),
            _fmt(value),
            *(_fmt(r.metrics.get(m)) for m in shown),
            *([_checks_cell(r)] if report.checked else []),
            r.status,
        ]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    if report.checked:
        best = report.best_meeting_checks
        lines += [
            "",
            "Best run meeting every music check (rlmusic.evaluation.checks): "
            + (
                f"job {best.job}, `{report.objective}` = {_fmt(best.metric(report.objective))}"
                if best is not None
                else "none"
            ),
        ]
    if report.failed:
        lines += ["", f"## Failed runs ({len(report.failed)})", ""]
        for r in report.failed:
            where = r.folder / "error.txt" if (r.folder / "error.txt").is_file() else r.folder
            swept = " ".join(f"{k}={r.overrides.get(k, '')}" for k in report.swept)
            lines.append(f"- job {r.job} ({swept or 'no swept overrides'}): {r.error} [{where}]")
    if report.optuna_best:
        lines += [
            "",
            f"Optuna's best: {report.optuna_best.get('best_params')} -> "
            f"{report.optuna_best.get('best_value')}",
        ]
    if plot:
        lines += ["", f"![objective against each swept parameter]({plot})"]
    return "\n".join(lines) + "\n"


def _numbers(values: Sequence[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def _label(value: str, width: int = 16) -> str:
    """A short tick label: a path's last part, long values cut."""
    value = value.rstrip("/").rsplit("/", 1)[-1] if "/" in value else value
    return value if len(value) <= width else value[: width - 2] + ".."


def write_plot(report: SweepReport, path: Path) -> Path | None:
    """The objective against each swept parameter (one panel each; a numeric parameter on a
    numeric axis, log-scaled when it spans two decades, others as categories). None when no
    run has a value."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    done = [r for r in report.ranked if r.metric(report.objective) is not None]
    if not done:
        return None
    params = report.swept or ["job"]
    cols = min(len(params), 3)
    rows = math.ceil(len(params) / cols)
    # no pyplot: a Figure of its own leaves the caller's backend and state alone
    figure = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    best = report.best
    for i, param in enumerate(params):
        ax = figure.add_subplot(rows, cols, i + 1)
        raw = [r.job if param == "job" else r.overrides.get(param, "") for r in done]
        y = [float(r.metric(report.objective)) for r in done]
        numbers = _numbers(raw)
        if numbers is not None:
            x = numbers
            if all(v > 0 for v in numbers) and max(numbers) / min(numbers) >= 100:
                ax.set_xscale("log")
        else:
            categories = list(dict.fromkeys(raw))
            x = [float(categories.index(v)) for v in raw]
            ax.set_xticks(range(len(categories)))
            ax.set_xticklabels([_label(c) for c in categories])
            ax.tick_params(axis="x", labelrotation=30)
        ax.scatter(x, y, color="tab:blue")
        if best is not None:
            i_best = done.index(best)
            ax.scatter([x[i_best]], [y[i_best]], color="tab:red", zorder=3)
        ax.set_xlabel(param)
        ax.set_ylabel(report.objective or "value")
        ax.grid(alpha=0.3)
    failed = f", {len(report.failed)} failed" if report.failed else ""
    figure.suptitle(f"{report.objective} ({report.direction}; best in red{failed})")
    figure.savefig(path, dpi=100)
    return path


def write_report(
    report: SweepReport,
    out_dir: Path,
    metrics: Sequence[str] = DEFAULT_MARKDOWN_METRICS,
    plot: bool = True,
) -> SweepReport:
    """Write ``sweep_report.csv``, ``.png`` (when ``plot`` and a run has a value) and ``.md``
    into ``out_dir``; the paths go to ``report.files``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report.files["csv"] = write_csv(report, out_dir / f"{REPORT_NAME}.csv")
    png = write_plot(report, out_dir / f"{REPORT_NAME}.png") if plot else None
    if png is not None:
        report.files["png"] = png
    markdown = out_dir / f"{REPORT_NAME}.md"
    markdown.write_text(format_markdown(report, metrics, png.name if png else None))
    report.files["markdown"] = markdown
    return report
