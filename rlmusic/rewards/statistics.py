"""RL Tuner's composition statistics, keyed by :class:`Statistic`, counted as the original
evaluation counted them.

One layer for every reader: ``rlmusic evaluate``, ``rlmusic compare`` and a run's ``eval/*``
metrics (:mod:`rlmusic.evaluation`), the rule constraints (:mod:`rlmusic.algos.constraints`,
which map a rule term to its statistic), and the rules themselves, whose detectors these
counts reuse (:mod:`rlmusic.rewards.theory`, :mod:`rlmusic.rewards.motif`). Everything passes
the identifiers around; the text a table prints for each lives in one place,
:data:`rlmusic.evaluation.table_rows.STATISTIC_ROWS`.

Every statistic reads the tokens one way (``NOTE_OFF`` starts a rest, ``NO_EVENT`` changes
nothing). An *onset* is a pitch token; a *step* is any token. ``N`` pieces of ``T`` steps give
``N x T`` steps: the original's ``total_notes``, the denominator of every "% of notes" row.

The table (the paper's rows; :meth:`CompositionStats.table`):

* ``NOTES_EXCESSIVELY_REPEATED`` — onsets that are the 5th or later strike of one pitch in an
  unbroken run of strikes (holds between strikes keep the run; a rest or another pitch ends
  it), over all steps. A single long held note is one strike, never a repeat (the original's
  detector counted held notes: one of its defects).
* ``AUTOCORRELATION_LAG_1`` .. ``_3`` — of the raw token sequence, as the original computed it:
  ``sum_t (x_t - m)(x_{t+k} - m) / (n var(x))``, averaged over pieces; a constant piece has no
  coefficient (the original's 0 / 0 = NaN, skipped by its ``nanmean``).
* ``NOTES_NOT_IN_KEY`` — onsets whose pitch class is outside the key's scale, over all steps
  (the original's key list counted rests and holds as in key).
* ``TONIC_START`` — pieces whose first step is the tonic at middle C's octave (token 14, MIDI
  60, in C), over pieces.
* ``LEAPS_RESOLVED`` — ``resolved / (resolved + doubled)`` from RL Tuner's leap detector
  (:func:`rlmusic.rewards.theory.leap_outcomes`, the original's ``detect_leap_up_back``): a
  leap of 7+ semitones between consecutive onsets opens; a gradual return to or past the note
  leapt from resolves it; a leap back resolves it only after more than 6 steps between the
  two leaps (else it just closes it); a second leap the same way is doubled (the leap stays
  open from the first note leapt from).
* ``UNIQUE_MAX`` / ``UNIQUE_MIN`` — pieces whose highest (lowest) pitch is struck exactly once.
* ``NOTES_IN_MOTIF`` — steps t >= 7 (every step: holds and rests too) whose 8-step window
  ``tokens[t-7 .. t]`` (the step included) holds at least 3 distinct pitches, over all steps.
  Steps 0..6 never count, so uniformly random tokens score 25 / 32 = 78.1% at T = 32.
* ``NOTES_IN_REPEATED_MOTIF`` — steps in a motif (as above) whose 8 tokens (holds and rests
  included) equal, token for token, the 8 tokens of a window that ends before this one starts
  (ends at some s <= t - 8): the original's ``detect_repeated_motif``, which searched the
  composition before the current window. Over all steps.

Today's variants, kept beside the table (:meth:`CompositionStats.variants`):

* ``..._PER_ONSET`` — the same counts for excessively repeated, not in key, in motif and in
  repeated motif, but only onsets count and the denominator is the onsets.
* ``LEAPS_RESOLVED_NEXT_NOTE_BACK`` — of leaps followed by another onset in the piece: the
  share whose next interval is non-zero and goes the other way (an immediate leap back
  counts). It gives random tokens about 94% and rewards alternating two notes a fifth apart.

And ``ONSETS_PER_PIECE`` (:meth:`CompositionStats.onsets_per_composition`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import MelodyView, scale_pitch_classes
from rlmusic.rewards.motif import repeats_earlier_window, window_distinct
from rlmusic.rewards.theory import DOUBLED, RESOLVED, excess_strikes, leap_outcomes

LEAP = 7  # semitones: a fifth or more
LEAP_MIN_GAP = 6  # a leap back resolves only after more than this many steps
REPEAT_LIMIT = 4  # more than this many strikes in a row is excessive
MOTIF_WINDOW = 8  # the original's "bar" in its motif statistics
MOTIF_MIN_PITCHES = 3


class Statistic(str, Enum):
    """A statistic's identifier. Its value is its metric name (``eval/<value>``), which sweeps
    and configs name, so a value never changes (tests/test_statistics.py pins them all).

    A ``str`` enum (Python 3.10 has no ``StrEnum``): a member is equal to its value, so a dict
    keyed by members answers a plain name too.

    >>> Statistic.TONIC_START == "compositions_starting_with_tonic", f"{Statistic.UNIQUE_MAX}"
    (True, 'unique_max_note')
    """

    NOTES_EXCESSIVELY_REPEATED = "notes_excessively_repeated"
    AUTOCORRELATION_LAG_1 = "mean_autocorrelation_lag_1"
    AUTOCORRELATION_LAG_2 = "mean_autocorrelation_lag_2"
    AUTOCORRELATION_LAG_3 = "mean_autocorrelation_lag_3"
    NOTES_NOT_IN_KEY = "notes_not_in_key"
    TONIC_START = "compositions_starting_with_tonic"
    LEAPS_RESOLVED = "leaps_resolved"
    UNIQUE_MAX = "unique_max_note"
    UNIQUE_MIN = "unique_min_note"
    NOTES_IN_MOTIF = "notes_in_motif"
    NOTES_IN_REPEATED_MOTIF = "notes_in_repeated_motif"
    NOTES_EXCESSIVELY_REPEATED_PER_ONSET = "notes_excessively_repeated_per_onset"
    NOTES_NOT_IN_KEY_PER_ONSET = "notes_not_in_key_per_onset"
    LEAPS_RESOLVED_NEXT_NOTE_BACK = "leaps_resolved_next_note_back"
    NOTES_IN_MOTIF_PER_ONSET = "notes_in_motif_per_onset"
    NOTES_IN_REPEATED_MOTIF_PER_ONSET = "notes_in_repeated_motif_per_onset"
    ONSETS_PER_PIECE = "onsets_per_piece"

    def __str__(self) -> str:  # the value in f-strings and str() on every Python version
        return self.value


@dataclass(frozen=True)
class KeySpec:
    """Tonic pitch class and mode; the default is the data's C major."""

    tonic: int = 0
    mode: str = "major"

    def scale(self) -> frozenset[int]:
        return frozenset(np.flatnonzero(scale_pitch_classes(self.tonic, self.mode)).tolist())


