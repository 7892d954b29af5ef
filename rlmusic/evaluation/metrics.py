"""RL Tuner's composition statistics, defined exactly, plus the realism measures beside them.

Every statistic reads the tokens one way (``NOTE_OFF`` starts a rest, ``NO_EVENT`` changes
nothing) and counts *note onsets* (pitch tokens) unless it says otherwise. Definitions:

* **excessively repeated** — share of onsets that are the 5th or later strike of one pitch in an
  unbroken run of strikes (holds between strikes do not break a run; a rest or another pitch
  does). A single long held note is one strike, never a repeat.
* **autocorrelation lag k** — of the raw token sequence, as the original computed it:
  ``sum((x_t - m)(x_{t+k} - m)) / (n var(x))``; 0 for a constant sequence. Averaged over pieces.
* **not in key** — share of onsets whose pitch class is outside the key's scale.
* **starts with tonic** — share of pieces whose first step is the tonic at middle C's octave
  (token of MIDI 60 in C), as the original counted.
* **leaps resolved** — a leap is an interval of 7+ semitones between consecutive onsets. It is
  *resolved* when the next interval moves the other way, *doubled* when the next interval is
  another leap the same way, else unresolved; leaps with no next onset in the piece are not
  counted. Share of counted leaps that are resolved.
* **unique max / min** — share of pieces whose highest (lowest) pitch is struck exactly once.
* **in motif** — share of onsets at step ``t >= w - 1`` whose window of the last ``w`` steps
  (``w = 8`` as in the original's table) holds at least 3 distinct pitches. Onsets before
  ``w - 1`` cannot complete a window: uniformly random tokens score about 78% at T = 32.
* **in repeated motif** — share of onsets in a motif whose ``w`` tokens equal an earlier,
  non-overlapping window of the same piece.

Realism: **distinct share** (unique pieces / pieces) and the **interval-histogram L1 distance**
to reference melodies (intervals between consecutive onsets, clipped to +-13 semitones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rlmusic.data.encoding import NO_EVENT, MelodyEncoding

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor plus the leading tone, as the key rule
LEAP = 7  # semitones: a fifth or more
REPEAT_LIMIT = 4  # more than this many strikes in a row is excessive
MOTIF_WINDOW = 8
MOTIF_MIN_PITCHES = 3
INTERVAL_CLIP = 13  # |interval| > 12 lands in the +-13 bins


@dataclass(frozen=True)
class KeySpec:
    """Tonic pitch class and mode; the default is the data's C major."""

    tonic: int = 0
    mode: str = "major"

    def scale(self) -> frozenset[int]:
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE
        return frozenset((self.tonic + s) % 12 for s in steps)


@dataclass
class CompositionStats:
    """Counts over a batch of pieces; the table shares are properties."""

    pieces: int = 0
    onsets: int = 0
    repeated: int = 0
    not_in_key: int = 0
    starts_with_tonic: int = 0
    leaps: int = 0
    leaps_resolved: int = 0
    leaps_doubled: int = 0
    unique_max: int = 0
    unique_min: int = 0
    in_motif: int = 0
    in_repeated_motif: int = 0
    autocorrelation: list[list[float]] = field(default_factory=lambda: [[], [], []])

    def table(self) -> dict[str, float]:
        """The RL Tuner table's rows as fractions (autocorrelations as means)."""

        def share(count: int, total: int) -> float:
            return count / total if total else float("nan")

        return {
            "notes excessively repeated": share(self.repeated, self.onsets),
            "mean autocorrelation lag 1": float(np.mean(self.autocorrelation[0]))
            if self.pieces
            else float("nan"),
            "mean autocorrelation lag 2": float(np.mean(self.autocorrelation[1]))
            if self.pieces
            else float("nan"),
            "mean autocorrelation lag 3": float(np.mean(self.autocorrelation[2]))
            if self.pieces
            else float("nan"),
            "notes not in key": share(self.not_in_key, self.onsets),
            "compositions starting with tonic": share(self.starts_with_tonic, self.pieces),
            "leaps resolved": share(self.leaps_resolved, self.leaps),
            "unique max note": share(self.unique_max, self.pieces),
            "unique min note": share(self.unique_min, self.pieces),
            "notes in motif": share(self.in_motif, self.onsets),
            "notes in repeated motif": share(self.in_repeated_motif, self.onsets),
        }


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


