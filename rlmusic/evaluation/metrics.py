"""Realism measures, read beside RL Tuner's statistics (:mod:`rlmusic.rewards.statistics`
counts those, keyed by :class:`~rlmusic.rewards.statistics.Statistic`).

**distinct share** (unique pieces / pieces), and L1 distances to reference melodies of the
normalised histograms of

* **intervals** (:func:`abs_interval_histogram`, the target's measure): ``|interval|`` between
  consecutive onsets (holds and rests skipped) in 13 bins, 0..11 semitones and >= 12;
  :func:`interval_histogram` keeps the earlier signed version (27 bins, -13..13, clipped);
* **note durations** (:func:`duration_histogram`): an onset lasts 1 step plus the unbroken
  run of ``NO_EVENT`` after it (until the next onset, a ``NOTE_OFF`` or the piece's end, so a
  note cut by the end counts as what was heard); 16 bins, 1..15 steps and >= 16 (a bar).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlmusic.data.encoding import NO_EVENT, MelodyEncoding

INTERVAL_CLIP = 13  # signed histogram: |interval| > 12 lands in the +-13 bins
ABS_INTERVAL_BINS = 13  # |interval| 0..11 and >= 12
DURATION_BINS = 16  # 1..15 steps and >= 16


def distinct_share(pieces: Sequence[np.ndarray] | np.ndarray) -> float:
    """Unique pieces / pieces (1.0 = no two pieces alike)."""
    if len(pieces) == 0:
        return float("nan")
    return len({np.asarray(p).astype(np.int64).tobytes() for p in pieces}) / len(pieces)


def _normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts


def voice_lines(
    piece: np.ndarray, encoding: MelodyEncoding
) -> list[tuple[np.ndarray, MelodyEncoding]]:
    """Each voice's column of a piece with the encoding that reads it as a melody: a melody is
    its own one line; a chorale's voices are ``piece[v::4]`` in the local (melody) convention
    of its ``voice_encoding`` (each voice's tokens lie in a block of their own).

    >>> from rlmusic.data.chorale_encoding import ChoraleEncoding
    >>> blocks = np.arange(8) + 51 * (np.arange(8) % 4)  # voice v's tokens in block v
    >>> [column.tolist() for column, _ in voice_lines(blocks, ChoraleEncoding())]
    [[0, 4], [1, 5], [2, 6], [3, 7]]
    """
    piece = np.asarray(piece)
    voices = encoding.tokens_per_step
    if voices == 1:
        return [(piece, encoding)]
    line = encoding.voice_encoding  # type: ignore[attr-defined]
    local = encoding.local(piece)  # type: ignore[attr-defined]
    return [(local[v::voices], line) for v in range(voices)]


def _intervals(piece: np.ndarray, encoding: MelodyEncoding) -> np.ndarray:
    """Signed intervals between consecutive onsets of each voice of one piece (holds and rests
    skipped), the voices' one after another."""
    out = []
    for column, line in voice_lines(piece, encoding):
        pitch_of = line.pitches(column)
        out.append(np.diff(pitch_of[pitch_of >= 0]))
    return np.concatenate(out)


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
        for column, line in voice_lines(piece, encoding):
            np.add.at(counts, np.minimum(note_durations(column, line), DURATION_BINS) - 1, 1)
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
