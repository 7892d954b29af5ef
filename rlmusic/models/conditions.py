"""What a conditioned policy is given before it writes: a prefix it reads and tokens it must
keep. A harmoniser's rollouts draw sopranos; an unconditional generator's take none.

:class:`SopranoConditions` draws one soprano per baseline group, so the group baselines
(RLOO, GRPO) compare harmonisations of the *same* melody, as prompt-conditioned GRPO compares
answers to the same prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rlmusic.data.harmonisation import conditioning_prefix, forced_tokens


class Conditions(Protocol):
    """A source of conditions for a batch of rollouts."""

    def draw(
        self, groups: int, group_size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``groups * group_size`` rows: the prefix (B, P) read after BOS, and the forced
        tokens (B, T), ``-1`` where the policy samples. Rows of a group share one condition."""
        ...


def soprano_windows(tunes: list[np.ndarray], steps: int, encoding: Any) -> np.ndarray:
    """(N, steps) the sopranos of every window of ``steps`` steps that starts on a bar line
    of ``tunes`` (whole chorales): the melodies a harmoniser's rollouts harmonise.

    >>> from rlmusic.data.chorale_encoding import ChoraleEncoding
    >>> enc = ChoraleEncoding()
    >>> tune = np.tile(np.array([38, 84, 132, 167]), 40)  # 40 steps: 2 bars + 8 steps
    >>> soprano_windows([tune], 16, enc).shape
    (2, 16)
    """
    per_step, bar = encoding.tokens_per_step, encoding.steps_per_bar
    rows = [
        np.asarray(tune[start * per_step : (start + steps) * per_step : per_step])
        for tune in tunes
        for start in range(0, len(tune) // per_step - steps + 1, bar)
    ]
    if not rows:
        raise ValueError(f"no chorale has {steps} steps to harmonise: lower length")
    return np.stack(rows).astype(np.int64)


def melody_soprano_windows(
    tunes: list[np.ndarray],
    steps: int,
    melody_encoding: Any,
    encoding: Any,
    soprano_range: tuple[int, int],
) -> np.ndarray:
    """(N, steps) soprano tokens from melodies (a melody corpus, keys already in C / A minor):
    every window of ``steps`` steps from a bar line that starts on a note, moved by the fewest
    whole octaves into ``soprano_range`` (windows no octave holds are left out), in the chorale
    encoding's block 0 -- so that a harmoniser also learns on melodies that are not Bach's.

    >>> from rlmusic.data.chorale_encoding import ChoraleEncoding
    >>> from rlmusic.data.encoding import MelodyEncoding
    >>> mel = MelodyEncoding()
    >>> tune = np.array([mel.pitch_to_token(55), 1, 1, 1] * 8)  # G3 quarters: 32 steps
    >>> windows = melody_soprano_windows([tune], 16, mel, ChoraleEncoding(), (60, 82))
    >>> windows.shape, ChoraleEncoding().pitch_name(int(windows[0, 0]))
    ((2, 16), 'G4')
    """
    from rlmusic.data.melody_input import fit_octave

    low, high = soprano_range
    bar, rows = melody_encoding.steps_per_bar, []
    first = melody_encoding.FIRST_PITCH_TOKEN
    for tune in tunes:
        tune = np.asarray(tune, dtype=np.int64)
        for start in range(0, len(tune) - steps + 1, bar):
            window = tune[start : start + steps]
            struck = window >= first
            if window[0] < first or not struck.any():  # a held note or a rest at the bar line
                continue
            pitches = window[struck] - first + melody_encoding.min_pitch
            octave = fit_octave(pitches.tolist(), low, high)
            if octave is None:
                continue
            local = window.copy()
            local[struck] = pitches + octave - encoding.min_pitch + encoding.FIRST_PITCH_TOKEN
            rows.append(local)
    if not rows:
        return np.zeros((0, steps), dtype=np.int64)
    return np.stack(rows)


@dataclass
class SopranoConditions:
    """Harmonise sopranos drawn uniformly (with replacement) from ``sopranos`` (N, steps).

    Args:
        sopranos: soprano tokens (block 0 of the chorale encoding), one melody per row.
        encoding: the chorale encoding.
    """

    sopranos: np.ndarray
    encoding: Any

    def __post_init__(self) -> None:
        self.sopranos = np.asarray(self.sopranos, dtype=np.int64)
        if self.sopranos.ndim != 2 or not len(self.sopranos):
            raise ValueError(f"sopranos must be (N, steps) with N >= 1, got {self.sopranos.shape}")
        conditioning_prefix(self.sopranos[:1], self.encoding)  # checks the tokens

    @property
    def steps(self) -> int:
        return int(self.sopranos.shape[1])

    def draw(
        self, groups: int, group_size: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.sopranos[rng.integers(len(self.sopranos), size=groups)]
        chosen = np.repeat(chosen, group_size, axis=0)
        return conditioning_prefix(chosen, self.encoding), forced_tokens(chosen, self.encoding)


def seeded_conditions(conditions: Conditions, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` conditions (prefix, forced) :func:`rlmusic.models.sampling.sample_seeded`
    draws for ``seed``: callers that score its samples read the same prefixes."""
    return conditions.draw(n, 1, np.random.default_rng([int(seed), 2]))