def _share(count: float, total: float) -> float:
    return count / total if total else float("nan")


@dataclass
class CompositionStats:
    """Counts over a batch of pieces; the statistics are methods, keyed by :class:`Statistic`."""

    pieces: int = 0
    steps: int = 0  # N x T: the original's total_notes
    onsets: int = 0
    repeated: int = 0
    not_in_key: int = 0
    starts_with_tonic: int = 0
    leaps_resolved: int = 0  # the detector's outcomes
    leaps_doubled: int = 0
    next_note_leaps: int = 0  # "next note goes back" variant: leaps with a next onset
    next_note_resolved: int = 0
    unique_max: int = 0
    unique_min: int = 0
    in_motif: int = 0  # steps
    in_repeated_motif: int = 0  # steps
    in_motif_onsets: int = 0
    in_repeated_motif_onsets: int = 0
    autocorrelation: list[list[float]] = field(default_factory=lambda: [[], [], []])

    def _autocorrelation(self, lag: int) -> float:
        values = np.array(self.autocorrelation[lag - 1], dtype=np.float64)
        values = values[~np.isnan(values)]  # constant pieces have none (the original's nanmean)
        return float(values.mean()) if len(values) else float("nan")

    def table(self) -> dict[Statistic, float]:
        """The RL Tuner table's statistics, in the paper's order, as fractions
        (autocorrelations as means), counted as the original evaluation counted them."""
        s = Statistic
        return {
            s.NOTES_EXCESSIVELY_REPEATED: _share(self.repeated, self.steps),
            s.AUTOCORRELATION_LAG_1: self._autocorrelation(1),
            s.AUTOCORRELATION_LAG_2: self._autocorrelation(2),
            s.AUTOCORRELATION_LAG_3: self._autocorrelation(3),
            s.NOTES_NOT_IN_KEY: _share(self.not_in_key, self.steps),
            s.TONIC_START: _share(self.starts_with_tonic, self.pieces),
            s.LEAPS_RESOLVED: _share(self.leaps_resolved, self.leaps_resolved + self.leaps_doubled),
            s.UNIQUE_MAX: _share(self.unique_max, self.pieces),
            s.UNIQUE_MIN: _share(self.unique_min, self.pieces),
            s.NOTES_IN_MOTIF: _share(self.in_motif, self.steps),
            s.NOTES_IN_REPEATED_MOTIF: _share(self.in_repeated_motif, self.steps),
        }

    def variants(self) -> dict[Statistic, float]:
        """Earlier ways of counting some statistics, kept for comparison (never the table's)."""
        s = Statistic
        return {
            s.NOTES_EXCESSIVELY_REPEATED_PER_ONSET: _share(self.repeated, self.onsets),
            s.NOTES_NOT_IN_KEY_PER_ONSET: _share(self.not_in_key, self.onsets),
            s.LEAPS_RESOLVED_NEXT_NOTE_BACK: _share(self.next_note_resolved, self.next_note_leaps),
            s.NOTES_IN_MOTIF_PER_ONSET: _share(self.in_motif_onsets, self.onsets),
            s.NOTES_IN_REPEATED_MOTIF_PER_ONSET: _share(self.in_repeated_motif_onsets, self.onsets),
        }

    def onsets_per_composition(self) -> float:
        """:attr:`Statistic.ONSETS_PER_PIECE`."""
        return _share(self.onsets, self.pieces)


