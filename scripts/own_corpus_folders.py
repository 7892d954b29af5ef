"""Write held-out folders of real music, in styles far from the default folk corpus, for the
own-corpus path (docs/own_corpus.md; the measurements in docs/results/own_corpus.md).

Every folder comes from music21's bundled corpus (no download), none from the default corpus
(Essen, O'Neill's, Ryan's, the chorales' sopranos):

* ``renaissance_top``: the top voice of 160 scores (Palestrina masses, Ciconia, Josquin,
  Monteverdi), as docs/results/own_corpus.md lists them: slow, long held notes;
* ``palestrina_bass``: the lowest voice of 150 other Palestrina mass movements: bass lines,
  slower still;
* ``reels``: the Nottingham collection's reels (one multi-tune ABC book) and Aird's Airs
  book 1 (another), copied as they are: busy eighth-note tunes, read by ``data=midi_dir``.

    python scripts/own_corpus_folders.py /tmp/own_corpus        # -> /tmp/own_corpus/<folder>
    python scripts/own_corpus_folders.py /tmp/own_corpus --only palestrina_bass
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import music21

CORPUS = Path(music21.__file__).parent / "corpus"


def _write_part(path: Path, out: Path, which: int) -> bool:
    """Write part ``which`` (0 top, -1 lowest) of the score at ``path`` as MIDI; False when it
    does not parse or has no parts."""
    try:
        score = music21.converter.parse(str(path))
    except Exception as exc:  # a corpus file music21 cannot read: skip it, say so
        print(f"skipped {path.name}: {exc}")
        return False
    if isinstance(score, music21.stream.Opus):  # an ABC opus: its first score
        score = score.scores[0]
    parts = list(score.parts)
    if not parts:
        return False
    parts[which].write("midi", fp=str(out))
    return True


def renaissance_top(out: Path) -> int:
    palestrina = sorted(CORPUS.glob("palestrina/*.krn"))[::10][:129]
    ciconia = sorted(CORPUS.glob("ciconia/*.xml")) + sorted(CORPUS.glob("trecento/* Ciconia *.xml"))
    josquin = sorted(CORPUS.glob("josquin/*.abc"))
    monteverdi = sorted(CORPUS.glob("monteverdi/madrigal.*.mxl"))[:5]
    written = 0
    for path in palestrina + ciconia[:18] + josquin[:8] + monteverdi:
        written += _write_part(path, out / f"{path.stem}.mid", 0)
    return written


def palestrina_bass(out: Path, count: int = 150) -> int:
    # every 10th file from the 5th: none of renaissance_top's (every 10th from the 0th)
    written = 0
    for path in sorted(CORPUS.glob("palestrina/*.krn"))[5::10]:
        if written >= count:
            break
        written += _write_part(path, out / f"{path.stem}_bass.mid", -1)
    return written


def reels(out: Path) -> int:
    books = [CORPUS / "nottingham-dataset" / "reelsa-c.abc", CORPUS / "airdsAirs" / "book1.abc"]
    for book in books:
        shutil.copy(book, out / book.name)
    return len(books)


FOLDERS = {"renaissance_top": renaissance_top, "palestrina_bass": palestrina_bass, "reels": reels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the folders are written under it")
    parser.add_argument("--only", choices=sorted(FOLDERS), action="append")
    args = parser.parse_args()
    for name in args.only or FOLDERS:
        out = args.root / name
        out.mkdir(parents=True, exist_ok=True)
        print(f"{name}: {FOLDERS[name](out)} files in {out}")


if __name__ == "__main__":
    main()
