"""The inputs a corpus is prepared from, as lists of work items (one tune or file each).

:func:`tune_items` is the one place a file becomes work items: a multi-tune ABC file gives
one item per tune (so one broken tune never loses its neighbours), any other file one item.
Corpus preparation and :func:`rlmusic.data.load_melodies` both go through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlmusic.data.corpus import CorpusError
from rlmusic.data.readers import (
    ABC_SUFFIXES,
    MIDI_SUFFIXES,
    SCORE_SUFFIXES,
    read_abc_text,
    split_abc_tunes,
)

# name -> (music21 corpus directory, human name)
MUSIC21_COLLECTIONS: dict[str, tuple[str, str]] = {
    "essen": ("essenFolksong", "Essen folk songs"),
    "oneills": ("oneills1850", "O'Neill's Music of Ireland (1850)"),
    "ryans": ("ryansMammoth", "Ryan's Mammoth Collection"),
    "bach": ("bach", "Bach chorales (soprano line)"),
}
ALL_COLLECTIONS = tuple(MUSIC21_COLLECTIONS)
# four-part harmony: read by rlmusic.data.chorales, for the chorale encoding only (not in "all")
CHORALES = "chorales"
SOURCES = (*ALL_COLLECTIONS, "all", "midi_dir", CHORALES)


@dataclass(frozen=True)
class WorkItem:
    """One unit of parsing: an ABC tune's text, or a file to read."""

    source: str
    tune_id: str  # stable id: collection/file#number; also names the input in errors
    title: str
    abc_text: str | None = None
    path: str | None = None  # the file (for an ABC tune: the file it came from)
    number: str = ""  # an ABC tune's X: number

    def describe(self) -> str:
        """The input for messages: the file, and for an ABC tune its X: number and title."""
        where = self.path or self.tune_id
        if self.abc_text is None:
            return where
        title = f" ({self.title})" if self.title else ""
        return f"{where}, tune X:{self.number or '?'}{title}"


def music21_corpus_dir(collection: str) -> Path:
    from music21 import corpus

    return Path(corpus.__file__).parent / MUSIC21_COLLECTIONS[collection][0]


def tune_items(path: str | Path, source: str, name: str) -> list[WorkItem]:
    """The work items of one file: one per tune of an ABC file, else the file itself.

    ``name`` is the file's id; an ABC tune's id is ``name#<X: number>``. An ABC file without
    any ``X:`` tune, or one that cannot be read, stays a single item and is rejected by name.
    """
    path = Path(path)
    if path.suffix.lower() in ABC_SUFFIXES:
        try:
            tunes = split_abc_tunes(read_abc_text(path))
        except OSError:
            tunes = []  # reading it again reports why
        if tunes:
            return [
                WorkItem(
                    source,
                    f"{name}#{tune.number or index}",
                    tune.title,
                    abc_text=tune.text,
                    path=str(path),
                    number=tune.number,
                )
                for index, tune in enumerate(tunes)
            ]
    return [WorkItem(source, name, path.stem, path=str(path))]


def collection_items(collection: str) -> list[WorkItem]:
    """Every tune of a music21 collection, in a fixed order."""
    if collection not in MUSIC21_COLLECTIONS:
        raise CorpusError(f"unknown collection {collection!r}; known: {', '.join(SOURCES)}")
    root = music21_corpus_dir(collection)
    if not root.is_dir():
        raise CorpusError(f"music21's corpus folder {root} is missing: reinstall music21")
    items: list[WorkItem] = []
    if collection == "bach":
        for path in sorted(root.iterdir()):
            if path.name.startswith("bwv") and path.suffix in (".mxl", ".xml", ".krn"):
                items.append(WorkItem("bach", f"bach/{path.name}", path.stem, path=str(path)))
        return items
    for path in sorted(root.glob("*.abc")):
        items += tune_items(path, collection, f"{collection}/{path.name}")
    return items


def chorale_items() -> list[WorkItem]:
    """music21's chorales, one item per file (deduplicated, sorted); the tune id is the file's
    stem (``bwv269``), which the held-out split hashes."""
    from rlmusic.data.chorales import chorale_name, chorale_paths

    return [
        WorkItem(CHORALES, chorale_name(path), chorale_name(path), path=path)
        for path in chorale_paths()
    ]


def encoding_mismatch(source: str, encoding_kind: str) -> str | None:
    """Why a ``data.source`` cannot be read with an encoding kind, or None when it can.

    One line naming both and the fix; checked before any parsing.

    >>> encoding_mismatch("chorales", "melody")
    'data=chorales is four-part harmony but the encoding is kind melody: use encoding=chorale (or a melody corpus)'
    >>> encoding_mismatch("essen", "chorale") is None, encoding_mismatch("chorales", "chorale") is None
    (False, True)
    """
    if source == CHORALES and encoding_kind != "chorale":
        return (
            f"data={CHORALES} is four-part harmony but the encoding is kind {encoding_kind}: "
            "use encoding=chorale (or a melody corpus)"
        )
    if source != CHORALES and encoding_kind != "melody":
        return (
            f"data={source} is monophonic melodies but the encoding is kind {encoding_kind}: "
            f"use encoding=rl_tuner (or data={CHORALES} for the chorale encoding)"
        )
    return None


def midi_dir_items(folder: str | Path) -> list[WorkItem]:
    """Every tune of every visible file under ``folder`` (recursively), in a fixed order.

    Unknown formats stay items and are rejected by name; ABC files give one item per tune.
    """
    root = Path(folder).expanduser()
    known = MIDI_SUFFIXES + SCORE_SUFFIXES + ABC_SUFFIXES
    if not root.is_dir():
        what = "it is a file" if root.exists() else "no such folder"
        raise CorpusError(
            f"data.path={str(folder)!r} is not a folder ({what}); data=midi_dir reads every "
            f"{'/'.join(known)} file under the folder it is given"
        )
    try:
        items = [
            item
            for path in sorted(root.rglob("*"))
            if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts)
            for item in tune_items(path, "midi_dir", str(path.relative_to(root)))
        ]
    except OSError as exc:  # a folder that cannot be listed (a file that cannot be read is
        # an item, rejected by name when it is parsed)
        raise CorpusError(
            f"data.path={str(folder)!r}: cannot read {exc.filename or root} ({exc.strerror})"
        ) from None
    if not items:
        raise CorpusError(
            f"data.path={str(folder)!r}: no files under {root} (looked for {', '.join(known)})"
        )
    return items
