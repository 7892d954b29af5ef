"""Melodies to harmonise: a file or a folder -> sopranos on the 16th grid in C, or refusals.

A melody is read as ``rlmusic data`` reads a tune: the same readers
(:mod:`rlmusic.data.readers`: MIDI, MusicXML, ABC, each ABC tune on its own), the same time
bound, its top line (:func:`~rlmusic.data.melody.top_line`), the 16th grid with leading
silence removed (:func:`~rlmusic.data.melody.to_grid`), and its key estimated and normalised
to C major / A minor (:func:`~rlmusic.data.melody.estimate_key`,
:func:`~rlmusic.data.melody.semitones_to_c`). A harmoniser must give the melody back note for
note, so nothing that would change it is done; it is refused instead, with one line naming
the input and why (:class:`Refusal`):

* **outside the soprano range**: in C, the whole melody moves by the fewest octaves that put it
  in the soprano range (Bach's, :data:`rlmusic.rewards.harmony.VOICE_RANGES`; none when it fits
  as written); when no octave holds every note the melody is refused (the corpus reader folds
  single notes instead). The harmony goes back to
  the melody's key, not to its octave: a tune given in a tenor's octave comes back with its
  soprano an octave up and the bass where a bass sings, not an octave under it;
* **a grid finer than 16ths**: a note of the top line starts between two 16ths (triplets,
  32nds, an unquantised performance); the corpus reader rounds it. Note ends are rounded;
* **polyphony**: the top line drops more than ``max_dropped`` of the sounding notes (a piano
  score or an accompaniment, not a melody with a few double stops); below that, chords keep
  their top note as the corpus reader keeps it, and the count of dropped notes is kept;
* **an absurd duration** (a note over 8 bars, as the corpus reader refuses it) or more than
  ``max_steps`` steps; **unreadable** input: anything the readers refuse (not a MIDI file, a
  parse error, an unknown format, no notes, a parse over the time bound).

Long rests are kept as they are (the corpus reader shortens rests over 8 bars).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import Note
from rlmusic.data.io import MelodyLoadError
from rlmusic.data.melody import (
    PITCH_CLASS_NAMES,
    TimedNote,
    estimate_key,
    semitones_to_c,
    to_grid,
    top_line,
)
from rlmusic.data.prepare import check_durations, read_bounded
from rlmusic.data.readers import RejectedInput, parse_abc, parse_file
from rlmusic.data.sources import WorkItem, tune_items

MAX_NOTE_BARS = 8.0  # the corpus reader's bound on one note (rlmusic.data.prepare)
_ON_GRID = 1e-3  # quarter notes: an onset this close to a 16th is on it (MIDI tick rounding)


@dataclass(frozen=True)
class Soprano:
    """A melody ready to harmonise.

    Attributes:
        name: the output files' stem: the input's path under the folder given, without its
            suffix (``songs/a`` for ``songs/a.mid``), ``_X<n>`` added for tune ``X:n`` of an
            ABC file that holds several.
        source: the input for messages (the file, and an ABC tune's number and title).
        line: the melody on the 16th grid in its own key and octave, as given.
        key: the key the melody was read in (``"G major"``).
        shift: semitones from its key to C major / A minor (-6..5); the harmony goes back by it.
        octave: the octave move into the soprano range (a multiple of 12, usually 0); the
            written soprano is ``line`` moved by it.
        tokens: (steps,) the soprano in C as block-0 tokens of the chorale encoding.
        dropped_notes: notes of chords and overlaps the top line left out.
    """

    name: str
    source: str
    line: tuple[Note, ...]
    key: str
    shift: int
    octave: int
    tokens: np.ndarray
    dropped_notes: int = 0

    @property
    def steps(self) -> int:
        return len(self.tokens)

    @property
    def transposition(self) -> int:
        """Semitones from the melody as given to the soprano in C."""
        return self.shift + self.octave

    def expected(self) -> list[Note]:
        """The soprano a harmonisation must write, in the melody's key: ``line`` moved by
        ``octave``."""
        return [n._replace(pitch=n.pitch + self.octave) for n in self.line]


@dataclass(frozen=True)
class Refusal:
    """A melody that is not harmonised: the input and why, in one line."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def pitch_name(pitch: int) -> str:
    """``60 -> C4``, ``82 -> Bb5``."""
    return f"{PITCH_CLASS_NAMES[pitch % 12]}{pitch // 12 - 1}"


def melody_files(path: str | Path) -> tuple[Path, list[Path]]:
    """``(root, files)``: a file is its own list (root: its folder); a folder gives every
    visible file under it, recursively and sorted (files of other formats too: they are
    refused by name, as ``data=midi_dir`` refuses them).

    Raises:
        MelodyLoadError: ``path`` does not exist, or a folder holds no file.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise MelodyLoadError(
            f"melody={path}: no such file or folder (give a MIDI, MusicXML or ABC file, a "
            "folder of them, or heldout)"
        )
    files = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    ]
    if not files:
        raise MelodyLoadError(f"melody={path}: no files under the folder")
    return path, files


def fit_octave(pitches: Sequence[int], low: int, high: int) -> int | None:
    """The smallest octave move (a multiple of 12) that puts every pitch in ``[low, high]``:
    none when the melody fits where it is written; None when no octave holds them all.

    >>> fit_octave([55, 67], 60, 82), fit_octave([62, 74], 60, 82), fit_octave([36, 40], 60, 82)
    (12, 0, 24)
    >>> fit_octave([50, 80], 60, 82) is None
    True
    """
    lowest, highest = min(pitches), max(pitches)
    fitting = [
        12 * k for k in range(-10, 11) if lowest + 12 * k >= low and highest + 12 * k <= high
    ]
    return min(fitting, key=abs) if fitting else None


def off_grid_onsets(notes: Sequence[TimedNote], steps_per_quarter: int) -> list[float]:
    """Onsets (in quarter notes) that fall between two grid steps.

    >>> off_grid_onsets([TimedNote(60, 0, 1), TimedNote(62, 1 / 3, 1), TimedNote(64, 1.25, 2)], 4)
    [0.3333333333333333]
    """
    return [
        n.start
        for n in notes
        if abs(n.start * steps_per_quarter - round(n.start * steps_per_quarter))
        > _ON_GRID * steps_per_quarter
    ]


def soprano_from_notes(
    notes: Sequence[TimedNote],
    name: str,
    source: str,
    encoding: ChoraleEncoding,
    soprano_range: Sequence[int],
    max_dropped: float = 0.2,
    max_steps: int = 4096,
) -> Soprano | Refusal:
    """Parsed notes -> the soprano to harmonise, or why not (see the module's list).

    >>> enc = ChoraleEncoding()
    >>> tune = [TimedNote(67, 0, 1), TimedNote(71, 1, 2), TimedNote(74, 2, 3), TimedNote(67, 3, 4)]
    >>> s = soprano_from_notes(tune, "t", "t.mid", enc, (60, 82))
    >>> s.key, s.shift, s.octave, [enc.pitch_name(t) for t in s.tokens[::4]]
    ('G major', 5, 0, ['C5', 'E5', 'G5', 'C5'])
    """
    sounding = [n for n in notes if n.end > n.start]
    if not sounding:
        return Refusal(source, "no notes")
    top = top_line(sounding)
    dropped = len(sounding) - len(top)
    if dropped > max_dropped * len(sounding):
        return Refusal(
            source,
            f"polyphony: its top line drops {dropped} of {len(sounding)} notes (more than "
            f"{max_dropped:.0%}); give one melodic line",
        )
    spq = encoding.steps_per_quarter
    off = off_grid_onsets(top, spq)
    if off:
        return Refusal(
            source,
            f"a grid finer than 16ths: {len(off)} note(s) start between two 16ths, the first "
            f"at quarter note {off[0]:g} (triplets, 32nds or an unquantised performance)",
        )
    line = to_grid(top, spq)
    try:
        check_durations(line, encoding, MAX_NOTE_BARS)
    except RejectedInput as exc:
        return Refusal(source, f"{exc.reason} ({exc.detail})")
    steps = line[-1].end
    if steps > max_steps:
        return Refusal(source, f"too long: {steps} steps (more than max_steps={max_steps})")
    key = estimate_key(line)
    shift = semitones_to_c(key)
    low, high = (int(p) for p in soprano_range)
    octave = fit_octave([n.pitch + shift for n in line], low, high)
    if octave is None:
        lowest = min(n.pitch for n in line) + shift
        highest = max(n.pitch for n in line) + shift
        return Refusal(
            source,
            f"outside the soprano range after octave moves: in C it spans "
            f"{pitch_name(lowest)}..{pitch_name(highest)} ({highest - lowest} semitones), the "
            f"soprano range is {pitch_name(low)}..{pitch_name(high)} ({high - low})",
        )
    moved = [n._replace(pitch=n.pitch + shift + octave) for n in line]
    tokens = encoding.voice_encoding.encode_notes(moved).astype(np.int64)
    return Soprano(name, source, tuple(line), str(key), shift, octave, tokens, dropped)


def soprano_from_tokens(
    name: str,
    source: str,
    tokens: np.ndarray,
    encoding: ChoraleEncoding,
    shift: int,
    key: str = "",
) -> Soprano:
    """A soprano given as block-0 tokens in C (a chorale's own), reached from its ``key`` by
    adding ``shift`` semitones (it goes back there, octave and all)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    line = key_encoding(encoding, shift).voice_encoding.decode(tokens)
    return Soprano(name, source, tuple(line), key, int(shift), 0, tokens)


def key_encoding(encoding: ChoraleEncoding, shift: int) -> ChoraleEncoding:
    """The encoding whose tokens sound ``shift`` semitones lower: the same tokens, decoded
    with it, are the piece back in the melody's own key (so writing MIDI and MusicXML in that
    key needs no new tokens, and no pitch can fall outside the range).

    >>> enc = ChoraleEncoding()
    >>> key_encoding(enc, 5).token_to_pitch(enc.pitch_to_token(72))  # C5 in C -> G4 in G
    67
    """
    return ChoraleEncoding(
        min_pitch=encoding.min_pitch - shift,
        max_pitch=encoding.max_pitch - shift,
        steps_per_quarter=encoding.steps_per_quarter,
        melody_length=encoding.melody_length,
        beats_per_bar=encoding.beats_per_bar,
    )


def soprano_kept(tokens: np.ndarray, soprano: Soprano, encoding: ChoraleEncoding) -> bool:
    """The harmonisation's soprano, back in the melody's key, equals the melody note for note
    (moved by the soprano's octave)."""
    back = key_encoding(encoding, soprano.shift)
    return back.decode_voices(np.asarray(tokens))[0] == soprano.expected()


def _item_name(item: WorkItem, path: Path, root: Path, tunes: int) -> str:
    stem = path.relative_to(root).with_suffix("").as_posix()
    return f"{stem}_X{item.number}" if tunes > 1 and item.number else stem


def _parse(item: WorkItem) -> list[TimedNote]:
    if item.abc_text is not None:
        return parse_abc(item.abc_text, where=item.describe())
    return parse_file(Path(item.path or ""))


def read_sopranos(
    files: Sequence[Path],
    root: Path,
    encoding: ChoraleEncoding,
    soprano_range: Sequence[int],
    max_dropped: float = 0.2,
    max_steps: int = 4096,
    timeout_s: float = 8.0,
) -> tuple[list[Soprano], list[Refusal]]:
    """Every tune of every file (:func:`melody_files`), in order: the sopranos and the
    refusals. Defects the readers repair are :class:`~rlmusic.data.readers.MelodyWarning`
    warnings, as in ``rlmusic data``."""
    import music21.converter  # noqa: F401 - imported before the time bound, as prepare does
    import pretty_midi  # noqa: F401

    sopranos: list[Soprano] = []
    refused: list[Refusal] = []
    for path in files:
        items = tune_items(path, "file", str(path))
        for item in items:
            source = item.describe()
            notes, rejected = read_bounded(lambda item=item: _parse(item), timeout_s)
            if rejected:
                detail = f" ({rejected['detail']})" if rejected.get("detail") else ""
                refused.append(Refusal(source, f"unreadable: {rejected['reason']}{detail}"))
                continue
            name = _item_name(item, path, root, len(items))
            found = soprano_from_notes(
                notes, name, source, encoding, soprano_range, max_dropped, max_steps
            )
            (sopranos if isinstance(found, Soprano) else refused).append(found)
    return sopranos, refused


__all__ = [
    "Refusal",
    "Soprano",
    "fit_octave",
    "key_encoding",
    "melody_files",
    "off_grid_onsets",
    "read_sopranos",
    "soprano_from_notes",
    "soprano_from_tokens",
    "soprano_kept",
]
