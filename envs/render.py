"""A text piano roll: one row per pitch (high to low), one column per time step.

A melody shows ``#`` where a note is struck and ``=`` where it is held. Several voices (a
chorale) show each voice's initial where it strikes (``S A T B``) and the lower-case initial
where it holds; ``*`` marks a pitch two voices sound at once. ``.`` is silence, and a bar line
``|`` comes every ``steps_per_bar`` steps.
"""

from __future__ import annotations

import numpy as np

from rlmusic.data.encoding import MelodyEncoding  # noqa: F401 - the doctest's
from rlmusic.data.encodings import Encoding

_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _marks(encoding: Encoding) -> list[tuple[str, str]]:
    """(struck, held) characters per voice."""
    if len(encoding.voice_names) == 1:
        return [("#", "=")]
    return [(name[0].upper(), name[0].lower()) for name in encoding.voice_names]


def piano_roll_text(tokens: np.ndarray, encoding: Encoding, length: int | None = None) -> str:
    """Render played ``tokens``; ``length`` (tokens, e.g. an episode's) pads the roll with
    empty steps up to ``length // tokens_per_step`` (a partly written step is shown as far as
    it is written: :meth:`decode_voices` drops only the unwritten voices' tokens).

    >>> print(piano_roll_text([14, 1, 16, 18, 0, 1, 14], MelodyEncoding(steps_per_quarter=1), 8))
     E4  ...#|....
    Eb4  ....|....
     D4  ..#.|....
    C#4  ....|....
     C4  #=..|..#.
    """
    tokens = np.asarray(tokens)
    per_step = encoding.tokens_per_step
    written = -(-len(tokens) // per_step)  # a partial step counts: its voices so far show
    steps = max((length or 0) // per_step, written)
    # unwritten voices of the last step hold (each voice's hold in its own block)
    voice = np.arange(written * per_step) % per_step
    padded = encoding.NO_EVENT + encoding.voice_size * voice
    padded[: len(tokens)] = tokens
    voices = encoding.decode_voices(padded)
    notes = [(v, n) for v, line in enumerate(voices) for n in line]
    if notes:
        low, high = min(n.pitch for _, n in notes), max(n.pitch for _, n in notes)
    else:
        low = high = 60
    marks = _marks(encoding)
    rows = []
    for pitch in range(high, low - 1, -1):
        cells = ["."] * steps
        for v, n in notes:
            if n.pitch != pitch:
                continue
            for step in range(n.start, n.end):
                mark = marks[v][0] if step == n.start else marks[v][1]
                cells[step] = mark if cells[step] == "." else "*"
        line = "".join(
            ("|" if step and step % encoding.steps_per_bar == 0 else "") + cell
            for step, cell in enumerate(cells)
        )
        rows.append(f"{_NAMES[pitch % 12]:>2}{pitch // 12 - 1:<2} {line}")
    return "\n".join(rows)
