"""Seeded bootstrap over compositions: percentile intervals re-centred on the point value.

Every comparison metric is written as a function of per-composition *weights*: ``f(W)`` with
``W`` a (B, N) array of how often each of the N compositions is drawn in each of B resamples.
The point estimate is ``f`` at all-ones weights (each composition once), and a resample is a
row of multinomial counts (N draws with replacement). Statistics that are sums over
compositions (means, ratios of sums, pooled histograms) then cost one matrix product for all
resamples at once.

>>> w = bootstrap_weights(3, 4, seed=0)
>>> w.shape, w.sum(axis=1).tolist()
((4, 3), [3, 3, 3, 3])
>>> ratio_of_sums(np.array([1.0, 2.0]), np.array([1.0, 1.0]))(np.ones((1, 2))).tolist()
[1.5]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

WeightedStatistic = Callable[[np.ndarray], np.ndarray]  # (B, N) weights -> (B,) values


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval ``[low, high]`` (NaN when undefined)."""

    value: float
    low: float
    high: float

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share a point; an undefined interval overlaps anything
        (no difference is claimed without numbers)."""
        if any(np.isnan(x) for x in (self.low, self.high, other.low, other.high)):
            return True
        return self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready: NaN becomes None (strict JSON has no NaN)."""
        return {k: (None if np.isnan(v) else float(v)) for k, v in vars(self).items()}


def bootstrap_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) int counts: each row draws ``n`` of the ``n`` items with replacement.

    The same ``(n, resamples, seed)`` always gives the same rows, so two models with as many
    compositions are resampled alike (a paired bootstrap).
    """
    if n < 1 or resamples < 0:
        raise ValueError(f"need n >= 1 and resamples >= 0, got n={n}, resamples={resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)


def percentile_interval(
    values: np.ndarray, confidence: float = 0.95, point: float | None = None
) -> tuple[float, float]:
    """The central ``confidence`` share of the finite resampled values (NaN, NaN if none).

    With ``point`` (the statistic on the whole set), the interval is re-centred on it: the
    resamples' median moves onto ``point`` and the tails keep their distances. A statistic
    that resampling biases -- a histogram distance or an overlap area, which the duplicates of
    a resample make noisier -- then gets an interval around its own value that shows its
    spread; for a mean the median is the value already and nothing moves.

    >>> percentile_interval(np.arange(101.0), 0.5)
    (25.0, 75.0)
    >>> percentile_interval(np.arange(101.0), 0.5, point=60.0)
    (35.0, 85.0)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0
    low, median, high = np.quantile(values, [tail, 0.5, 1.0 - tail])
    shift = point - median if point is not None and np.isfinite(point) else 0.0
    return float(low + shift), float(high + shift)


def interval(
    value: float,
    resampled: np.ndarray,
    confidence: float = 0.95,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Interval:
    """``value`` with the re-centred percentile interval of its resamples, clipped to the
    statistic's ``bounds`` (e.g. 0..1 for a share)."""
    low, high = np.clip(percentile_interval(resampled, confidence, value), *bounds)
    return Interval(float(value), float(low), float(high))


def evaluate(statistic: WeightedStatistic, weights: np.ndarray) -> tuple[float, np.ndarray]:
    """``(statistic at all-ones weights, statistic at each row of weights)``."""
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 in a resample is NaN, skipped
        value = float(statistic(np.ones((1, weights.shape[1])))[0])
        resampled = statistic(weights) if len(weights) else np.zeros(0)
    return value, resampled


def estimate(
    statistic: WeightedStatistic,
    weights: np.ndarray,
    confidence: float = 0.95,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> Interval:
    """The statistic at all-ones weights and its :func:`interval` over ``weights``' rows."""
    return interval(*evaluate(statistic, weights), confidence, bounds)


def mean_of(values: np.ndarray) -> WeightedStatistic:
    """The weighted mean of per-composition values."""
    values = np.asarray(values, dtype=np.float64)
    return lambda w: (w @ values) / w.sum(axis=1)


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray) -> WeightedStatistic:
    """``sum(w * numerator) / sum(w * denominator)``: a share counted over the whole set (such
    as "notes in key over all notes"), resampled by composition."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return lambda w: (w @ numerator) / (w @ denominator)
