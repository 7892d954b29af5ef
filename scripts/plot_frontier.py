"""The realism / rules frontier as a picture: each run's critic accuracy against the music checks
it meets, from the ``final_eval.json`` its fine-tuning wrote (``final_eval.critic.enabled=true``).

    python scripts/plot_frontier.py multirun/finetune/<time> \
        --run "old default=runs/old_default" --run "default=runs/default" \
        --mark default --supervised 0.621 --out docs/img/realism_frontier.png

Every job folder of the sweep is a point; ``--run NAME=FOLDER`` adds a labelled run; ``--mark``
draws that run as a star; ``--supervised`` draws the supervised model's accuracy as a line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlmusic.evaluation.checks import CHECKS, LOGP_CHECK, REFERENCE_LOGP_METRIC, check_results
from rlmusic.evaluation.objective import CRITIC_METRIC, metric_name

# the one final_eval.json row whose eval/* name is not metric_name's
ROWS = {"reference log p per onset": REFERENCE_LOGP_METRIC}


def run_point(folder: Path) -> tuple[float, int, float, float] | None:
    """``(accuracy, checks met, low, high)`` of a run folder, None without a critic figure."""
    path = folder / "final_eval.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    critic = record.get("critic accuracy")
    if not critic:
        return None
    metrics = {ROWS.get(k, metric_name(k)): v for k, v in record.items() if isinstance(v, float)}
    met = sum(bool(ok) for ok in check_results(metrics).values())
    return critic["value"], met, critic["low"], critic["high"]


def swept_label(job: Path, jobs: list[Path]) -> str:
    """``job N: a=1 b=2``: the overrides that differ between the sweep's jobs."""
    import yaml

    def overrides(folder: Path) -> set[str]:
        path = folder / ".hydra" / "overrides.yaml"
        return set(yaml.safe_load(path.read_text()) or []) if path.is_file() else set()

    shared = set.intersection(*(overrides(j) for j in jobs)) if jobs else set()
    own = sorted(
        f"{key.rsplit('.', 1)[-1]}={value}"
        for key, value in (o.split("=", 1) for o in overrides(job) - shared)
    )
    return f"job {job.name}: {' '.join(own)}" if own else f"job {job.name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder (its numbered job folders)")
    parser.add_argument("--run", action="append", default=[], help="NAME=FOLDER: a labelled run")
    parser.add_argument("--mark", default=None, help="the labelled run drawn as a star")
    parser.add_argument("--supervised", type=float, default=None, help="its critic accuracy")
    parser.add_argument("--out", type=Path, default=Path("realism_frontier.png"))
    args = parser.parse_args()

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    jobs = sorted(
        (p for p in args.sweep.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
    )
    points = {swept_label(job, jobs): run_point(job) for job in jobs}
    points |= {
        name: run_point(Path(folder)) for name, folder in (r.split("=", 1) for r in args.run)
    }
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    total = len(CHECKS) + 1  # the log p check beside the table's
    for name, point in points.items():
        if point is None:
            continue
        accuracy, met, low, high = point
        star = name == args.mark
        ax.errorbar(
            accuracy, met, xerr=[[accuracy - low], [high - accuracy]],
            fmt="*" if star else "o", markersize=14 if star else 6,
            color="tab:red" if star else "tab:blue", capsize=3,
        )  # fmt: skip
        offset = (6, -14) if star else (6, 6)  # the marked run's label below, the others above
        ax.annotate(name, (accuracy, met), textcoords="offset points", xytext=offset, fontsize=8)
    if args.supervised is not None:
        ax.axvline(args.supervised, color="grey", linestyle="--", label="supervised model")
        ax.legend(loc="lower right")
    ax.set_xlabel(f"{CRITIC_METRIC} (lower: harder to tell from held-out melodies)")
    ax.set_ylabel(f"music checks met (of {total}, {LOGP_CHECK.split(' within')[0]} included)")
    ax.set_ylim(total - 4.5, total + 0.5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"frontier: {args.out}")


if __name__ == "__main__":
    main()
