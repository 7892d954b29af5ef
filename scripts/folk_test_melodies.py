"""Export 20 German folk songs that no shipped model learnt, as MIDI files to harmonise.

    python scripts/folk_test_melodies.py         # -> outputs/folk20/*.mid, outputs/folk20.tsv
    rlmusic harmonise melody=outputs/folk20 out=outputs/folk20_harmonised

The set is reproducible: the first ``--count`` tunes, by tune id (sorted as text), of the Essen
collection that
pass every test below, in this order:

1. **held out**: in the test split of ``data=essen`` (``data.split_seed`` 0, the split of the
   default melody corpus too: no melody model or critic trained on them);
2. **German**: the tune's ``O:`` (origin) field names Deutschland;
3. **duple from a bar line**: one meter, 4/4 (``M:4/4`` or ``C``) or 2/4, and no pickup. The
   harmoniser learnt 4/4 chorales that start on a bar line (a 2/4 bar is half of one: its
   downbeats fall on beats 1 and 3), and the reader, as ``rlmusic data``'s, starts a melody at
   its first note (a pickup's offbeat would become step 0). 3/4, 6/8 and pickups are left out;
4. **harmonisable**: ``rlmusic harmonise`` takes it as it is (in the soprano range after whole
   octave moves, every onset on the 16th grid, one line: :mod:`rlmusic.data.melody_input`);
5. **not a chorale**: it shares no run of ``--run`` consecutive intervals (octaves ignored)
   with any soprano of Bach's chorales (``data=chorales``, every split, and music21's ``bach``
   collection of soprano lines), so the harmoniser never learnt its tune either.

Each tune is written as its grid line in its own key and octave (one track, one note per grid
note), so ``rlmusic harmonise`` reads back exactly that line. ``<out>.tsv``, beside the folder
(in it, harmonise would refuse it as no melody), lists the files
with their tune ids, titles, keys and lengths, and the longest interval run each shares with a
chorale.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path("outputs/folk20")
GERMAN = re.compile(r"^O:.*Deutschland", re.MULTILINE)
QPM = 80.0


def compose_data(source: str):
    """``(data config, encoding)`` of ``rlmusic data data=<source>`` as the CLI composes it."""
    from hydra import compose, initialize_config_module

    from rlmusic.data.encodings import encoding_from_cfg

    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("prepare_data", overrides=[f"data={source}"])
    return cfg.data, encoding_from_cfg(cfg.encoding)


def held_out_ids(source: str = "essen", split: str = "test") -> set[str]:
    """Tune ids of the ``split`` (test or valid) of ``data=<source>``."""
    from rlmusic.data.prepare import prepare_corpus

    data, encoding = compose_data(source)
    corpus = prepare_corpus(data, encoding, progress=False)
    ids = np.asarray(corpus.metadata["tune_id"]).astype(str)
    return set(ids[corpus.split == split].tolist())


def folded_intervals(pitches: Sequence[int]) -> tuple[int, ...]:
    """Steps between successive pitches, octaves ignored (-6..5): a tune folded into another
    range keeps them.

    >>> folded_intervals([60, 62, 74, 67])
    (2, 0, 5)
    """
    steps = np.diff(np.asarray(pitches, dtype=np.int64))
    return tuple(int(s) for s in (steps + 6) % 12 - 6)


def chorale_sopranos() -> list[tuple[int, ...]]:
    """The folded intervals of every soprano of Bach's chorales: data=chorales (all splits)
    and the bach collection's soprano lines (data=bach, chorales in other meters too)."""
    from rlmusic.data.prepare import prepare_corpus

    lines = []
    for source in ("chorales", "bach"):
        data, encoding = compose_data(source)
        corpus = prepare_corpus(data, encoding, progress=False)
        for tokens in corpus.tokens:
            voices = encoding.decode_voices(np.asarray(tokens))
            lines.append(folded_intervals([n.pitch for n in voices[0]]))
    return lines


def ngrams(seq: Sequence[int], k: int) -> set[tuple[int, ...]]:
    return {tuple(seq[i : i + k]) for i in range(len(seq) - k + 1)}


def longest_shared_run(tune: Sequence[int], others: Iterable[Sequence[int]]) -> int:
    """The longest run of consecutive intervals ``tune`` shares with any of ``others``.

    >>> longest_shared_run((1, 2, 3, 4), [(9, 2, 3, 9), (2, 3, 4)])
    3
    """
    others = list(others)
    best = 0
    for k in range(1, len(tune) + 1):
        mine = ngrams(tune, k)
        if not any(mine & ngrams(other, k) for other in others):
            break
        best = k
    return best


