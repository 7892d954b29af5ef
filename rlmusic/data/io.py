"""Single-file melody I/O: load one MIDI/MusicXML/ABC file, write MIDI, MusicXML and ABC.

music21 reads ABC but does not write it, so :func:`tokens_to_abc` writes ABC itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.prepare import process_item
from rlmusic.data.sources import WorkItem

_SHARP_NAMES = ("C", "^C", "D", "^D", "E", "F", "^F", "G", "^G", "A", "^A", "B")


class MelodyLoadError(ValueError):
    """One file could not be loaded as a melody; the message names the file and the reason."""


def load_melody(
    path: str | Path, encoding: MelodyEncoding | None = None, timeout_s: float = 20.0
) -> np.ndarray:
    """Read one MIDI, MusicXML or ABC file as tokens: its top line, transposed to C / A minor.

    Raises:
        MelodyLoadError: missing, empty, corrupt, drum-only or note-less files, parse failures
            and files taking longer than ``timeout_s`` to parse.
    """
    encoding = encoding or MelodyEncoding()
    path = Path(path)
    if not path.is_file():
        raise MelodyLoadError(f"{path}: no such file")
    item = WorkItem("file", str(path), path.stem, path=str(path))
    result = process_item(item, encoding, min_notes=1, timeout_s=timeout_s)
    if result.tokens is None:
        detail = f" ({result.detail})" if result.detail else ""
        raise MelodyLoadError(f"{path}: {result.reason}{detail}")
    return result.tokens


def save_midi(
    tokens: np.ndarray, path: str | Path, encoding: MelodyEncoding, qpm: float = 80.0
) -> Path:
    path = Path(path)
    encoding.to_pretty_midi(tokens, qpm=qpm).write(str(path))
    return path


def save_musicxml(
    tokens: np.ndarray, path: str | Path, encoding: MelodyEncoding, title: str = ""
) -> Path:
    path = Path(path)
    encoding.to_music21(tokens, title=title or path.stem).write("musicxml", fp=str(path))
    return path


def save_abc(
    tokens: np.ndarray, path: str | Path, encoding: MelodyEncoding, title: str = ""
) -> Path:
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


def tokens_to_abc(
    tokens: np.ndarray, encoding: MelodyEncoding, title: str = "", qpm: int = 80
) -> str:
    """Tokens -> an ABC 2.1 tune in C (L: one grid step, bars of ``steps_per_bar``, ties across bars).

    >>> tokens_to_abc(np.array([14, 1, 1, 1, 20, 1, 0, 1]), MelodyEncoding(), title="t").splitlines()[-1]
    'C4^F2z2 |]'
    """
    unit = 4 * encoding.steps_per_quarter  # L:1/16 for 16th-note steps
    bar = encoding.steps_per_bar
    events: list[tuple[int | None, int, int]] = []  # (pitch or None for rest, start, end)
    cursor = 0
    for note in encoding.decode(tokens):
        if note.start > cursor:
            events.append((None, cursor, note.start))
        events.append((note.pitch, note.start, note.end))
        cursor = note.end
    if cursor < len(tokens):
        events.append((None, cursor, len(tokens)))
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
    header = [
        "X:1",
        f"T:{title}" if title else "T:untitled",
        f"M:{encoding.beats_per_bar}/4",
        f"L:1/{unit}",
        f"Q:1/4={qpm}",
        "K:C",
    ]
    return "\n".join(header) + "\n" + "".join(out) + " |]\n"
