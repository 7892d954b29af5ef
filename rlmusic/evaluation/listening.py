"""A blind A/B listening page: static HTML, no server, answers in the critics' preference format.

Pair ``i`` holds piece ``i`` of each of two columns; a seeded coin puts one of them on the left
(A) and the other on the right (B). Sample ids (``s000`` ..) come from a seeded shuffle of all
the pieces, so neither an id nor a file name tells the model; the answer key (for the
experimenter, not the listener) maps them back, and lives beside the page's folder, never in
it, so ``DIR`` can be served to listeners as it is. The page writes::

    DIR/listen.html      the page (piano rolls embedded, style and script inline)
    DIR/samples/<id>.mid the pieces as MIDI: the preference loader's samples_dir
    DIR/audio/<id>.wav   what the page plays
    DIR.key.json         sample id -> model, spec, index; pair -> which model is A
                         (:func:`key_path`: a sibling of DIR, not inside it)

A listener clicks A, B or tie per pair (kept in the browser's localStorage across reloads) and
downloads ``preferences.json``: ``[{pair_id, sample_a, sample_b, preferred}]``, which
``rlmusic.critics.load_preferences(path, samples_dir=DIR/"samples")`` reads and
``rlmusic train-critic critic=preference`` trains on.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from rlmusic.data.encodings import Encoding
from rlmusic.data.io import save_midi
from rlmusic.evaluation import audio, plots
from rlmusic.evaluation.columns import Column
from rlmusic.evaluation.report import stylesheet


@dataclass(frozen=True)
class BlindPair:
    """One pair: its id and the (sample id, column index, piece index) shown as A and as B."""

    pair_id: str
    a: tuple[str, int, int]
    b: tuple[str, int, int]


def blind_pairs(pairs: int, seed: int) -> list[BlindPair]:
    """``pairs`` pairs of piece ``i`` of column 0 and of column 1, sides by a seeded coin, and
    sample ids from a seeded shuffle (column 0's pieces are not the even ids, or the first).

    >>> [p.pair_id for p in blind_pairs(2, 0)]
    ['p00', 'p01']
    """
    rng = np.random.default_rng(seed)
    width = max(3, len(str(2 * pairs - 1)))
    ids = [f"s{j:0{width}d}" for j in rng.permutation(2 * pairs)]  # ids[c * pairs + i]
    out = []
    for i in range(pairs):
        first = (ids[i], 0, i)
        second = (ids[pairs + i], 1, i)
        a, b = (second, first) if rng.random() < 0.5 else (first, second)
        out.append(BlindPair(f"p{i:0{max(2, len(str(pairs - 1)))}d}", a, b))
    return out


def _side(label: str, sample_id: str, roll: bytes) -> str:
    data = base64.b64encode(roll).decode("ascii")
    return (
        f'<div class="side"><h3>{label}</h3>'
        f'<img alt="piano roll {label}" src="data:image/png;base64,{data}">'
        f'<audio controls preload="metadata" src="audio/{sample_id}.wav"></audio></div>'
    )


def page(
    pairs: list[BlindPair], rolls: dict[str, bytes], study: str, synth: str, what: str = "melodies"
) -> str:
    """The page's HTML (``rolls``: sample id -> piano-roll PNG; ``what``: the pieces, in the
    listeners' words)."""
    blocks = []
    for number, pair in enumerate(pairs, start=1):
        buttons = "".join(
            f'<button type="button" data-verdict="{v}">{label}</button>'
            for v, label in (("a", "A is better"), ("b", "B is better"), ("tie", "Tie"))
        )
        blocks.append(
            f'<section class="pair" data-pair-id="{pair.pair_id}" data-sample-a="{pair.a[0]}" '
            f'data-sample-b="{pair.b[0]}"><h2>Pair {number} of {len(pairs)}</h2>'
            f'<div class="sides">{_side("A", pair.a[0], rolls[pair.a[0]])}'
            f"{_side('B', pair.b[0], rolls[pair.b[0]])}</div>"
            f'<p class="choices">{buttons}</p></section>'
        )
    script = resources.files("rlmusic.evaluation").joinpath("templates/listen.js").read_text()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rlmusic listening test</title><style>{stylesheet()}</style></head>
<body data-study="{study}">
<h1>Which do you prefer?</h1>
<p class="note">Each pair holds two short {html.escape(what)} in a random order. Listen to both, then
choose A, B or a tie. Your answers stay in this browser, also after a reload. When you are
done, download them and send <code>preferences.json</code> back. Audio: {html.escape(synth)}.</p>
<p><span id="progress"></span> <button type="button" id="download" disabled>Download
preferences.json</button> <button type="button" id="clear">Clear answers</button></p>
{"".join(blocks)}
<script>{script}</script>
</body></html>
"""


def key_path(out: str | Path) -> Path:
    """Where the answer key of the page in ``out`` goes: ``<out>.key.json`` beside the folder
    (``listen/`` -> ``listen.key.json``), outside what is served to listeners.

    >>> key_path("studies/listen").as_posix().endswith("studies/listen.key.json")
    True
    """
    out = Path(out).resolve()  # "." and "dir/" have a name only once resolved
    return out.parent / f"{out.name}.key.json"


def write_listening_page(
    columns: tuple[Column, Column],
    encoding: Encoding,
    out: Path,
    pairs: int,
    seed: int = 0,
    renderer: audio.Renderer | None = None,
    qpm: float = 80.0,
    key_file: Path | None = None,
) -> Path:
    """Write the page, its samples and audio into ``out``, and its answer key to ``key_file``
    (None: :func:`key_path` of ``out``); returns the page's path. ``renderer``: how the pieces
    sound (None: ``synth=auto`` at 44.1 kHz in the encoding's program: a piano for melodies, an
    organ for chorales). A chorale's piano roll has a colour per voice.

    Raises:
        ValueError: fewer than one piece in a column, or a ``key_file`` inside ``out`` (the
            listeners would be served the answers).
    """
    pairs = min(pairs, len(columns[0].tokens), len(columns[1].tokens))
    if pairs < 1:
        raise ValueError("the listening page needs at least one piece from each model")
    out = Path(out)
    key_file = Path(key_file) if key_file is not None else key_path(out)
    if key_file.resolve().is_relative_to(out.resolve()):
        raise ValueError(
            f"the answer key {key_file} would be served with the page in {out}: write it "
            "outside that folder"
        )
    (out / "samples").mkdir(parents=True, exist_ok=True)
    chosen = blind_pairs(pairs, seed)
    renderer = renderer or audio.renderer()
    rolls: dict[str, bytes] = {}
    key: dict[str, dict] = {"samples": {}, "pairs": {}}
    for pair in chosen:
        for sample_id, column, index in (pair.a, pair.b):
            tokens = columns[column].tokens[index]
            save_midi(tokens, out / "samples" / f"{sample_id}.mid", encoding, qpm=qpm)
            renderer.render_wav(tokens, out / "audio" / f"{sample_id}.wav", encoding, qpm)
            rolls[sample_id] = plots.piano_roll(tokens, encoding, plots.colour(0))
            key["samples"][sample_id] = {
                "model": columns[column].name, "spec": columns[column].spec, "index": index,
            }  # fmt: skip
        key["pairs"][pair.pair_id] = {
            "a": columns[pair.a[1]].name, "b": columns[pair.b[1]].name,
        }  # fmt: skip
    study = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(json.dumps({"study": study, **key}, indent=2))
    path = out / "listen.html"
    what = "melodies" if encoding.kind == "melody" else f"{encoding.kind}s"
    text = page(chosen, rolls, study, renderer.describe(encoding), what)
    path.write_text(text, encoding="utf-8")
    return path
