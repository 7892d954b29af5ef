"""The collections a corpus is prepared from, as lists of work items (one tune or file each)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rlmusic.data.corpus import CorpusError
from rlmusic.data.readers import (
    ABC_SUFFIXES,
    MIDI_SUFFIXES,
    SCORE_SUFFIXES,
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
SOURCES = (*ALL_COLLECTIONS, "all", "midi_dir")


@dataclass(frozen=True)
class WorkItem:
    """One unit of parsing: an ABC tune's text, or a file to read."""

    source: str
    tune_id: str  # stable id: collection/file#number; also names the input in errors
    title: str
    abc_text: str | None = None
    path: str | None = None


def music21_corpus_dir(collection: str) -> Path:
    from music21 import corpus

    return Path(corpus.__file__).parent / MUSIC21_COLLECTIONS[collection][0]


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
        text = path.read_text(encoding="utf-8", errors="replace")
        for index, (number, title, tune) in enumerate(split_abc_tunes(text)):
            tune_id = f"{collection}/{path.name}#{number or index}"
            items.append(WorkItem(collection, tune_id, title, abc_text=tune))
    return items


def midi_dir_items(folder: str | Path) -> list[WorkItem]:
    """Every visible file under ``folder`` (recursively); unknown formats are rejected by name."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CorpusError(f"data.path={str(folder)!r} is not a folder")
    known = MIDI_SUFFIXES + SCORE_SUFFIXES + ABC_SUFFIXES
    items = [
        WorkItem("midi_dir", str(path.relative_to(root)), path.stem, path=str(path))
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts)
    ]
    if not items:
        raise CorpusError(f"no files under {root} (looked for {', '.join(known)})")
    return items
