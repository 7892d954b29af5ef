"""RL Tuner's table rows resampled by composition, counted exactly as
:func:`rlmusic.evaluation.metrics.composition_stats` counts them.

Every row is a share of counts summed over the pieces (or a mean of per-piece
autocorrelations), so one :class:`CompositionStats` per piece is enough: a resample sums the
pieces' counts by their weights (and repeats their autocorrelations), and the table's own
:meth:`CompositionStats.table` turns that into the rows. At all-ones weights this is the set's
table, number for number.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.bootstrap import Interval, interval
from rlmusic.evaluation.metrics import CompositionStats, KeySpec, piece_stats

ONSETS_ROW = "onsets per composition"
_COUNT_FIELDS = [f.name for f in fields(CompositionStats) if f.name != "autocorrelation"]


@dataclass
class PieceCounts:
    """Each piece's table counts: ``counts`` (N, fields) and autocorrelations (3, N)."""

    counts: np.ndarray
    autocorrelation: np.ndarray

    @classmethod
    def of(
        cls, pieces: np.ndarray, encoding: MelodyEncoding, key: KeySpec | None = None
    ) -> PieceCounts:
        rows, lags = [], []
        for piece in pieces:
            stats = CompositionStats()
            piece_stats(piece, encoding, key or KeySpec(), stats)
            rows.append([getattr(stats, name) for name in _COUNT_FIELDS])
            lags.append([values[0] for values in stats.autocorrelation])
        return cls(np.array(rows, dtype=np.int64), np.array(lags, dtype=np.float64).T)

    def stats(self, weights: np.ndarray) -> CompositionStats:
        """The counts of a resample: each piece taken ``weights[i]`` times (integer weights)."""
        weights = np.asarray(weights).astype(np.int64)
        summed = weights @ self.counts
        return CompositionStats(
            **{name: int(v) for name, v in zip(_COUNT_FIELDS, summed)},
            autocorrelation=[np.repeat(lag, weights).tolist() for lag in self.autocorrelation],
        )

    def rows(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Row name -> (B,) values of the table (and onsets per composition) per weight row."""
        tables = []
        for w in np.atleast_2d(weights):
            stats = self.stats(w)
            tables.append({**stats.table(), ONSETS_ROW: stats.onsets_per_composition()})
        return {row: np.array([t[row] for t in tables]) for row in tables[0]}


def table_intervals(
    counts: PieceCounts, weights: np.ndarray, confidence: float = 0.95
) -> dict[str, Interval]:
    """Every row (the table's and onsets per composition): the set's value and its percentile
    interval over the resamples ``weights`` (B, N)."""
    point = counts.rows(np.ones((1, len(counts.counts)), dtype=np.int64))
    resampled = counts.rows(weights) if len(weights) else {row: np.zeros(0) for row in point}
    return {row: interval(float(point[row][0]), resampled[row], confidence) for row in point}