def _strike_runs_excess(pitches: list[int], steps: list[int], tokens: np.ndarray) -> int:
    """Onsets that are the 5th+ strike of one pitch with only holds between strikes."""
    excess, run = 0, 0
    for i, pitch in enumerate(pitches):
        if (
            i > 0
            and pitch == pitches[i - 1]
            and not np.any(tokens[steps[i - 1] + 1 : steps[i]] != NO_EVENT)
        ):
            run += 1
        else:
            run = 1
        if run > REPEAT_LIMIT:
            excess += 1
    return excess


def piece_stats(
    tokens: np.ndarray, encoding: MelodyEncoding, key: KeySpec, stats: CompositionStats
) -> None:
    """Add one piece's counts to ``stats``."""
    tokens = np.asarray(tokens).astype(np.int64)
    pitch_of = encoding.pitches(tokens)
    steps = np.flatnonzero(pitch_of >= 0).tolist()
    pitches = [int(pitch_of[s]) for s in steps]
    stats.pieces += 1
    stats.onsets += len(steps)
    for lag in (1, 2, 3):
        stats.autocorrelation[lag - 1].append(autocorrelate(tokens, lag))
    tonic_token = encoding.pitch_to_token(
        60 + key.tonic if 60 + key.tonic <= encoding.max_pitch else 48 + key.tonic
    )
    stats.starts_with_tonic += int(len(tokens) > 0 and tokens[0] == tonic_token)
    if not steps:
        return
    scale = key.scale()
    stats.not_in_key += sum(p % 12 not in scale for p in pitches)
    stats.repeated += _strike_runs_excess(pitches, steps, tokens)
    stats.unique_max += int(pitches.count(max(pitches)) == 1)
    stats.unique_min += int(pitches.count(min(pitches)) == 1)
    intervals = np.diff(pitches)
    for i, interval in enumerate(intervals[:-1]):
        if abs(interval) < LEAP:
            continue
        following = intervals[i + 1]
        stats.leaps += 1
        if np.sign(following) == -np.sign(interval):
            stats.leaps_resolved += 1
        elif abs(following) >= LEAP and np.sign(following) == np.sign(interval):
            stats.leaps_doubled += 1
    w = MOTIF_WINDOW
    for step in steps:
        if step < w - 1:
            continue
        window = pitch_of[step - w + 1 : step + 1]
        if len(set(window[window >= 0].tolist())) < MOTIF_MIN_PITCHES:
            continue
        stats.in_motif += 1
        current = tokens[step - w + 1 : step + 1]
        if any(
            np.array_equal(current, tokens[s - w + 1 : s + 1]) for s in range(w - 1, step - w + 1)
        ):
            stats.in_repeated_motif += 1


def composition_stats(
    pieces: Sequence[np.ndarray] | np.ndarray, encoding: MelodyEncoding, key: KeySpec | None = None
) -> CompositionStats:
    """RL Tuner's statistics over a batch of pieces (a (N, T) array or a list of arrays)."""
    stats = CompositionStats()
    for piece in pieces:
        piece_stats(piece, encoding, key or KeySpec(), stats)
    return stats


def distinct_share(pieces: Sequence[np.ndarray] | np.ndarray) -> float:
    """Unique pieces / pieces (1.0 = no two pieces alike)."""
    if len(pieces) == 0:
        return float("nan")
    return len({np.asarray(p).astype(np.int64).tobytes() for p in pieces}) / len(pieces)


def interval_histogram(
    pieces: Sequence[np.ndarray] | np.ndarray, encoding: MelodyEncoding
) -> np.ndarray:
    """Normalised histogram of intervals between consecutive onsets, bins -13..13 (clipped)."""
    counts = np.zeros(2 * INTERVAL_CLIP + 1)
    for piece in pieces:
        pitch_of = encoding.pitches(piece)
        intervals = np.diff(pitch_of[pitch_of >= 0])
        np.add.at(counts, np.clip(intervals, -INTERVAL_CLIP, INTERVAL_CLIP) + INTERVAL_CLIP, 1)
    total = counts.sum()
    return counts / total if total else counts


def interval_l1(
    pieces: Sequence[np.ndarray] | np.ndarray,
    reference: Sequence[np.ndarray] | np.ndarray,
    encoding: MelodyEncoding,
) -> float:
    """L1 distance between the interval histograms of ``pieces`` and ``reference`` (0..2)."""
    return float(
        np.abs(interval_histogram(pieces, encoding) - interval_histogram(reference, encoding)).sum()
    )
