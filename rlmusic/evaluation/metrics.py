"""RL Tuner's composition statistics, counted as the original evaluation counted them, plus the
realism measures to read beside them.

Every statistic reads the tokens one way (``NOTE_OFF`` starts a rest, ``NO_EVENT`` changes
nothing). An *onset* is a pitch token; a *step* is any token. ``N`` pieces of ``T`` steps give
``N x T`` steps: the original's ``total_notes``, the denominator of every "% of notes" row.

The table's rows (the paper's names; ``CompositionStats.table``):

* **notes excessively repeated** — onsets that are the 5th or later strike of one pitch in an
  unbroken run of strikes (holds between strikes keep the run; a rest or another pitch ends
  it), over all steps. A single long held note is one strike, never a repeat (the original's
  detector counted held notes: one of its defects).
* **mean autocorrelation lag k** — of the raw token sequence, as the original computed it:
  ``sum_t (x_t - m)(x_{t+k} - m) / (n var(x))``, averaged over pieces; a constant piece has no
  coefficient (the original's 0 / 0 = NaN, skipped by its ``nanmean``).
* **notes not in key** — onsets whose pitch class is outside the key's scale, over all steps
  (the original's key list counted rests and holds as in key).
* **compositions starting with tonic** — pieces whose first step is the tonic at middle C's
  octave (token 14, MIDI 60, in C), over pieces.
* **leaps resolved** — ``resolved / (resolved + doubled)`` from RL Tuner's leap detector
  (:func:`rlmusic.rewards.theory.leap_outcomes`, the original's ``detect_leap_up_back``): a
  leap of 7+ semitones between consecutive onsets opens; a gradual return to or past the note
  leapt from resolves it; a leap back resolves it only after more than 6 steps between the
  two leaps (else it just closes it); a second leap the same way is doubled (the leap stays
  open from the first note leapt from).
* **unique max / min note** — pieces whose highest (lowest) pitch is struck exactly once.
* **notes in motif** — steps t >= 7 (every step: holds and rests too) whose 8-step window
  ``tokens[t-7 .. t]`` (the step included) holds at least 3 distinct pitches, over all steps.
  Steps 0..6 never count, so uniformly random tokens score 25 / 32 = 78.1% at T = 32.
* **notes in repeated motif** — steps in a motif (as above) whose 8 tokens (holds and rests
  included) equal, token for token, the 8 tokens of a window that ends before this one starts
  (ends at some s <= t - 8): the original's ``detect_repeated_motif``, which searched the
  composition before the current window. Over all steps.

Today's variants, kept as extra rows (``CompositionStats.variants``):

* **... (per onset)** — the same counts for excessively repeated, not in key, in motif and in
  repeated motif, but only onsets count and the denominator is the onsets.
* **leaps resolved (next note back)** — of leaps followed by another onset in the piece: the
  share whose next interval is non-zero and goes the other way (an immediate leap back
  counts). It gives random tokens about 94% and rewards alternating two notes a fifth apart.

Realism: **distinct share** (unique pieces / pieces), **onsets per composition**, and L1
distances to reference melodies of the normalised histograms of

* **intervals** (:func:`abs_interval_histogram`, the target's measure): ``|interval|`` between
  consecutive onsets (holds and rests skipped) in 13 bins, 0..11 semitones and >= 12;
  :func:`interval_histogram` keeps the earlier signed version (27 bins, -13..13, clipped);
* **note durations** (:func:`duration_histogram`): an onset lasts 1 step plus the unbroken
  run of ``NO_EVENT`` after it (until the next onset, a ``NOTE_OFF`` or the piece's end, so a
  note cut by the end counts as what was heard); 16 bins, 1..15 steps and >= 16 (a bar).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from rlmusic.data.encoding import NO_EVENT, MelodyEncoding
from rlmusic.rewards.base import MelodyView, scale_pitch_classes
from rlmusic.rewards.motif import repeats_earlier_window, window_distinct
from rlmusic.rewards.theory import DOUBLED, RESOLVED, excess_strikes, leap_outcomes

LEAP = 7  # semitones: a fifth or more
LEAP_MIN_GAP = 6  # a leap back resolves only after more than this many steps
REPEAT_LIMIT = 4  # more than this many strikes in a row is excessive
MOTIF_WINDOW = 8  # the original's "bar" in its motif statistics
MOTIF_MIN_PITCHES = 3
INTERVAL_CLIP = 13  # signed histogram: |interval| > 12 lands in the +-13 bins
ABS_INTERVAL_BINS = 13  # |interval| 0..11 and >= 12
DURATION_BINS = 16  # 1..15 steps and >= 16


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
    """Counts over a batch of pieces; the table's shares are methods."""

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

    def table(self) -> dict[str, float]:
        """The RL Tuner table's rows as fractions (autocorrelations as means), counted as the
        original evaluation counted them."""
        return {
            "notes excessively repeated": _share(self.repeated, self.steps),
            "mean autocorrelation lag 1": self._autocorrelation(1),
            "mean autocorrelation lag 2": self._autocorrelation(2),
            "mean autocorrelation lag 3": self._autocorrelation(3),
            "notes not in key": _share(self.not_in_key, self.steps),
            "compositions starting with tonic": _share(self.starts_with_tonic, self.pieces),
            "leaps resolved": _share(self.leaps_resolved, self.leaps_resolved + self.leaps_doubled),
            "unique max note": _share(self.unique_max, self.pieces),
            "unique min note": _share(self.unique_min, self.pieces),
            "notes in motif": _share(self.in_motif, self.steps),
            "notes in repeated motif": _share(self.in_repeated_motif, self.steps),
        }

    def variants(self) -> dict[str, float]:
        """Earlier ways of counting some rows, kept for comparison (never the primary rows)."""
        return {
            "notes excessively repeated (per onset)": _share(self.repeated, self.onsets),
            "notes not in key (per onset)": _share(self.not_in_key, self.onsets),
            "leaps resolved (next note back)": _share(
                self.next_note_resolved, self.next_note_leaps
            ),
            "notes in motif (per onset)": _share(self.in_motif_onsets, self.onsets),
            "notes in repeated motif (per onset)": _share(
                self.in_repeated_motif_onsets, self.onsets
            ),
        }

    def onsets_per_composition(self) -> float:
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
    """RL Tuner's statistics over a batch of pieces (a (N, T) array or a list of arrays)."""
    stats = CompositionStats()
    for batch in _by_length(pieces):
        batch_stats(batch, encoding, key or KeySpec(), stats)
    return stats


