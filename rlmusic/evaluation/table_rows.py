"""RL Tuner's statistics as a table: what each row prints (:data:`STATISTIC_ROWS`, the one
place a statistic's text lives) and the rows resampled by composition.

The statistics are :class:`~rlmusic.rewards.statistics.Statistic` identifiers everywhere else;
their text appears only where a table, a report or a log shows them (:func:`row_name`). The
comparison's sections (``metrics.json``, the compare task's ``<model>/<row>`` metrics, the
report) key every row by its shown text.

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

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

import numpy as np

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.bootstrap import Interval, interval
from rlmusic.rewards.harmony_statistics import COUNT_FIELDS as HARMONY_FIELDS
from rlmusic.rewards.harmony_statistics import HarmonyStatistic, HarmonyStats, harmony_stats
from rlmusic.rewards.statistics import (
    CompositionStats,
    KeySpec,
    Statistic,
    composition_stats,
    piece_stats,
)

_COUNT_FIELDS = [f.name for f in fields(CompositionStats) if f.name != "autocorrelation"]


@dataclass(frozen=True)
class Unit:
    """What a row's numbers count, printed after its name; ``percent``: a fraction printed
    times 100 with a ``%`` sign."""

    label: str = ""
    percent: bool = False
    scale: float = field(default=1.0, repr=False)  # a rate's printed factor (1000: per 1,000)

    def scaled(self, value: float) -> float:
        return 100 * value if self.percent else self.scale * value


PERCENT_OF_NOTES = Unit("% of notes", percent=True)  # RL Tuner's notes: 16th-note steps
PERCENT_OF_ONSETS = Unit("% of onsets", percent=True)
PERCENT_OF_LEAPS = Unit("% of leaps", percent=True)
PERCENT_OF_COMPOSITIONS = Unit("% of compositions", percent=True)
PER_COMPOSITION = Unit("per composition")
NATS = Unit("nats")
CORRELATION = Unit("r")
AREA = Unit("area, 0–1")
CHANCE = Unit("0.5 = chance")
PER_1000_TRANSITIONS = Unit("per 1,000 moving voice-pair transitions", scale=1000.0)
PERCENT_OF_FRAMES = Unit("% of four-voice frames", percent=True)


def fmt(value: float | None, digits: int = 3) -> str:
    """``digits`` significant digits; an exponent only under 0.001 (float noise such as a
    model's KL from itself); ``n/a`` for NaN.

    >>> [fmt(x) for x in (0.2031, 0.0625, 0.39, 12.0, 1234.0, -0.5, 0.0, float("nan"))]
    ['0.203', '0.0625', '0.390', '12.0', '1230', '-0.500', '0', 'n/a']
    >>> fmt(0.00123), fmt(-1.4703e-9)
    ('0.00123', '-1.47e-9')
    """
    if value is None or not np.isfinite(value):
        return "n/a"
    rounded = float(f"{value:.{digits}g}")
    if rounded == 0:
        return "0"
    if abs(rounded) < 1e-3:
        mantissa, exponent = f"{rounded:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    decimals = max(digits - 1 - math.floor(math.log10(abs(rounded))), 0)
    return f"{rounded:.{decimals}f}"


def cell(iv: Interval, unit: Unit) -> tuple[str, str]:
    """``(value, "(low–high)")`` in the row's unit, three significant digits each.

    >>> cell(Interval(0.002031, 0.000625, 0.00391), Unit("% of notes", percent=True))
    ('0.203%', '(0.0625–0.391%)')
    >>> cell(Interval(-2.5, -2.61, float("nan")), Unit("nats"))
    ('-2.50', '(n/a)')
    """
    sign = "%" if unit.percent else ""
    value, low, high = (fmt(unit.scaled(x)) for x in (iv.value, iv.low, iv.high))
    spread = f"({low}–{high}{sign})" if "n/a" not in (low, high) else "(n/a)"
    return (value + sign if value != "n/a" else value), spread


@dataclass(frozen=True)
class Row:
    """How a statistic shows: its row's text (the paper's name) and its unit."""

    text: str
    unit: Unit


_S = Statistic
STATISTIC_ROWS: dict[Statistic, Row] = {
    _S.NOTES_EXCESSIVELY_REPEATED: Row("notes excessively repeated", PERCENT_OF_NOTES),
    _S.AUTOCORRELATION_LAG_1: Row("mean autocorrelation lag 1", CORRELATION),
    _S.AUTOCORRELATION_LAG_2: Row("mean autocorrelation lag 2", CORRELATION),
    _S.AUTOCORRELATION_LAG_3: Row("mean autocorrelation lag 3", CORRELATION),
    _S.NOTES_NOT_IN_KEY: Row("notes not in key", PERCENT_OF_NOTES),
    _S.TONIC_START: Row("compositions starting with tonic", PERCENT_OF_COMPOSITIONS),
    _S.LEAPS_RESOLVED: Row("leaps resolved", PERCENT_OF_LEAPS),
    _S.UNIQUE_MAX: Row("unique max note", PERCENT_OF_COMPOSITIONS),
    _S.UNIQUE_MIN: Row("unique min note", PERCENT_OF_COMPOSITIONS),
    _S.NOTES_IN_MOTIF: Row("notes in motif", PERCENT_OF_NOTES),
    _S.NOTES_IN_REPEATED_MOTIF: Row("notes in repeated motif", PERCENT_OF_NOTES),
    _S.NOTES_EXCESSIVELY_REPEATED_PER_ONSET: Row(
        "notes excessively repeated (per onset)", PERCENT_OF_ONSETS
    ),
    _S.NOTES_NOT_IN_KEY_PER_ONSET: Row("notes not in key (per onset)", PERCENT_OF_ONSETS),
    _S.LEAPS_RESOLVED_NEXT_NOTE_BACK: Row("leaps resolved (next note back)", PERCENT_OF_LEAPS),
    _S.NOTES_IN_MOTIF_PER_ONSET: Row("notes in motif (per onset)", PERCENT_OF_ONSETS),
    _S.NOTES_IN_REPEATED_MOTIF_PER_ONSET: Row(
        "notes in repeated motif (per onset)", PERCENT_OF_ONSETS
    ),
    _S.ONSETS_PER_PIECE: Row("onsets per composition", PER_COMPOSITION),
}
_H = HarmonyStatistic
HARMONY_ROWS: dict[HarmonyStatistic, Row] = {
    _H.PARALLEL_FIFTHS: Row("parallel fifths", PER_1000_TRANSITIONS),
    _H.PARALLEL_OCTAVES: Row("parallel octaves and unisons", PER_1000_TRANSITIONS),
    _H.PARALLELS: Row("parallel fifths and octaves", PER_1000_TRANSITIONS),
    _H.VOICE_CROSSING: Row("voice crossing", PERCENT_OF_FRAMES),
    _H.SPACING: Row("upper voices over an octave apart", PERCENT_OF_FRAMES),
    _H.OUT_OF_RANGE: Row("notes out of voice range", PERCENT_OF_ONSETS),
    _H.UNPREPARED_DISSONANCE: Row(
        "unprepared dissonance on beats 1 and 3", Unit("% of strong-beat frames", percent=True)
    ),
    _H.FINAL_CADENCE: Row("final V-I cadence", PERCENT_OF_COMPOSITIONS),
    _H.FULL_VOICING: Row("all four voices sounding", Unit("% of frames", percent=True)),
    _H.ONSETS_PER_VOICE_PER_BAR: Row("onsets per voice per bar", Unit("per voice per bar")),
    _H.PITCH_CHANGES_PER_VOICE_PER_BAR: Row(
        "pitch changes per voice per bar", Unit("per voice per bar")
    ),
}
# every table's rows: a statistic's identifier (of either enum) -> its text and unit
ROWS: dict[Enum, Row] = {**STATISTIC_ROWS, **HARMONY_ROWS}
_STATISTIC_OF_TEXT = {row.text: statistic for statistic, row in ROWS.items()}


def row_name(row: str) -> str:
    """The text a row shows: a statistic's from :data:`STATISTIC_ROWS`, any other row's (a
    realism measure, a reward term) its own name.

    >>> row_name(Statistic.TONIC_START), row_name("distinct share")
    ('compositions starting with tonic', 'distinct share')
    >>> row_name(HarmonyStatistic.PARALLEL_FIFTHS)
    'parallel fifths'
    """
    return ROWS[row].text if row in ROWS else row


def statistic_of(row: str) -> Statistic | HarmonyStatistic | None:
    """The statistic a row names, by identifier or by its shown text (as ``final_eval.json``
    and ``metrics.json`` hold it); None for any other row.

    >>> statistic_of("leaps resolved") is statistic_of("leaps_resolved") is Statistic.LEAPS_RESOLVED
    True
    """
    if row in STATISTIC_ROWS:
        return Statistic(row)
    if row in HARMONY_ROWS:
        return HarmonyStatistic(row)
    return _STATISTIC_OF_TEXT.get(row)


# a row's shown text -> its unit; a row named at run time takes the first pattern its name matches
UNITS: dict[str, Unit] = {
    **{row.text: row.unit for row in ROWS.values()},
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
TITLES = {  # printed names, where shorter than the row's
    STATISTIC_ROWS[Statistic.ONSETS_PER_PIECE].text: "onsets",
    "overlap area (mean)": "overlap: mean",
}


def unit_of(row: str) -> Unit:
    """The unit a row (a statistic, or any row's shown text) prints in (no label for a row it
    does not know).

    >>> unit_of("notes not in key"), unit_of("distinct 4-grams").label
    (Unit(label='% of notes', percent=True), '% of 4-grams')
    """
    row = row_name(row)
    if row in UNITS:
        return UNITS[row]
    for pattern, unit in UNIT_PATTERNS:
        if found := re.search(pattern, row):
            return Unit(found.expand(unit.label), unit.percent)
    return Unit()


def title(row: str, unit: Unit | None = None) -> str:
    """The row's printed name: its shown text and unit (``unit_of(row)`` unless given).

    >>> title("notes not in key"), title("onsets per composition")
    ('notes not in key (% of notes)', 'onsets (per composition)')
    >>> title("pitch-class entropy (bits)")
    'pitch-class entropy (bits)'
    """
    unit = unit_of(row) if unit is None else unit
    row = row_name(row)
    name = TITLES.get(row, row)
    if not unit.label or name.endswith(f"({unit.label})"):
        return name
    return f"{name} ({unit.label})"


def statistic_values(stats: Any) -> dict[Any, float]:
    """Every row of counted ``stats``: the table's, and onsets per piece for melodies (a row
    `rlmusic evaluate` prints beside the table; constraints bound it too)."""
    values = dict(stats.table())
    if hasattr(stats, "onsets_per_composition"):
        values[Statistic.ONSETS_PER_PIECE] = stats.onsets_per_composition()
    return values


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

    def rows(self, weights: np.ndarray) -> dict[Statistic, np.ndarray]:
        """Statistic -> (B,) values of the table (and onsets per piece) per weight row."""
        tables = []
        for w in np.atleast_2d(weights):
            stats = self.stats(w)
            tables.append(statistic_values(stats))
        return {row: np.array([t[row] for t in tables]) for row in tables[0]}


def table_intervals(
    counts: PieceCounts, weights: np.ndarray, confidence: float = 0.95
) -> dict[str, Interval]:
    """Every row (the table's and onsets per composition) by its shown text, as the
    comparison keys its sections: the set's value and its percentile interval over the
    resamples ``weights`` (B, N)."""
    point = counts.rows(np.ones((1, len(counts.counts)), dtype=np.int64))
    resampled = counts.rows(weights) if len(weights) else {row: np.zeros(0) for row in point}
    return {
        row_name(row): interval(float(point[row][0]), resampled[row], confidence) for row in point
    }


@dataclass
class HarmonyPieceCounts:
    """Each piece's voice-leading counts (N, fields): every field adds over pieces, so a
    resample is one weighted sum (:class:`~rlmusic.rewards.harmony_statistics.HarmonyStats`)."""

    counts: np.ndarray

    @classmethod
    def of(
        cls, pieces: np.ndarray, encoding: Any, key: KeySpec | None = None
    ) -> HarmonyPieceCounts:
        rows = [harmony_stats([piece], encoding, key).counts() for piece in pieces]
        return cls(np.array(rows, dtype=np.float64).reshape(len(rows), len(HARMONY_FIELDS)))

    def stats(self, weights: np.ndarray) -> HarmonyStats:
        summed = np.asarray(weights, dtype=np.float64) @ self.counts
        return HarmonyStats(**dict(zip(HARMONY_FIELDS, summed.tolist())))

    def rows(self, weights: np.ndarray) -> dict[HarmonyStatistic, np.ndarray]:
        """Statistic -> (B,) values of the table per weight row."""
        tables = [self.stats(w).table() for w in np.atleast_2d(weights)]
        return {row: np.array([t[row] for t in tables]) for row in tables[0]}


@dataclass(frozen=True)
class StatisticsTable:
    """One kind of music's table: the comparison's section title, the statistics (their
    identifiers), how a batch is counted and how pieces are kept for resampling."""

    section: str
    statistic: type[Enum]
    count: Callable[..., Any]  # (pieces, encoding, key) -> stats with table() and variants()
    per_piece: Callable[..., Any]  # (pieces, encoding, key) -> counts with rows(weights)
    beside: str  # what `rlmusic evaluate` prints beside the models: paper | heldout


# The one place an encoding's kind picks its statistics (evaluate, compare, constraints):
# melodies print RL Tuner's paper columns beside the models, chorales real Bach's held-out rates
# with every value's bootstrap interval.
TABLES: dict[str, StatisticsTable] = {
    "melody": StatisticsTable(
        "RL Tuner statistics", Statistic, composition_stats, PieceCounts.of, "paper"
    ),
    "chorale": StatisticsTable(
        "voice leading", HarmonyStatistic, harmony_stats, HarmonyPieceCounts.of, "heldout"
    ),
}


def table_for(encoding: Any) -> StatisticsTable:
    """The statistics table of ``encoding``'s kind (a melody by default).

    >>> from rlmusic.data.chorale_encoding import ChoraleEncoding
    >>> table_for(MelodyEncoding()).section, table_for(ChoraleEncoding()).section
    ('RL Tuner statistics', 'voice leading')
    """
    kind = getattr(encoding, "kind", "melody")
    if kind not in TABLES:
        raise ValueError(f"no statistics table for encoding kind {kind!r}; known: {sorted(TABLES)}")
    return TABLES[kind]