DUPLE = ("4/4", "2/4")


def duple_from_a_bar_line(abc_text: str) -> bool:
    """One meter, 4/4 or 2/4, and a first bar that is whole (no pickup)."""
    from music21 import converter, meter, stream

    from rlmusic.data.readers import ABC_HEADER

    score = converter.parseData(ABC_HEADER + abc_text, format="abc")
    part = score.parts[0] if isinstance(score, stream.Score) and score.parts else score
    meters = {ts.ratioString for ts in part.recurse().getElementsByClass(meter.TimeSignature)}
    if len(meters) != 1 or not meters <= set(DUPLE):
        return False
    first = part.getElementsByClass(stream.Measure).first()
    if first is None:
        return False
    whole = first.barDuration.quarterLength
    return first.paddingLeft == 0 and first.duration.quarterLength == whole


def write_line(line, path: Path, steps_per_quarter: int) -> None:
    """A grid line as a one-track MIDI file at :data:`QPM`."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=QPM)
    track = pretty_midi.Instrument(program=0, name="melody")
    seconds = 60.0 / QPM / steps_per_quarter
    track.notes = [pretty_midi.Note(90, n.pitch, n.start * seconds, n.end * seconds) for n in line]
    midi.instruments.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.write(str(path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--split",
        default="test",
        choices=("test", "valid"),
        help="the Essen split to draw from: test (the issue's set) or valid (for choosing "
        "settings without looking at the test set)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the MIDI files")
    parser.add_argument("--count", type=int, default=20, help="tunes to export")
    parser.add_argument(
        "--run", type=int, default=12, help="a tune sharing this many intervals with a chorale "
        "soprano is left out",
    )  # fmt: skip
    args = parser.parse_args(argv)

    from rlmusic.data.chorale_encoding import ChoraleEncoding
    from rlmusic.data.melody_input import Soprano, soprano_from_notes
    from rlmusic.data.readers import parse_abc
    from rlmusic.data.sources import collection_items
    from rlmusic.rewards.harmony import VOICE_RANGES

    encoding = ChoraleEncoding()
    test = held_out_ids("essen", args.split)
    chorales = chorale_sopranos()
    candidates = sorted(
        (item for item in collection_items("essen") if item.tune_id in test),
        key=lambda item: item.tune_id,
    )
    chosen, skipped = [], {"not German": 0, "not 4/4 or 2/4 from a bar line": 0, "refused": 0}
    skipped["a chorale's tune"] = 0
    examined = 0
    for item in candidates:
        if len(chosen) == args.count:
            break
        examined += 1
        text = item.abc_text or ""
        if not GERMAN.search(text):
            skipped["not German"] += 1
            continue
        try:
            if not duple_from_a_bar_line(text):
                skipped["not 4/4 or 2/4 from a bar line"] += 1
                continue
            notes = parse_abc(text, where=item.describe())
        except Exception as exc:  # a tune music21 cannot read is no candidate
            print(f"skip {item.describe()}: {exc}", file=sys.stderr)
            skipped["refused"] += 1
            continue
        name = item.tune_id.split("/", 1)[1].replace(".abc#", "_X")
        found = soprano_from_notes(notes, name, item.describe(), encoding, VOICE_RANGES[0])
        if not isinstance(found, Soprano):
            skipped["refused"] += 1
            continue
        shared = longest_shared_run(folded_intervals([n.pitch for n in found.line]), chorales)
        if shared >= args.run:
            print(f"skip {item.describe()}: shares {shared} intervals with a chorale")
            skipped["a chorale's tune"] += 1
            continue
        chosen.append((item, found, shared))

    for _, soprano, _ in chosen:
        write_line(soprano.line, args.out / f"{soprano.name}.mid", encoding.steps_per_quarter)
    with open(args.out.with_suffix(".tsv"), "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["file", "tune_id", "title", "key", "steps", "longest_chorale_run"])
        for item, soprano, shared in chosen:
            writer.writerow(
                [
                    f"{soprano.name}.mid",
                    item.tune_id,
                    item.title,
                    soprano.key,
                    soprano.steps,
                    shared,
                ]
            )
    print(
        f"{len(chosen)} tunes -> {args.out} (the first {examined} of {len(candidates)} "
        "held-out Essen tunes by id; skipped: "
        + ", ".join(f"{why} {count}" for why, count in skipped.items())
        + ")"
    )
    return 0 if len(chosen) == args.count else 1


if __name__ == "__main__":
    raise SystemExit(main())
