"""Format readers: one tune (ABC text, MusicXML/MIDI file) -> parsed notes, or a reason why not.

Every failure is a :class:`RejectedInput` whose ``reason`` is a short category (counted in
the summary) and whose ``detail`` says what exactly went wrong. Defects that leave the notes
intact (an empty MIDI track chunk, an unusable meta event) are repaired instead, each with a
:class:`MelodyWarning` naming the file and what was dropped.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import NamedTuple

from rlmusic.data.melody import TimedNote
from rlmusic.data.midi_repair import fit_tick_limit, repair_midi

ABC_HEADER = "%abc-2.1\n%%propagate-accidentals octave\n"
MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".xml", ".musicxml", ".mxl", ".krn")  # music21 reads all (krn: Humdrum)
ABC_SUFFIXES = (".abc",)

_KEY_MODES = "maj|major|ion|ionian|m|min|minor|aeo|aeolian|dor|dorian|phr|phrygian|lyd|lydian|mix|mixolydian|loc|locrian"
# K: value: none/HP, or tonic + optional mode, then optional explicit accidentals (K:Dmix =c)
_ABC_KEY = re.compile(rf"^\s*(none|hp|([a-g][#b]?)\s*({_KEY_MODES})?)?(\s|[=^_]|$)", re.IGNORECASE)
# ABC notes with 4+ octave marks (c'''' is above MIDI 108, C,,,, below 24): music21 wraps them
_ABSURD_OCTAVE = re.compile(r"[A-Ga-g](?:'{4,}|,{4,})")


class MelodyWarning(UserWarning):
    """A harmless defect was repaired while reading (the message names the file and the fix)."""


class RejectedInput(Exception):
    """A tune or file that cannot become a melody: ``reason`` is the category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---- ABC -----------------------------------------------------------------------------------
# ABC 2.1, section 3 (field table): the fields a file header may set for every tune in the file
_FILE_HEADER_FIELDS = frozenset("ABCDFGHILMmNORrSUZ")
_FIELD = re.compile(r"^([A-Za-z]):")


class AbcTune(NamedTuple):
    """One tune of an ABC file: its ``X:`` number, first title and text (file header applied)."""

    number: str
    title: str
    text: str


def read_abc_text(path: str | Path) -> str:
    """An ABC file's text: UTF-8 (a byte-order mark is dropped), else Latin-1 (older tunebooks)."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # every byte decodes: never a reason to lose a tune


def split_abc_tunes(text: str) -> list[AbcTune]:
    """Split an ABC file at its ``X:`` lines -> one :class:`AbcTune` per tune.

    Each tune is parsed on its own so one broken tune never loses its neighbours. Fields of
    the file header (the lines before the first ``X:``) apply to every tune that does not set
    them itself, and a tune without a unit note length gets the ABC 2.1 default
    (:func:`abc_default_unit_length`), so every tune text stands alone.
    """
    header: list[str] = []
    tunes: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("X:"):
            tunes.append([line])
        elif tunes:
            tunes[-1].append(line)
        else:
            header.append(line)
    fields = [ln for ln in header if (m := _FIELD.match(ln)) and m.group(1) in _FILE_HEADER_FIELDS]
    directives = [ln for ln in header if ln.startswith("%%")]
    return [_abc_tune(lines, fields, directives) for lines in tunes]


def _field_value(lines: list[str], letter: str) -> str | None:
    """The first ``letter:`` field's value in ``lines`` (comments stripped), or None."""
    for line in lines:
        if line.startswith(f"{letter}:"):
            return line[2:].split("%")[0].strip()
    return None


def _abc_tune(lines: list[str], file_fields: list[str], directives: list[str]) -> AbcTune:
    number = lines[0][2:].strip()
    title = next((ln[2:].strip() for ln in lines if ln.startswith("T:")), "")
    # the tune header runs from X: to the first K: line (ABC 2.1: K: ends it)
    end = next((i for i, ln in enumerate(lines) if ln.startswith("K:")), None)
    tune_header = lines if end is None else lines[:end]
    own = {m.group(1) for ln in tune_header if (m := _FIELD.match(ln))}
    inherited = [ln for ln in file_fields if ln[0] not in own]
    if "L" not in own and _field_value(inherited, "L") is None:
        meter = _field_value(tune_header, "M")
        meter = meter if meter is not None else _field_value(inherited, "M")
        inherited.append(f"L:{abc_default_unit_length(meter)}")
    at = 1 if end is None else end
    text = "\n".join([*directives, *lines[:at], *inherited, *lines[at:]]) + "\n"
    return AbcTune(number, title, text)


