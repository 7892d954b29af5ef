"""From parsed notes to a tokenised melody in C: top line, grid, key, transposition, range.

Everything here is pure and format-agnostic: readers (music21, MIDI) hand over
:class:`TimedNote` lists in quarter-note units and get tokens plus what was done to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from rlmusic.data.encoding import MelodyEncoding, Note

PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# Krumhansl-Kessler key profiles (probe-tone ratings), index 0 = tonic.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


class TimedNote(NamedTuple):
    """A parsed note: MIDI pitch over ``[start, end)`` in quarter notes from the tune's start."""

    pitch: int
    start: float
    end: float


class Key(NamedTuple):
    tonic: int  # pitch class 0..11
    mode: str  # "major" | "minor"

    def __str__(self) -> str:
        return f"{PITCH_CLASS_NAMES[self.tonic]} {self.mode}"


@dataclass(frozen=True)
class EncodedMelody:
    """A tune on the grid in C major / A minor, and what it took to get there."""

    tokens: np.ndarray  # (T,) uint8
    key: Key  # the key detected before transposition
    transposition: int  # semitones added to every pitch (octave shift included)
    notes: int
    folded_notes: int  # notes moved by single octaves to fit the range after transposition


def top_line(notes: list[TimedNote]) -> list[TimedNote]:
    """Reduce polyphony to its highest voice (skyline).

    At each onset only the highest note starts; a note that starts while a higher one is
    still sounding is dropped, and each kept note is cut where the next kept note starts.

    >>> top_line([TimedNote(60, 0, 2), TimedNote(64, 0, 1), TimedNote(55, 0.5, 1), TimedNote(62, 1, 2)])
    [TimedNote(pitch=64, start=0, end=1), TimedNote(pitch=62, start=1, end=2)]
    """
    ordered = sorted(notes, key=lambda n: (n.start, -n.pitch))
    kept: list[TimedNote] = []
    for note in ordered:
        if note.end <= note.start:
            continue
        if kept:
            last = kept[-1]
            if note.start == last.start:
                continue  # a lower note of the same onset
            if note.start < last.end and note.pitch < last.pitch:
                continue  # starts under a sounding higher note
            if note.start < last.end:
                kept[-1] = last._replace(end=note.start)
        kept.append(note)
    return kept


def to_grid(notes: list[TimedNote], steps_per_quarter: int) -> list[Note]:
    """Quantise a monophonic line to the step grid, keeping it monophonic.

    Onsets and offsets round to the nearest step; a note shorter than a step gets one step;
    notes that collide on one step keep the higher; leading silence is removed.
    """
    grid: list[Note] = []
    for n in notes:
        start = round(n.start * steps_per_quarter)
        end = max(round(n.end * steps_per_quarter), start + 1)
        if grid and start <= grid[-1].start:
            if n.pitch > grid[-1].pitch:
                grid[-1] = Note(n.pitch, grid[-1].start, max(end, grid[-1].start + 1))
            continue
        if grid and start < grid[-1].end:
            grid[-1] = grid[-1]._replace(end=start)
        grid.append(Note(n.pitch, start, end))
    if grid and grid[0].start > 0:
        shift = grid[0].start
        grid = [Note(n.pitch, n.start - shift, n.end - shift) for n in grid]
    return grid


def estimate_key(notes: list[Note]) -> Key:
    """Krumhansl-Schmuckler: correlate the duration-weighted pitch-class profile with 24 keys.

    >>> estimate_key([Note(67, 0, 4), Note(71, 4, 8), Note(74, 8, 12), Note(66, 12, 13), Note(67, 13, 20)])
    Key(tonic=7, mode='major')
    """
    histogram = np.zeros(12)
    for n in notes:
        histogram[n.pitch % 12] += n.end - n.start
    if not histogram.any():
        return Key(0, "major")
    best, best_score = Key(0, "major"), -np.inf
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for tonic in range(12):
            score = np.corrcoef(histogram, np.roll(profile, tonic))[0, 1]
            if np.isfinite(score) and score > best_score + 1e-12:
                best, best_score = Key(tonic, mode), score
    return best


def semitones_to_c(key: Key) -> int:
    """The smallest shift (-6..5) taking the key to C major or A minor.

    >>> semitones_to_c(Key(7, "major")), semitones_to_c(Key(4, "minor")), semitones_to_c(Key(9, "minor"))
    (5, 5, 0)
    """
    target = 0 if key.mode == "major" else 9
    return (target - key.tonic + 6) % 12 - 6


