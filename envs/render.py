"""A text piano roll: one row per pitch (high to low), one column per step.

``#`` a note struck, ``=`` held, ``.`` silent; a bar line ``|`` every ``steps_per_bar`` steps.
"""

from __future__ import annotations

import numpy as np

from rlmusic.data.encoding import MelodyEncoding

_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def piano_roll_text(tokens: np.ndarray, encoding: MelodyEncoding, length: int | None = None) -> str:
    """Render played ``tokens`` (padding beyond them is shown as empty steps up to ``length``).

    >>> print(piano_roll_text([14, 1, 16, 18, 0, 1, 14], MelodyEncoding(steps_per_quarter=1), 8))
     E4  ...#|....
    Eb4  ....|....
     D4  ..#.|....
    C#4  ....|....
     C4  #=..|..#.
    """
    tokens = np.asarray(tokens)
    length = max(length or len(tokens), len(tokens))
    notes = encoding.decode(tokens)
    if notes:
        low, high = min(n.pitch for n in notes), max(n.pitch for n in notes)
    else:
        low = high = 60
    rows = []
    for pitch in range(high, low - 1, -1):
        cells = ["."] * length
        for n in notes:
            if n.pitch == pitch:
                cells[n.start] = "#"
                for step in range(n.start + 1, n.end):
                    cells[step] = "="
        line = "".join(
            ("|" if step and step % encoding.steps_per_bar == 0 else "") + cell
            for step, cell in enumerate(cells)
        )
        rows.append(f"{_NAMES[pitch % 12]:>2}{pitch // 12 - 1:<2} {line}")
    return "\n".join(rows)