def abc_meter_value(meter: str | None) -> float | None:
    """An ``M:`` value as a fraction of a whole note; None for free meter or an unreadable one.

    >>> [abc_meter_value(m) for m in ("6/8", "C", "C|", "2+3/8", "(2+2+3)/8", "none", None)]
    [0.75, 1.0, 1.0, 0.625, 0.875, None, None]
    """
    if meter is None:
        return None
    meter = meter.strip()
    if meter in ("C", "C|"):
        return 1.0  # common time (4/4) and cut time (2/2)
    match = re.match(r"^\(?\s*(\d+(?:\s*\+\s*\d+)*)\s*\)?\s*/\s*(\d+)", meter)
    if not match or int(match.group(2)) == 0:
        return None
    return sum(int(n) for n in match.group(1).split("+")) / int(match.group(2))


def abc_default_unit_length(meter: str | None) -> str:
    """ABC 2.1 section 3.1.7: the unit note length of a tune without ``L:``, from its ``M:``.

    A meter below 0.75 (2/4, 5/8) gives 1/16; 0.75 and above (3/4, 6/8, 4/4, C, C|) gives 1/8;
    free meter (``M:none``, or no ``M:`` at all, which ABC 2.1 reads as free meter) gives 1/8.

    >>> abc_default_unit_length("2/4"), abc_default_unit_length("3/4"), abc_default_unit_length(None)
    ('1/16', '1/8', '1/8')
    """
    value = abc_meter_value(meter)
    return "1/16" if value is not None and value < 0.75 else "1/8"


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


# a line the tune header may hold: a field (or +: continuation), a comment or directive, or blank
_HEADER_LINE = re.compile(r"^\s*([A-Za-z+]:|%|$)")


def drop_stray_header_lines(text: str, where: str = "") -> str:
    """Drop tune-header lines that are not fields, with a :class:`MelodyWarning`.

    ABC 2.1: the tune header (``X:`` up to ``K:``) holds fields only, and the music starts
    after ``K:``. A stray line there is free text that escaped its field (a wrapped ``N:``
    line); music21 would read it as notes before the unit length is known, and reject the tune.
    """
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("X:")), 0)
    end = next((i for i, ln in enumerate(lines) if ln.startswith("K:")), None)
    if end is None:
        return text
    stray = [i for i in range(start + 1, end) if not _HEADER_LINE.match(lines[i])]
    if not stray:
        return text
    where = where or f"ABC tune {lines[start].strip()}"
    shown = "; ".join(repr(lines[i][:60]) for i in stray)
    warnings.warn(
        MelodyWarning(
            f"{where}: dropped {len(stray)} tune-header line(s) that are no field: {shown}"
        ),
        stacklevel=3,
    )
    dropped = set(stray)
    return "\n".join(ln for i, ln in enumerate(lines) if i not in dropped) + "\n"


def parse_abc(text: str, where: str = "") -> list[TimedNote]:
    """One ABC tune -> notes of its first voice (accidentals carried through the bar).

    ``where`` names the tune in warnings (default: its ``X:`` line).
    """
    from music21 import converter

    text = drop_stray_header_lines(text, where)
    check_abc(text)
    try:
        score = converter.parseData(ABC_HEADER + text, format="abc")
    except Exception as exc:  # music21 raises many types for bad ABC
        raise RejectedInput("parse error", f"{type(exc).__name__}: {exc}"[:200]) from None
    return notes_from_music21(score)


