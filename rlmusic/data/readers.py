"""Format readers: one tune (ABC text, MusicXML/MIDI file) -> parsed notes, or a reason why not.

Every failure is a :class:`RejectedInput` whose ``reason`` is a short category (counted in
the summary) and whose ``detail`` says what exactly went wrong.
"""

from __future__ import annotations

import re
from pathlib import Path

from rlmusic.data.melody import TimedNote

ABC_HEADER = "%abc-2.1\n%%propagate-accidentals octave\n"
MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".krn")  # music21 reads all (krn: Humdrum)
ABC_SUFFIXES = (".abc",)

_KEY_MODES = "maj|major|ion|ionian|m|min|minor|aeo|aeolian|dor|dorian|phr|phrygian|lyd|lydian|mix|mixolydian|loc|locrian"
# K: value: none/HP, or tonic + optional mode, then optional explicit accidentals (K:Dmix =c)
_ABC_KEY = re.compile(rf"^\s*(none|hp|([a-g][#b]?)\s*({_KEY_MODES})?)?(\s|[=^_]|$)", re.IGNORECASE)
# ABC notes with 4+ octave marks (c'''' is above MIDI 108, C,,,, below 24): music21 wraps them
_ABSURD_OCTAVE = re.compile(r"[A-Ga-g](?:'{4,}|,{4,})")


class RejectedInput(Exception):
    """A tune or file that cannot become a melody: ``reason`` is the category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---- ABC -----------------------------------------------------------------------------------
def split_abc_tunes(text: str) -> list[tuple[str, str, str]]:
    """Split an ABC file at its ``X:`` lines -> [(number, title, tune text)].

    Each tune is parsed on its own so one broken tune never loses its neighbours.
    """
    tunes: list[tuple[str, str, str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("X:"):
            if current is not None:
                tunes.append(_abc_tune(current))
            current = [line]
        elif current is not None:
            current.append(line)
    if current is not None:
        tunes.append(_abc_tune(current))
    return tunes


def _abc_tune(lines: list[str]) -> tuple[str, str, str]:
    number = lines[0][2:].strip()
    title = next((ln[2:].strip() for ln in lines if ln.startswith("T:")), "")
    return number, title, "\n".join(lines) + "\n"


def check_abc(text: str) -> None:
    """Reject what music21 would silently mis-read (unknown key -> C, absurd octaves wrapped)."""
    for line in text.splitlines():
        if line.startswith("K:"):
            value = line[2:].split("%")[0]
            if not _ABC_KEY.match(value):
                raise RejectedInput("unknown key", f"K:{value.strip()}")
    body = "\n".join(ln for ln in text.splitlines() if not re.match(r"^[A-Za-z]:", ln))
    match = _ABSURD_OCTAVE.search(body)
    if match:
        raise RejectedInput("absurd octave", f"note {match.group(0)!r}")


def parse_abc(text: str) -> list[TimedNote]:
    """One ABC tune -> notes of its first voice (accidentals carried through the bar)."""
    from music21 import converter

    check_abc(text)
    try:
        score = converter.parseData(ABC_HEADER + text, format="abc")
    except Exception as exc:  # music21 raises many types for bad ABC
        raise RejectedInput("parse error", f"{type(exc).__name__}: {exc}"[:200]) from None
    return notes_from_music21(score)


# ---- music21 streams ------------------------------------------------------------------------
def notes_from_music21(score) -> list[TimedNote]:
    """The first part's notes (chords give their top pitch), ties merged on the same pitch only.

    music21's ``stripTies`` merges ties between different pitches (O'Neill's writes slurs
    that way) and swallows notes, so ties are merged here, and only where pitch and time meet.
    """
    from music21 import chord, note, stream

    parts = list(score.parts) if isinstance(score, stream.Score) else []
    source = parts[0] if parts else score
    notes: list[TimedNote] = []
    tied_open = False
    for element in source.flatten().notes:
        if element.duration.isGrace or element.quarterLength <= 0:
            continue
        if isinstance(element, chord.Chord):
            pitched = [p for p in element.pitches]
            if not pitched:
                continue
            pitch = max(p.midi for p in pitched)
        elif isinstance(element, note.Note):
            pitch = element.pitch.midi
        else:
            continue  # unpitched percussion
        start = float(element.offset)
        end = start + float(element.quarterLength)
        tie = element.tie.type if element.tie is not None else None
        previous = notes[-1] if notes else None
        if (
            tied_open
            and tie in ("stop", "continue")
            and previous is not None
            and previous.pitch == pitch
            and abs(previous.end - start) < 1e-6
        ):
            notes[-1] = previous._replace(end=end)
        else:
            notes.append(TimedNote(pitch, start, end))
        tied_open = tie in ("start", "continue")
    return notes


def parse_score(path: Path) -> list[TimedNote]:
    """A MusicXML or Humdrum file -> notes of its first part (Bach: the soprano)."""
    from music21 import converter

    try:
        score = converter.parse(str(path))
    except Exception as exc:
        raise RejectedInput("parse error", f"{type(exc).__name__}: {exc}"[:200]) from None
    return notes_from_music21(score)


# ---- MIDI ------------------------------------------------------------------------------------
def parse_midi(path: Path) -> list[TimedNote]:
    """A Standard MIDI File -> all non-drum notes in quarter notes (tempo-independent)."""
    import pretty_midi

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            header = handle.read(4)
    except OSError as exc:
        raise RejectedInput("unreadable file", str(exc)) from None
    if not header:
        raise RejectedInput("empty file")
    if header != b"MThd":
        raise RejectedInput("not a MIDI file", f"starts with {header!r}, not b'MThd'")
    try:
        midi = pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido/pretty_midi raise anything from EOFError to KeyError
        raise RejectedInput("corrupt MIDI", f"{type(exc).__name__}: {exc}"[:200]) from None
    pitched = [n for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    if not pitched:
        if any(inst.notes for inst in midi.instruments):
            raise RejectedInput("drum tracks only")
        raise RejectedInput("no notes")
    resolution = float(midi.resolution)
    return [
        TimedNote(
            int(n.pitch),
            midi.time_to_tick(n.start) / resolution,
            midi.time_to_tick(n.end) / resolution,
        )
        for n in pitched
    ]


def parse_file(path: Path) -> list[TimedNote]:
    """Dispatch on the suffix: MIDI, MusicXML/Humdrum or a single-tune ABC file."""
    suffix = Path(path).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return parse_midi(path)
    if suffix in SCORE_SUFFIXES:
        return parse_score(path)
    if suffix in ABC_SUFFIXES:
        tunes = split_abc_tunes(Path(path).read_text(encoding="utf-8", errors="replace"))
        if not tunes:
            raise RejectedInput("parse error", "no X: tune header")
        return parse_abc(tunes[0][2])
    raise RejectedInput(
        "unsupported format",
        f"suffix {suffix!r}; known: {', '.join(MIDI_SUFFIXES + SCORE_SUFFIXES + ABC_SUFFIXES)}",
    )