def distinct_share(pieces: Sequence[np.ndarray] | np.ndarray) -> float:
    """Unique pieces / pieces (1.0 = no two pieces alike)."""
    if len(pieces) == 0:
        return float("nan")
    return len({np.asarray(p).astype(np.int64).tobytes() for p in pieces}) / len(pieces)


def _normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts


def _intervals(piece: np.ndarray, encoding: MelodyEncoding) -> np.ndarray:
    """Signed intervals between consecutive onsets of one piece (holds and rests skipped)."""
    pitch_of = encoding.pitches(np.asarray(piece))
    return np.diff(pitch_of[pitch_of >= 0])


def interval_histogram(
    pieces: Sequence[np.ndarray] | np.ndarray, encoding: MelodyEncoding
) -> np.ndarray:
    """Normalised histogram of signed intervals between consecutive onsets, 27 bins -13..13
    (clipped: +-13 holds everything over an octave)."""
    counts = np.zeros(2 * INTERVAL_CLIP + 1)
    for piece in pieces:
        intervals = _intervals(piece, encoding)
        np.add.at(counts, np.clip(intervals, -INTERVAL_CLIP, INTERVAL_CLIP) + INTERVAL_CLIP, 1)
    return _normalised(counts)


def abs_interval_histogram(
    pieces: Sequence[np.ndarray] | np.ndarray, encoding: MelodyEncoding
) -> np.ndarray:
    """Normalised histogram of ``|interval|`` between consecutive onsets (holds and rests
    skipped), 13 bins: 0..11 semitones, and 12 or more in the last.

    >>> abs_interval_histogram([np.array([14, 1, 21, 0, 14, 37])], MelodyEncoding()).tolist()[7::5]
    [0.6666666666666666, 0.3333333333333333]
    """
    return _normalised(abs_interval_counts(pieces, encoding))


