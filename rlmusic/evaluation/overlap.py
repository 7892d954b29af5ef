"""Yang & Lerch's overlap area: how far a set of pieces is from real melodies, feature by feature.

Yang & Lerch ("On the evaluation of generative models in music", 2020) compare, for each
simple feature, two distributions of distances: **intra-set** (between two real melodies) and
**inter-set** (between a generated piece and a real melody). Each is smoothed with a Gaussian
kernel density estimate (``scipy.stats.gaussian_kde``, Scott's bandwidth) and the **overlap
area** is ``integral of min(p_intra(x), p_inter(x)) dx``: 1 when the pieces sit among the real
melodies as the real melodies sit among themselves, 0 when they are far from all of them. The
integral runs on a grid that covers both samples and four bandwidths beyond (so two equal
samples give 1, not the truncated value of integrating between the extreme points only).

Features (per piece, after Yang & Lerch; a piece with too few notes gets 0):

* ``pitch count`` — distinct onset pitches; ``pitch range`` — highest minus lowest onset
  pitch (semitones); ``mean interval`` — mean ``|interval|`` between consecutive onsets;
* ``note count`` — onsets; ``inter-onset interval`` — mean steps between consecutive onsets;
* ``pitch-class histogram`` (12-d) and ``note-length histogram`` (16-d, the duration bins of
  :func:`rlmusic.evaluation.metrics.duration_histogram`), compared by Euclidean distance.

Distances are subsampled (seeded) to about ``distances`` on each side: each piece is measured
against ``m = round(distances / N)`` random real melodies (at least one), and as many pairs of
two different real melodies make the intra-set side. Equal counts give both densities the same
Scott bandwidth factor, so a column's size does not change how smooth its inter-set density is
(with 5,000 real pairs against 614 distances of 307 held-out melodies, held-out melodies looked
less real than a model's 1,000 pieces). A bootstrap reweights the pieces' inter-set distances
under the point estimate's kernel bandwidth (the kernel is not re-fitted per resample), all
resamples in one matrix product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import gaussian_kde

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.bootstrap import WeightedStatistic
from rlmusic.evaluation.diversity import onset_pitches
from rlmusic.evaluation.metrics import duration_histogram
from rlmusic.evaluation.realism import pitch_class_histogram

Pieces = Sequence[np.ndarray] | np.ndarray
GRID_POINTS = 512
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
TAIL_BANDWIDTHS = 4.0


def _scalar(
    fn: Callable[[np.ndarray], float],
) -> Callable[[np.ndarray, MelodyEncoding], np.ndarray]:
    def feature(piece: np.ndarray, encoding: MelodyEncoding) -> np.ndarray:
        return np.array([fn(onset_pitches(piece, encoding))], dtype=np.float64)

    return feature


def _mean_ioi(piece: np.ndarray, encoding: MelodyEncoding) -> np.ndarray:
    steps = np.flatnonzero(encoding.pitches(np.asarray(piece)) >= 0)
    return np.array([np.diff(steps).mean() if len(steps) > 1 else 0.0])


FEATURES: dict[str, Callable[[np.ndarray, MelodyEncoding], np.ndarray]] = {
    "pitch count": _scalar(lambda p: len(np.unique(p))),
    "pitch range": _scalar(lambda p: p.max() - p.min() if len(p) else 0.0),
    "mean interval": _scalar(lambda p: np.abs(np.diff(p)).mean() if len(p) > 1 else 0.0),
    "note count": _scalar(len),
    "inter-onset interval": _mean_ioi,
    "pitch-class histogram": lambda piece, enc: pitch_class_histogram([piece], enc),
    "note-length histogram": lambda piece, enc: duration_histogram([piece], enc),
}


def piece_features(pieces: Pieces, encoding: MelodyEncoding) -> dict[str, np.ndarray]:
    """Every feature of every piece: name -> (N, d)."""
    return {
        name: np.stack([fn(p, encoding) for p in pieces]).astype(np.float64)
        for name, fn in FEATURES.items()
    }


def _bandwidth(kde: gaussian_kde) -> float:
    return float(np.sqrt(kde.covariance[0, 0]))


def _grid(a: np.ndarray, b: np.ndarray, bandwidth: float, points: int) -> np.ndarray:
    low = min(a.min(), b.min()) - TAIL_BANDWIDTHS * bandwidth
    high = max(a.max(), b.max()) + TAIL_BANDWIDTHS * bandwidth
    return np.linspace(low, high, points)


def _kdes(a: np.ndarray, b: np.ndarray) -> tuple[gaussian_kde, gaussian_kde] | None:
    """Both KDEs, or None when a sample is degenerate (fewer than 2 values or no spread:
    scipy's kernel covariance is singular, and no density can be estimated)."""
    if len(a) < 2 or len(b) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return gaussian_kde(a), gaussian_kde(b)


def overlap_area(a: np.ndarray, b: np.ndarray, points: int = GRID_POINTS) -> float:
    """``integral min(kde_a, kde_b)``: 1 for equal samples, near 0 for far-apart ones; NaN when
    a sample is degenerate (see :func:`_kdes`).

    >>> round(overlap_area(np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0])), 4)
    1.0
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    kdes = _kdes(a, b)
    if kdes is None:
        return float("nan")
    grid = _grid(a, b, max(_bandwidth(k) for k in kdes), points)
    return float(_trapezoid(np.minimum(kdes[0](grid), kdes[1](grid)), grid))


def _distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.sqrt(((x - y) ** 2).sum(axis=-1))


def intra_set_distances(features: np.ndarray, pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Distances between real melodies: every pair if there are at most ``pairs``, else
    ``pairs`` random pairs of two different melodies."""
    n = len(features)
    if n * (n - 1) // 2 <= pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        i = rng.integers(0, n, pairs)
        j = (i + rng.integers(1, n, pairs)) % n  # never i itself
    return _distances(features[i], features[j])


def overlap_statistic(
    features: np.ndarray,
    reference: np.ndarray,
    rng: np.random.Generator,
    distances: int = 2000,
    points: int = GRID_POINTS,
) -> WeightedStatistic:
    """The overlap area of one feature as a function of per-piece weights.

    Args:
        features: (N, d) the pieces' feature values.
        reference: (R, d) the real melodies' feature values (R >= 2).
        rng: draws the distance pairs (first the real pairs, then each piece's partners).
        distances: about this many distances on each side (see the module's docstring).
        points: the integration grid.
    """
    partners = max(1, round(distances / len(features)))
    intra = intra_set_distances(reference, len(features) * partners, rng)
    chosen = rng.integers(0, len(reference), (len(features), partners))  # (N, m)
    inter = _distances(features[:, None, :], reference[chosen])  # (N, m)
    kdes = _kdes(intra, inter.ravel())
    if kdes is None:
        return lambda w: np.full(len(w), np.nan)
    bandwidth = _bandwidth(kdes[1])
    grid = _grid(intra, inter.ravel(), max(bandwidth, _bandwidth(kdes[0])), points)
    p_intra = kdes[0](grid)  # (G,)
    # each piece's own kernel density (the mean over its partners): (G, N)
    z = (grid[:, None, None] - inter[None]) / bandwidth  # (G, N, m)
    per_piece = (np.exp(-0.5 * z**2) / (bandwidth * np.sqrt(2 * np.pi))).mean(axis=2)

    def statistic(w: np.ndarray) -> np.ndarray:
        p_inter = (per_piece @ w.T) / w.sum(axis=1)  # (G, B)
        return _trapezoid(np.minimum(p_intra[:, None], p_inter), grid, axis=0)

    return statistic
