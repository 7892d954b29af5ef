"""Realism against held-out melodies: L1 distances between pooled histograms, by piece.

The interval and duration histograms are :mod:`rlmusic.evaluation.metrics`' own
(``|interval|`` in 13 bins, note durations in 16); this module adds the **pitch-class
histogram** (12 bins, C..B, of the onsets' pitch classes) and writes each L1 distance as a
function of per-piece weights: a resample pools the per-piece counts it draws, normalises them
and takes the L1 distance (0..2) to the reference's fixed histogram.

>>> pitch_class_histogram([np.array([14, 1, 18, 0, 26])], MelodyEncoding()).tolist()[:5]
[0.6666666666666666, 0.0, 0.0, 0.0, 0.3333333333333333]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.bootstrap import WeightedStatistic
from rlmusic.evaluation.diversity import onset_pitches
from rlmusic.evaluation.metrics import abs_interval_counts, duration_counts

Pieces = Sequence[np.ndarray] | np.ndarray
Counter = Callable[[Pieces, MelodyEncoding], np.ndarray]  # pieces -> raw histogram counts


def pitch_class_counts(pieces: Pieces, encoding: MelodyEncoding) -> np.ndarray:
    """Raw counts of the onsets' pitch classes, 12 bins (C = 0 .. B = 11)."""
    counts = np.zeros(12)
    for piece in pieces:
        counts += np.bincount(onset_pitches(piece, encoding) % 12, minlength=12)
    return counts


def normalised(counts: np.ndarray) -> np.ndarray:
    """Rows of counts -> rows summing to 1 (an all-zero row stays zero)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def pitch_class_histogram(pieces: Pieces, encoding: MelodyEncoding) -> np.ndarray:
    """Normalised :func:`pitch_class_counts`."""
    return normalised(pitch_class_counts(pieces, encoding))


def pitch_class_l1(pieces: Pieces, reference: Pieces, encoding: MelodyEncoding) -> float:
    """L1 distance (0..2) between the pitch-class histograms of ``pieces`` and ``reference``."""
    return float(
        np.abs(
            pitch_class_histogram(pieces, encoding) - pitch_class_histogram(reference, encoding)
        ).sum()
    )


# name -> raw-count function; the histograms a report compares and plots
HISTOGRAMS: dict[str, Counter] = {
    "interval": abs_interval_counts,
    "pitch class": pitch_class_counts,
    "duration": duration_counts,
}
BIN_LABELS: dict[str, list[str]] = {
    "interval": [str(i) for i in range(12)] + ["12+"],
    "pitch class": ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"],
    "duration": [str(i) for i in range(1, 16)] + ["16+"],
}


def per_piece_counts(pieces: Pieces, encoding: MelodyEncoding, counter: Counter) -> np.ndarray:
    """(N, bins): each piece's own raw counts (their sum is the pooled counts)."""
    return np.stack([counter([piece], encoding) for piece in pieces])


def histogram_l1(counts: np.ndarray, reference: np.ndarray) -> WeightedStatistic:
    """L1 distance between the pooled, normalised histogram of the weighted pieces and the
    normalised ``reference`` histogram."""
    counts = np.asarray(counts, dtype=np.float64)
    reference = normalised(reference)
    return lambda w: np.abs(normalised(w @ counts) - reference).sum(axis=1)