def autocorrelate(signal: np.ndarray, lag: int) -> float:
    """The original's autocorrelation of a sequence at ``lag`` (0 for a constant sequence).

    >>> round(autocorrelate(np.array([1, 2, 1, 2, 1, 2]), 1), 3)
    -0.833
    """
    x = np.asarray(signal, dtype=np.float64)
    n = len(x)
    variance = x.var()
    if n <= lag or variance == 0:
        return 0.0
    centred = x - x.mean()
    return float((centred[lag:] * centred[: n - lag]).sum() / n / variance)


def _by_length(pieces: Sequence[np.ndarray] | np.ndarray) -> Iterator[np.ndarray]:
    """The pieces as (n, T) int64 arrays, one per length (so each batch is vectorised)."""
    groups: dict[int, list[np.ndarray]] = defaultdict(list)
    for piece in pieces:
        piece = np.asarray(piece).astype(np.int64).reshape(-1)
        groups[len(piece)].append(piece)
    for length, group in groups.items():
        yield np.stack(group) if length else np.zeros((len(group), 0), dtype=np.int64)


def _next_note_back(v: MelodyView) -> tuple[int, int]:
    """The variant's counts: (leaps with a next onset, those whose next interval goes back)."""
    moved = v.onset & (v.prev_pitch >= 0)
    interval = np.where(moved, v.pitch - v.prev_pitch, 0)
    before = np.where(  # the interval into the previous onset (0 if that was the first)
        v.prev_index >= 0, np.take_along_axis(interval, np.maximum(v.prev_index, 0), axis=1), 0
    )
    after_leap = moved & (np.abs(before) >= LEAP)
    back = after_leap & (interval != 0) & (np.sign(interval) == -np.sign(before))
    return int(after_leap.sum()), int(back.sum())


