"""Single-file I/O: load one MIDI/MusicXML/ABC file as a melody (or a primer in any encoding),
write any encoding's pieces as MIDI (a track per voice), MusicXML (a staff per voice) and ABC.

:func:`load_melody` reads one melody, :func:`load_melodies` every tune of a file (an ABC
tunebook) with a report of the rejected ones. Both run each tune through the same per-tune
path as corpus preparation (:func:`rlmusic.data.sources.tune_items`, then
:func:`rlmusic.data.prepare.process_item`, time-bounded), so a file loads the same way alone
as in a corpus. music21 reads ABC but does not write it, so :func:`tokens_to_abc` writes ABC.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rlmusic.data.encoding import MelodyEncoding, Note
from rlmusic.data.encodings import Encoding
from rlmusic.data.prepare import ItemResult, parse_items, process_item
from rlmusic.data.readers import MelodyWarning
from rlmusic.data.sources import WorkItem, tune_items
from rlmusic.errors import UserError

_SHARP_NAMES = ("C", "^C", "D", "^D", "E", "F", "^F", "G", "^G", "A", "^A", "B")

# The per-tune time bound of the single-file loaders: with music21's import (done before the
# bound) no input keeps a loader busy for 10 s. Corpus preparation uses ``data.timeout_s``.
LOAD_TIMEOUT_S = 5.0


class MelodyLoadError(UserError, ValueError):
    """A file (or one tune in it) could not be loaded as a melody.

    The message names the file, for an ABC tune its ``X:`` number and title, and the reason.
    """


class Tune(NamedTuple):
    """A good tune of a file: its tokens (top line, in C / A minor) and where it came from."""

    number: str  # the ABC X: number; "" for MIDI and MusicXML files
    title: str
    tokens: np.ndarray


class RejectedTune(NamedTuple):
    """A tune (or whole file) that could not become a melody, and why."""

    file: str
    number: str  # the ABC X: number; "" for a whole file
    title: str
    reason: str  # a short category, as counted in the corpus summary
    detail: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.number:
            where += f", tune X:{self.number}" + (f" ({self.title})" if self.title else "")
        return f"{where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


class Melodies(NamedTuple):
    """What :func:`load_melodies` found: ``tunes, rejected = load_melodies(path)``."""

    tunes: list[Tune]
    rejected: list[RejectedTune]


def _items(path: str | Path) -> tuple[Path, list[WorkItem]]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise MelodyLoadError(f"{path}: no such file")
    return path, tune_items(path, "file", str(path))


def _rejected(result: ItemResult) -> RejectedTune:
    item = result.item
    number = (item.number or "?") if item.abc_text is not None else ""
    return RejectedTune(item.path or item.tune_id, number, item.title, result.reason, result.detail)


def _show_warnings(results: list[ItemResult]) -> None:
    for result in results:
        for warning in result.warnings:
            warnings.warn(warning, MelodyWarning, stacklevel=3)  # at the loader's caller


def load_melody(
    path: str | Path, encoding: MelodyEncoding | None = None, timeout_s: float = LOAD_TIMEOUT_S
) -> np.ndarray:
    """Read one MIDI, MusicXML or ABC file as tokens: its top line, transposed to C / A minor.

    An ABC file holding several tunes gives its first (with a :class:`MelodyWarning`;
    :func:`load_melodies` reads them all). Harmless defects (an empty MIDI track, an unusable
    meta event, a MIDI note lasting minutes) are repaired with a :class:`MelodyWarning`.

    Args:
        path: the file.
        encoding: the token encoding (default: ``MelodyEncoding()``).
        timeout_s: the parse's time bound in seconds (main thread only).

    Raises:
        MelodyLoadError: missing, empty, corrupt, drum-only or note-less files, parse failures
            and parses taking longer than ``timeout_s``; names the file (and the ABC tune).
    """
    encoding = encoding or MelodyEncoding()
    path, items = _items(path)
    if len(items) > 1:
        warnings.warn(
            f"{path} holds {len(items)} tunes; load_melody reads the first "
            f"(X:{items[0].number}); load_melodies reads them all",
            MelodyWarning,
            stacklevel=2,
        )
    result = process_item(items[0], encoding, min_notes=1, timeout_s=timeout_s)
    _show_warnings([result])
    if result.tokens is None:
        raise MelodyLoadError(str(_rejected(result)))
    return result.tokens


def load_melodies(
    path: str | Path,
    encoding: MelodyEncoding | None = None,
    timeout_s: float = LOAD_TIMEOUT_S,
    min_notes: int = 1,
) -> Melodies:
    """Every good tune of one file, and a report of the rejected ones.

    An ABC file is split at its ``X:`` lines and each tune parsed on its own (time-bounded,
    with the file header's fields and the ABC 2.1 default unit length), so a broken tune
    never loses its neighbours; a MIDI or MusicXML file is one tune. Content problems never
    raise: each rejected tune is in ``rejected`` with its file, ``X:`` number, title and reason.

    >>> tunes, rejected = load_melodies("tunebook.abc")  # doctest: +SKIP
    >>> [str(r) for r in rejected]  # doctest: +SKIP
    ['tunebook.abc, tune X:2 (Broken Reel): unknown key (K:Xyz)']

    Args:
        path: the file.
        encoding: the token encoding (default: ``MelodyEncoding()``).
        timeout_s: each tune's time bound in seconds (main thread only).
        min_notes: tunes with fewer notes are rejected as too short.

    Raises:
        MelodyLoadError: only when ``path`` is not a file.
    """
    encoding = encoding or MelodyEncoding()
    path, items = _items(path)
    results = parse_items(items, encoding, min_notes, timeout_s, workers=1, progress=False)
    _show_warnings(results)
    tunes = [Tune(r.item.number, r.item.title, r.tokens) for r in results if r.tokens is not None]
    return Melodies(tunes, [_rejected(r) for r in results if r.tokens is None])


def load_piece(path: str | Path, encoding: Encoding) -> np.ndarray:
    """A file's piece as tokens in ``encoding`` (a primer, a folder's openings, a preference's
    sample): a melody's top line in C (:func:`load_melody`); a chorale's four voices, from a
    MIDI file of four tracks as it is (what ``rlmusic sample`` writes: :func:`read_voice_tracks`)
    or from any four-part score, normalised to C (``rlmusic.data.chorales.read_chorale``).

    Raises:
        MelodyLoadError: the file does not load as such a piece; names the file.
    """
    if encoding.kind == "melody":
        return load_melody(path, encoding)
    if encoding.kind != "chorale":
        raise MelodyLoadError(f"{path}: no reader for {encoding.kind} pieces")
    path = Path(path).expanduser()
    if not path.is_file():
        raise MelodyLoadError(f"{path}: no such file")
    if path.suffix.lower() in (".mid", ".midi"):
        return read_voice_tracks(path, encoding)
    try:
        from rlmusic.data.chorales import read_chorale
    except ImportError:  # pragma: no cover - the chorale corpus reader ships with the package
        raise MelodyLoadError(f"{path}: no reader for four-part scores installed") from None
    try:
        tune = read_chorale(path, encoding)
    except Exception as exc:  # music21's and the reader's errors: one line naming the file
        raise MelodyLoadError(f"{path}: not a four-part chorale ({exc})") from None
    return np.asarray(getattr(tune, "tokens", tune))


def read_voice_tracks(path: str | Path, encoding: Encoding) -> np.ndarray:
    """A MIDI file of one track per voice (named as ``encoding.voice_names``, else in that
    order) -> tokens, each note on the nearest grid step, pitches as they are (no
    transposition): the inverse of :func:`save_midi` for any encoding.

    Raises:
        MelodyLoadError: a file that does not parse, a track count other than the voices', a
            voice with overlapping notes, a pitch outside the range; names the file.
    """
    import pretty_midi

    path = Path(path)
    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido's and pretty_midi's errors alike
        raise MelodyLoadError(f"{path}: not a readable MIDI file ({exc})") from None
    names = list(encoding.voice_names)
    tracks = [i for i in midi.instruments if not i.is_drum]
    by_name = {i.name.strip().lower(): i for i in tracks}
    if set(by_name) <= set(names) and len(by_name) == len(tracks):
        ordered = [by_name.get(name) for name in names]  # a silent voice writes no track
    elif len(tracks) == len(names):
        ordered = tracks
    else:
        raise MelodyLoadError(
            f"{path}: not a {encoding.kind} of {len(names)} voice tracks "
            f"({', '.join(names)}): it has {len(tracks)} tracks"
        )
    ticks_per_step = midi.resolution / encoding.steps_per_quarter
    voices: list[list[Note]] = []
    for name, track in zip(names, ordered, strict=True):
        line: list[Note] = []
        for n in sorted(track.notes if track else [], key=lambda n: n.start):
            start = round(midi.time_to_tick(n.start) / ticks_per_step)
            end = max(round(midi.time_to_tick(n.end) / ticks_per_step), start + 1)
            if line and start < line[-1].end:
                raise MelodyLoadError(f"{path}: the {name} track has overlapping notes")
            line.append(Note(int(n.pitch), start, end))
        voices.append(line)
    try:
        return encoding.encode_voices(voices)
    except ValueError as exc:
        raise MelodyLoadError(f"{path}: {exc}") from None


def save_midi(tokens: np.ndarray, path: str | Path, encoding: Encoding, qpm: float = 80.0) -> Path:
    """One piece as a MIDI file: a track per voice, named and in the encoding's order (a
    chorale's soprano first), each playing ``encoding.default_program``."""
    path = Path(path)
    encoding.to_pretty_midi(tokens, qpm=qpm).write(str(path))
    return path


