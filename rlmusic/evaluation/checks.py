"""The music checks a tuned model must meet, as bounds on ``eval/*`` metrics.

RL Tuner's table rows where the paper's Q column improved on the supervised model (repeated
notes, notes out of key, tonic starts, resolved leaps), motif use, and the guards that the
result is still varied music close to the corpus (distinct pieces, the interval histogram,
note density, and likelihood under the start model). ``docs/finetuning.md`` says where each
bound comes from. A run's ``final_eval`` metrics carry every row these read; ``rlmusic
sweep-report`` marks each run by them, so a sweep can rank by realism among the runs that
meet every check.

>>> failed = failed_checks({"eval/notes_excessively_repeated": 0.0002, "eval/leaps_resolved": 0.9})
>>> "leaps resolved >= 91.1%" in failed, "notes excessively repeated <= 0.1%" in failed
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from rlmusic.rewards.statistics import Statistic

LOGP_SLACK = 0.5  # nats per onset the tuned model may lose under the start model
# the end-of-run evaluation's namespace; here, the lowest module that names its metrics
EVAL_PREFIX = "eval/"


@dataclass(frozen=True)
class Check:
    """``metric`` within ``[low, high]`` (None: unbounded on that side)."""

    name: str
    metric: str
    low: float | None = None
    high: float | None = None

    def met(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


def eval_metric(statistic: Statistic) -> str:
    """A statistic's ``eval/*`` metric: its identifier's value, which never changes.

    >>> eval_metric(Statistic.TONIC_START)
    'eval/compositions_starting_with_tonic'
    """
    return EVAL_PREFIX + statistic.value


CHECKS = (
    Check(
        "notes excessively repeated <= 0.1%",
        eval_metric(Statistic.NOTES_EXCESSIVELY_REPEATED),
        high=0.001,
    ),
    Check("notes not in key <= 1.0%", eval_metric(Statistic.NOTES_NOT_IN_KEY), high=0.01),
    Check("tonic start >= 28.8%", eval_metric(Statistic.TONIC_START), low=0.288),
    Check("leaps resolved >= 91.1%", eval_metric(Statistic.LEAPS_RESOLVED), low=0.911),
    Check("notes in motif >= 40%", eval_metric(Statistic.NOTES_IN_MOTIF), low=0.40),
    Check("distinct >= 90%", EVAL_PREFIX + "distinct_share", low=0.90),
    Check("interval L1 <= 0.20", EVAL_PREFIX + "interval_l1", high=0.20),
    Check("onsets 9-16 per piece", eval_metric(Statistic.ONSETS_PER_PIECE), low=9.0, high=16.0),
)
LOGP_CHECK = f"log p per onset within {LOGP_SLACK} nats of the start model's"
LOGP_METRIC = EVAL_PREFIX + "prior_logp_per_onset"  # the tuned pieces under the start model
REFERENCE_LOGP_METRIC = EVAL_PREFIX + "reference_logp_per_onset"  # the start model's own pieces


def check_results(metrics: Mapping[str, float]) -> dict[str, bool | None]:
    """Each check's outcome; None where the metrics lack what it reads."""
    out: dict[str, bool | None] = {}
    for check in CHECKS:
        value = metrics.get(check.metric)
        out[check.name] = None if value is None else check.met(float(value))
    tuned, start = metrics.get(LOGP_METRIC), metrics.get(REFERENCE_LOGP_METRIC)
    out[LOGP_CHECK] = None if tuned is None or start is None else tuned >= start - LOGP_SLACK
    return out


def failed_checks(metrics: Mapping[str, float]) -> list[str]:
    """The checks a run's metrics fail (a missing metric fails its check)."""
    return [name for name, met in check_results(metrics).items() if not met]