def batch_stats(
    tokens: np.ndarray, encoding: MelodyEncoding, key: KeySpec, stats: CompositionStats
) -> None:
    """Add the counts of ``tokens`` (N, T), pieces of one length, to ``stats``."""
    tokens = np.asarray(tokens).astype(np.int64)
    count, steps = tokens.shape
    stats.pieces += count
    stats.steps += count * steps
    for piece in tokens:
        constant = len(piece) == 0 or piece.min() == piece.max()
        for lag in (1, 2, 3):
            stats.autocorrelation[lag - 1].append(
                float("nan") if constant else autocorrelate(piece, lag)
            )
    if steps == 0:
        return
    v = MelodyView.of(tokens, encoding)
    stats.onsets += int(v.onset.sum())
    tonic = 60 + key.tonic if 60 + key.tonic <= encoding.max_pitch else 48 + key.tonic
    stats.starts_with_tonic += int((v.pitch[:, 0] == tonic).sum())
    in_key = scale_pitch_classes(key.tonic, key.mode)[np.maximum(v.pitch, 0) % 12]
    stats.not_in_key += int((v.onset & ~in_key).sum())
    stats.repeated += int(excess_strikes(v, REPEAT_LIMIT).sum())

    has = v.onset.any(axis=1)
    high = np.where(v.onset, v.pitch, -1).max(axis=1, keepdims=True)
    low = np.where(v.onset, v.pitch, 10**6).min(axis=1, keepdims=True)
    stats.unique_max += int((has & ((v.onset & (v.pitch == high)).sum(1) == 1)).sum())
    stats.unique_min += int((has & ((v.onset & (v.pitch == low)).sum(1) == 1)).sum())

    outcome = leap_outcomes(v.pitch, LEAP, LEAP_MIN_GAP)
    stats.leaps_resolved += int((outcome == RESOLVED).sum())
    stats.leaps_doubled += int((outcome == DOUBLED).sum())
    leaps, back = _next_note_back(v)
    stats.next_note_leaps += leaps
    stats.next_note_resolved += back

    motif = window_distinct(v.pitch, MOTIF_WINDOW) >= MOTIF_MIN_PITCHES
    repeated_motif = motif & repeats_earlier_window(tokens, MOTIF_WINDOW)
    stats.in_motif += int(motif.sum())
    stats.in_repeated_motif += int(repeated_motif.sum())
    stats.in_motif_onsets += int((motif & v.onset).sum())
    stats.in_repeated_motif_onsets += int((repeated_motif & v.onset).sum())


def piece_stats(
    tokens: np.ndarray, encoding: MelodyEncoding, key: KeySpec, stats: CompositionStats
) -> None:
    """Add one piece's counts to ``stats``."""
    batch_stats(np.asarray(tokens).reshape(1, -1), encoding, key, stats)


def composition_stats(
    pieces: Sequence[np.ndarray] | np.ndarray, encoding: MelodyEncoding, key: KeySpec | None = None
) -> CompositionStats:
    """RL Tuner's statistics over a batch of pieces (a (N, T) array or a list of arrays).

    >>> stats = composition_stats(np.array([[14, 1, 18, 21, 14, 0, 16, 14]]), MelodyEncoding())
    >>> stats.table()[Statistic.TONIC_START], stats.onsets_per_composition()
    (1.0, 6.0)
    """
    stats = CompositionStats()
    for batch in _by_length(pieces):
        batch_stats(batch, encoding, key or KeySpec(), stats)
    return stats
