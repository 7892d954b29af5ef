"""RL Tuner's table rows resampled by composition, counted exactly as
:func:`rlmusic.evaluation.metrics.composition_stats` counts them.

Every row is a share of counts summed over the pieces (or a mean of per-piece
autocorrelations), so one :class:`CompositionStats` per piece is enough: a resample sums the
pieces' counts by their weights (and repeats their autocorrelations), and the table's own
:meth:`CompositionStats.table` turns that into the rows. At all-ones weights this is the set's
table, number for number.

How a row prints (:mod:`rlmusic.evaluation.report`, :mod:`rlmusic.evaluation.plots`): its
:class:`Unit`, named after the row (``notes not in key (% of notes)``); a share prints as a
percentage, as RL Tuner's paper prints its table. ``metrics.json`` and the task's metrics keep
the rows' own names and raw fractions.
"""

from __future__ import annotations

import re
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


@dataclass(frozen=True)
class Unit:
    """What a row's numbers count, printed after its name; ``percent``: a fraction printed
    times 100 with a ``%`` sign."""

    label: str = ""
    percent: bool = False

    def scaled(self, value: float) -> float:
        return 100 * value if self.percent else value


PERCENT_OF_NOTES = Unit("% of notes", percent=True)  # RL Tuner's notes: 16th-note steps
PERCENT_OF_COMPOSITIONS = Unit("% of compositions", percent=True)
PER_COMPOSITION = Unit("per composition")
NATS = Unit("nats")
CORRELATION = Unit("r")
AREA = Unit("area, 0–1")
CHANCE = Unit("0.5 = chance")
# a row's name -> its unit; a row named at run time takes the first pattern its name matches
UNITS: dict[str, Unit] = {
    "notes excessively repeated": PERCENT_OF_NOTES,
    "mean autocorrelation lag 1": CORRELATION,
    "mean autocorrelation lag 2": CORRELATION,
    "mean autocorrelation lag 3": CORRELATION,
    "notes not in key": PERCENT_OF_NOTES,
    "compositions starting with tonic": PERCENT_OF_COMPOSITIONS,
    "leaps resolved": Unit("% of leaps", percent=True),
    "unique max note": PERCENT_OF_COMPOSITIONS,
    "unique min note": PERCENT_OF_COMPOSITIONS,
    "notes in motif": PERCENT_OF_NOTES,
    "notes in repeated motif": PERCENT_OF_NOTES,
    ONSETS_ROW: PER_COMPOSITION,
    "log p per onset": NATS,
    "log p per token": NATS,
    "KL(model || prior) per token": NATS,
    "distinct share": PERCENT_OF_COMPOSITIONS,
    "pitch-class entropy (bits)": Unit("bits"),
    "overlap area (mean)": AREA,
}
UNIT_PATTERNS: list[tuple[str, Unit]] = [
    (r"^distinct (\d+)-grams$", Unit(r"% of \1-grams", percent=True)),
    (r" L1$", Unit("distance, 0–2")),
    (r"^overlap: ", AREA),
    (r"^critic ", CHANCE),  # critic accuracy, and the critic test's own checks
]
TITLES = {ONSETS_ROW: "onsets", "overlap area (mean)": "overlap: mean"}  # printed names


def unit_of(row: str) -> Unit:
    """The unit a row prints in (no label for a row it does not know).

    >>> unit_of("notes not in key"), unit_of("distinct 4-grams").label
    (Unit(label='% of notes', percent=True), '% of 4-grams')
    """
    if row in UNITS:
        return UNITS[row]
    for pattern, unit in UNIT_PATTERNS:
        if found := re.search(pattern, row):
            return Unit(found.expand(unit.label), unit.percent)
    return Unit()


def title(row: str, unit: Unit | None = None) -> str:
    """The row's printed name: its name and unit (``unit_of(row)`` unless given).

    >>> title("notes not in key"), title("onsets per composition")
    ('notes not in key (% of notes)', 'onsets (per composition)')
    >>> title("pitch-class entropy (bits)")
    'pitch-class entropy (bits)'
    """
    unit = unit_of(row) if unit is None else unit
    name = TITLES.get(row, row)
    if not unit.label or name.endswith(f"({unit.label})"):
        return name
    return f"{name} ({unit.label})"