def abs_interval_counts(
    pieces: Sequence[np.ndarray] | np.ndarray, encoding: MelodyEncoding
) -> np.ndarray:
    """The raw counts behind :func:`abs_interval_histogram` (13 bins, not normalised)."""
    counts = np.zeros(ABS_INTERVAL_BINS)
    for piece in pieces:
        np.add.at(counts, np.minimum(np.abs(_intervals(piece, encoding)), ABS_INTERVAL_BINS - 1), 1)
    return counts


def note_durations(piece: np.ndarray, encoding: MelodyEncoding) -> np.ndarray:
    """Each onset's duration in steps: 1 plus the unbroken run of ``NO_EVENT`` right after it
    (it ends at the next onset, at a ``NOTE_OFF`` or at the piece's end).

    >>> note_durations(np.array([1, 14, 1, 1, 16, 0, 1, 18, 1]), MelodyEncoding()).tolist()
    [3, 1, 2]
    """
    tokens = np.asarray(piece).astype(np.int64).reshape(-1)
    onsets = np.flatnonzero(encoding.pitches(tokens) >= 0)
    # a duration ends at the first step after the onset that is not NO_EVENT (or at the end)
    breaks = np.flatnonzero(tokens != NO_EVENT)
    ends = np.append(breaks, len(tokens))[np.searchsorted(breaks, onsets, side="right")]
    return ends - onsets


def duration_histogram(
    pieces: Sequence[np.ndarray] | np.ndarray, encoding: MelodyEncoding
) -> np.ndarray:
    """Normalised histogram of :func:`note_durations`, 16 bins: 1..15 steps, and 16 or more."""
    return _normalised(duration_counts(pieces, encoding))


def duration_counts(
    pieces: Sequence[np.ndarray] | np.ndarray, encoding: MelodyEncoding
) -> np.ndarray:
    """The raw counts behind :func:`duration_histogram` (16 bins, not normalised)."""
    counts = np.zeros(DURATION_BINS)
    for piece in pieces:
        np.add.at(counts, np.minimum(note_durations(piece, encoding), DURATION_BINS) - 1, 1)
    return counts


def _l1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).sum())


def interval_l1(
    pieces: Sequence[np.ndarray] | np.ndarray,
    reference: Sequence[np.ndarray] | np.ndarray,
    encoding: MelodyEncoding,
) -> float:
    """L1 distance (0..2) between the signed 27-bin interval histograms of ``pieces`` and
    ``reference``."""
    return _l1(interval_histogram(pieces, encoding), interval_histogram(reference, encoding))


def abs_interval_l1(
    pieces: Sequence[np.ndarray] | np.ndarray,
    reference: Sequence[np.ndarray] | np.ndarray,
    encoding: MelodyEncoding,
) -> float:
    """L1 distance (0..2) between the 13-bin ``|interval|`` histograms (the target's measure)."""
    return _l1(
        abs_interval_histogram(pieces, encoding), abs_interval_histogram(reference, encoding)
    )


def duration_l1(
    pieces: Sequence[np.ndarray] | np.ndarray,
    reference: Sequence[np.ndarray] | np.ndarray,
    encoding: MelodyEncoding,
) -> float:
    """L1 distance (0..2) between the note-duration histograms of ``pieces`` and ``reference``."""
    return _l1(duration_histogram(pieces, encoding), duration_histogram(reference, encoding))