def save_musicxml(
    tokens: np.ndarray, path: str | Path, encoding: Encoding, title: str = ""
) -> Path:
    """One piece as MusicXML: a part (staff) per voice, soprano first."""
    path = Path(path)
    encoding.to_music21(tokens, title=title or path.stem).write("musicxml", fp=str(path))
    return path


def save_abc(tokens: np.ndarray, path: str | Path, encoding: Encoding, title: str = "") -> Path:
    """One piece as ABC 2.1 (:func:`tokens_to_abc`; a chorale as four ``V:`` voices)."""
    path = Path(path)
    path.write_text(tokens_to_abc(tokens, encoding, title=title or path.stem))
    return path


def _abc_pitch(pitch: int) -> tuple[str, str]:
    """MIDI pitch -> (accidental, letter with octave marks); middle C (60) is ``C``."""
    name = _SHARP_NAMES[pitch % 12]
    accidental, letter = (name[0], name[1]) if len(name) == 2 else ("=", name)
    octave = pitch // 12 - 5  # 0 for 60..71
    if octave >= 1:
        return accidental, letter.lower() + "'" * (octave - 1)
    return accidental, letter + "," * (-octave)


def _abc_line(notes: list[Note], steps: int, bar: int) -> str:
    """One voice's notes over ``steps`` grid steps as ABC (L: one step; ties across bars)."""
    events: list[tuple[int | None, int, int]] = []  # (pitch or None for rest, start, end)
    cursor = 0
    for note in notes:
        if note.start > cursor:
            events.append((None, cursor, note.start))
        events.append((note.pitch, note.start, note.end))
        cursor = note.end
    if cursor < steps:
        events.append((None, cursor, steps))
    out: list[str] = []
    accidentals: dict[str, str] = {}  # accidentals carry through the bar in ABC
    for pitch, start, end in events:
        position = start
        while position < end:
            if position % bar == 0 and position > 0:
                out.append(" | ")
                accidentals = {}
            piece_end = min(end, (position // bar + 1) * bar)
            length = piece_end - position
            suffix = str(length) if length != 1 else ""
            if pitch is None:
                out.append(f"z{suffix}")
            else:
                accidental, letter = _abc_pitch(pitch)
                shown = "" if accidentals.get(letter, "=") == accidental else accidental
                accidentals[letter] = accidental
                out.append(f"{shown}{letter}{suffix}{'-' if piece_end < end else ''}")
            position = piece_end
    return "".join(out) + " |]"


# ABC clefs per voice of a chorale: tenor in the octave-down treble clef, as Bach's are printed
_ABC_CLEFS = {"soprano": "treble", "alto": "treble", "tenor": "treble-8", "bass": "bass"}


def tokens_to_abc(tokens: np.ndarray, encoding: Encoding, title: str = "", qpm: int = 80) -> str:
    """Tokens -> an ABC 2.1 tune in C (L: one grid step, bars of ``steps_per_bar``, ties across
    bars); several voices (a chorale) as ``V:`` voices, soprano first, one body line each.

    >>> tokens_to_abc(np.array([14, 1, 1, 1, 20, 1, 0, 1]), MelodyEncoding(), title="t").splitlines()[-1]
    'C4^F2z2 |]'
    """
    tokens = np.asarray(tokens)
    unit = 4 * encoding.steps_per_quarter  # L:1/16 for 16th-note steps
    steps = encoding.steps_in(tokens)
    voices = encoding.decode_voices(tokens)
    header = [
        "X:1",
        f"T:{title}" if title else "T:untitled",
        f"M:{encoding.beats_per_bar}/4",
        f"L:1/{unit}",
        f"Q:1/4={qpm}",
    ]
    bar = encoding.steps_per_bar
    if len(voices) == 1:
        return "\n".join([*header, "K:C"]) + "\n" + _abc_line(voices[0], steps, bar) + "\n"
    body = []
    for v, (name, notes) in enumerate(zip(encoding.voice_names, voices, strict=True)):
        # a V: line, then its music: music21 reads each voice as a part of its own
        body.append(f'V:{v + 1} name="{name.capitalize()}" clef={_ABC_CLEFS.get(name, "treble")}')
        body.append(_abc_line(notes, steps, bar))
    return "\n".join([*header, "K:C", *body]) + "\n"
