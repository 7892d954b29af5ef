"""Diversity of a set of compositions, each measure written so it can be resampled by piece.

* **distinct share** — unique pieces / pieces (:func:`rlmusic.evaluation.metrics.distinct_share`).
  Per piece it is ``1 / copies``, ``copies`` being how many pieces of the set equal it: the mean
  of those terms is the share, and a bootstrap resamples them instead of counting the copies a
  resample makes (which would halve the share of any set of distinct pieces).
* **distinct n-grams** — unique n-grams / n-grams, over the sequences of onset pitches (holds
  and rests skipped: a repeated rhythm with new notes is new material), pooled over the set
  (Li et al.'s distinct-n). Per piece: ``sum over its n-grams of 1 / copies of that n-gram in
  the set`` over its n-gram count (a ratio of sums, resampled by piece).
* **pitch-class entropy** — per piece, the Shannon entropy in bits of the histogram of its
  onsets' pitch classes (MusPy's ``pitch_class_entropy``), averaged over the pieces that have
  an onset: 0 for one pitch class, log2(12) = 3.585 for all twelve equally often.

>>> c, e, g = 14, 18, 21  # C4, E4, G4
>>> round(pitch_class_entropy(np.array([c, e, 1, g, c]), MelodyEncoding()), 3)
1.5
>>> distinct_ngrams([np.array([c, e, g]), np.array([c, e, c])], MelodyEncoding(), 2)
0.75
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from rlmusic.data.encoding import MelodyEncoding

Pieces = Sequence[np.ndarray] | np.ndarray


def copy_counts(pieces: Pieces) -> np.ndarray:
    """(N,) how many pieces of the set equal each piece (itself included)."""
    keys = [np.asarray(p).astype(np.int64).tobytes() for p in pieces]
    counts = Counter(keys)
    return np.array([counts[k] for k in keys], dtype=np.float64)


def distinct_share_terms(pieces: Pieces) -> np.ndarray:
    """(N,) ``1 / copies`` per piece: their mean is the set's distinct share."""
    return 1.0 / copy_counts(pieces)


def onset_pitches(piece: np.ndarray, encoding: MelodyEncoding) -> np.ndarray:
    """The MIDI pitches of a piece's onsets, in order (holds and rests skipped)."""
    pitch = encoding.pitches(np.asarray(piece))
    return pitch[pitch >= 0]


def _ngrams(piece: np.ndarray, encoding: MelodyEncoding, n: int) -> list[tuple[int, ...]]:
    pitches = onset_pitches(piece, encoding).tolist()
    return [tuple(pitches[i : i + n]) for i in range(len(pitches) - n + 1)]


def distinct_ngram_terms(
    pieces: Pieces, encoding: MelodyEncoding, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per piece: (sum of ``1 / copies`` over its n-grams, its n-gram count); the ratio of
    their sums is :func:`distinct_ngrams`."""
    if n < 1:
        raise ValueError(f"n-grams need n >= 1, got {n}")
    grams = [_ngrams(p, encoding, n) for p in pieces]
    copies = Counter(g for piece in grams for g in piece)
    numerator = np.array([sum(1.0 / copies[g] for g in piece) for piece in grams])
    denominator = np.array([len(piece) for piece in grams], dtype=np.float64)
    return numerator, denominator


def distinct_ngrams(pieces: Pieces, encoding: MelodyEncoding, n: int) -> float:
    """Unique n-grams of onset pitches / all such n-grams in the set (NaN if there are none)."""
    numerator, denominator = distinct_ngram_terms(pieces, encoding, n)
    total = denominator.sum()
    return float(numerator.sum() / total) if total else float("nan")


def pitch_class_entropy(piece: np.ndarray, encoding: MelodyEncoding) -> float:
    """Entropy in bits of one piece's onset pitch-class histogram (NaN without onsets)."""
    counts = np.bincount(onset_pitches(piece, encoding) % 12, minlength=12).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: -0.0 for one class reads as 0.0


def pitch_class_entropies(pieces: Pieces, encoding: MelodyEncoding) -> np.ndarray:
    """(N,) :func:`pitch_class_entropy` of each piece."""
    return np.array([pitch_class_entropy(p, encoding) for p in pieces], dtype=np.float64)