def fit_range(notes: list[Note], encoding: MelodyEncoding) -> tuple[list[Note], int, int]:
    """Shift the tune by whole octaves to fit the range best, then fold the notes still outside.

    Returns (notes, octave shift in semitones, number of notes folded individually).
    """
    pitches = np.array([n.pitch for n in notes])
    best_shift, best_inside = 0, -1
    for octaves in sorted(range(-10, 11), key=abs):  # ties go to the smallest shift
        shifted = pitches + 12 * octaves
        inside = int(((shifted >= encoding.min_pitch) & (shifted <= encoding.max_pitch)).sum())
        if inside > best_inside:
            best_shift, best_inside = 12 * octaves, inside
    folded = len(notes) - best_inside
    fitted = [n._replace(pitch=encoding.fold_pitch(n.pitch + best_shift)) for n in notes]
    return fitted, best_shift, folded


def melody_line(notes: list[TimedNote], encoding: MelodyEncoding) -> list[Note]:
    """Parsed (possibly polyphonic) notes -> the top line on the step grid (no tokens yet)."""
    return to_grid(top_line(notes), encoding.steps_per_quarter)


def longest_note(line: list[Note]) -> int:
    """The longest note of a grid line in steps: what its tokens would hold longest.

    Measured before any token exists, so an absurd length is refused without allocating it.

    >>> longest_note([Note(60, 0, 4), Note(62, 10, 12)])
    4
    """
    return max((note.end - note.start for note in line), default=0)


def shorten_long_rests(line: list[Note], max_steps: int) -> tuple[list[Note], list[int]]:
    """Shorten every rest longer than ``max_steps`` to ``max_steps``; returns (line, old lengths).

    A voice resting for ten bars is ordinary in polyphony (its top part waits for the others);
    its rest becomes the longest rest a tune may hold, and the notes after it move earlier.

    >>> line, shortened = shorten_long_rests([Note(60, 0, 4), Note(62, 50, 52)], max_steps=8)
    >>> line, shortened
    ([Note(pitch=60, start=0, end=4), Note(pitch=62, start=12, end=14)], [46])
    """
    out: list[Note] = []
    shortened: list[int] = []
    shift = 0  # steps removed so far
    previous_end = 0
    for note in line:
        rest = note.start - previous_end
        previous_end = note.end
        if rest > max_steps:
            shortened.append(rest)
            shift += rest - max_steps
        out.append(Note(note.pitch, note.start - shift, note.end - shift) if shift else note)
    return out, shortened


def cap_long_notes(
    notes: list[TimedNote], max_quarters: float, bar_quarters: float
) -> tuple[list[TimedNote], list[TimedNote]]:
    """Cut notes longer than ``max_quarters`` at the melody's end; returns (notes, the cut ones).

    The melody's end is where the last note of ordinary length ends. A longer note (in MIDI
    files usually a late note-off: a note "lasting minutes") ends there instead, but keeps at
    least one bar (``bar_quarters``), so a final note held for minutes becomes a one-bar note.

    >>> notes = [TimedNote(64, 0, 900), TimedNote(60, 0, 8), TimedNote(62, 8, 16), TimedNote(67, 16, 2000)]
    >>> [n.end for n in cap_long_notes(notes, max_quarters=32, bar_quarters=4)[0]]
    [16, 8, 16, 20]
    """
    ordinary = [n.end for n in notes if n.end - n.start <= max_quarters]
    melody_end = max(ordinary, default=float("-inf"))
    capped, cut = [], []
    for note in notes:
        if note.end - note.start > max_quarters:
            end = max(melody_end, note.start + bar_quarters)
            if end < note.end:
                cut.append(note)
                note = note._replace(end=end)
        capped.append(note)
    return capped, cut


def encode_line(line: list[Note], encoding: MelodyEncoding) -> EncodedMelody:
    """A grid line (:func:`melody_line`) -> tokens transposed to C and fitted into the range."""
    key = estimate_key(line)
    shift = semitones_to_c(key)
    transposed = [n._replace(pitch=n.pitch + shift) for n in line]
    fitted, octave_shift, folded = fit_range(transposed, encoding)
    return EncodedMelody(
        tokens=encoding.encode_notes(fitted),
        key=key,
        transposition=shift + octave_shift,
        notes=len(fitted),
        folded_notes=folded,
    )


def encode_melody(notes: list[TimedNote], encoding: MelodyEncoding) -> EncodedMelody:
    """Parsed (possibly polyphonic) notes -> tokens of the top line, transposed to C, in range."""
    return encode_line(melody_line(notes, encoding), encoding)