# ---- music21 streams ------------------------------------------------------------------------
def notes_from_music21(score) -> list[TimedNote]:
    """The first part's notes (the first that has any; chords give their top pitch), ties merged
    on the same pitch only.

    music21's ``stripTies`` merges ties between different pitches (O'Neill's writes slurs
    that way) and swallows notes, so ties are merged here, and only where pitch and time meet.
    """
    from music21 import chord, note, stream

    parts = list(score.parts) if isinstance(score, stream.Score) else []
    # the first part that holds notes: an ABC tune that declares its voices (V:1, V:2) in the
    # header reads as empty parts first (Aird's Airs book 6, the American fife tunes)
    source = next((p for p in parts if p.flatten().notes), parts[0] if parts else score)
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
    """A Standard MIDI File -> all non-drum notes in quarter notes (tempo-independent).

    A file that mido or pretty_midi refuses only for a defect that leaves the notes intact is
    repaired and read, with a :class:`MelodyWarning` per fix: an empty track chunk is dropped,
    and so is a meta event that cannot be used (a key signature beyond 7 sharps/flats or of an
    unknown mode, a time signature of 0 beats, a tempo of 0). Anything else is corrupt.

    A long file at a fine resolution (music21 writes 10,080 ticks per quarter: 250 bars pass
    pretty_midi's limit of 10^7 ticks) is read at a coarser one
    (:func:`rlmusic.data.midi_repair.fit_tick_limit`).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RejectedInput("unreadable file", str(exc)) from None
    if not data:
        raise RejectedInput("empty file")
    if data[:4] != b"MThd":
        raise RejectedInput("not a MIDI file", f"starts with {data[:4]!r}, not b'MThd'")
    try:
        midi = _read_pretty_midi(data, path)
    except RejectedInput:
        raise
    except Exception as exc:  # mido/pretty_midi raise anything from EOFError to KeyError
        # good files are never rewritten: repair only what the readers refused
        midi, fixes = _read_repaired(data, exc, path)
        for fix in fixes:
            warnings.warn(MelodyWarning(f"{path}: {fix}"), stacklevel=2)
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


def _read_pretty_midi(data: bytes, path: Path | None = None):
    import mido
    import pretty_midi

    midi = mido.MidiFile(file=io.BytesIO(data), charset="latin1")  # pretty_midi's charset
    try:
        retimed = fit_tick_limit(midi)
    except ValueError as exc:
        raise RejectedInput("corrupt MIDI", str(exc)) from None
    if retimed is not None:
        warnings.warn(MelodyWarning(f"{path or 'MIDI file'}: {retimed}"), stacklevel=3)
    with warnings.catch_warnings():
        # "tempo/key/time signature on a non-zero track": pretty_midi's own notice, not ours
        warnings.simplefilter("ignore", RuntimeWarning)
        return pretty_midi.PrettyMIDI(mido_object=midi)


def _read_repaired(data: bytes, original: Exception, path: Path | None = None):
    """Read a repaired copy of ``data``; if nothing repairable was found, the file is corrupt."""
    what = f"{type(original).__name__}: {original}" if str(original) else type(original).__name__
    corrupt = RejectedInput("corrupt MIDI", what[:200])
    try:
        repaired, fixes = repair_midi(data)
    except ValueError:
        raise corrupt from None
    if not fixes:
        raise corrupt
    try:
        return _read_pretty_midi(repaired, path), fixes
    except RejectedInput:
        raise
    except Exception:
        raise corrupt from None


def parse_file(path: Path) -> list[TimedNote]:
    """Dispatch on the suffix: MIDI, MusicXML/Humdrum or the first tune of an ABC file.

    Multi-tune ABC files are split into tunes before this (:func:`rlmusic.data.load_melodies`
    and corpus preparation); this reads an ABC file directly only when it holds no tune.
    """
    suffix = Path(path).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return parse_midi(path)
    if suffix in SCORE_SUFFIXES:
        return parse_score(path)
    if suffix in ABC_SUFFIXES:
        tunes = split_abc_tunes(read_abc_text(path))
        if not tunes:
            raise RejectedInput("parse error", "no X: tune header")
        return parse_abc(tunes[0].text)
    raise RejectedInput(
        "unsupported format",
        f"suffix {suffix!r}; known: {', '.join(MIDI_SUFFIXES + SCORE_SUFFIXES + ABC_SUFFIXES)}",
    )
