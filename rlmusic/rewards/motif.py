"""RL Tuner's motif rules: a half-bar of three or more pitches, and such a motif repeated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlmusic.rewards.base import MelodyView, Rule


def _windows(array: np.ndarray, window: int) -> np.ndarray:
    """(B, T) -> (B, T - window + 1, window): the window ending at each step from window - 1."""
    return np.lib.stride_tricks.sliding_window_view(array, window, axis=1)


def _window_distinct(v: MelodyView, window: int) -> np.ndarray:
    """(B, T): distinct pitches struck in the ``window`` steps ending at t (0 where t < window-1).

    Cached on the view: the motif rules share it.
    """
    key = ("window_distinct", window)
    if key not in v.cache:
        v.cache[key] = _count_window_distinct(v.pitch, window)
    return v.cache[key]


def _count_window_distinct(pitch: np.ndarray, window: int) -> np.ndarray:
    batch, steps = pitch.shape
    out = np.zeros((batch, steps), dtype=np.int64)
    if steps < window:
        return out
    ordered = np.sort(_windows(pitch, window), axis=-1)  # silent steps (-1) sort first
    new = np.concatenate(
        [ordered[..., :1] >= 0, (ordered[..., 1:] != ordered[..., :-1]) & (ordered[..., 1:] >= 0)],
        axis=-1,
    )
    out[:, window - 1 :] = new.sum(-1)
    return out


@dataclass
class MotifRule(Rule):
    """At a note whose last ``window_bars`` bar (8 steps in 4/4 at 16ths, as the original) holds
    at least ``min_pitches`` distinct pitches: ``reward`` + ``bonus`` per extra distinct pitch.

    Paid on notes struck (the "notes in motif" statistic); ``onsets_only=False`` pays every step
    whose window qualifies, holds and rests included, as the original did.

    >>> MotifRule()(np.array([[14, 1, 16, 1, 18, 1, 19, 21]])).tolist()[0][-2:]
    [0.0, 3.6]
    """

    reward: float = 3.0
    bonus: float = 0.3
    min_pitches: int = 3
    window_bars: float = 0.5
    onsets_only: bool = True

    @property
    def window(self) -> int:
        return max(1, round(self.window_bars * self.encoding.steps_per_bar))

    def _hits(self, v: MelodyView) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) distinct pitches per window and where a motif is paid."""
        distinct = _window_distinct(v, self.window)
        hit = distinct >= self.min_pitches
        return distinct, (hit & v.onset) if self.onsets_only else hit

    def from_view(self, v: MelodyView) -> np.ndarray:
        distinct, hit = self._hits(v)
        return np.where(hit, self.reward + self.bonus * (distinct - self.min_pitches), 0.0)


@dataclass
class RepeatedMotifRule(MotifRule):
    """A motif (as :class:`MotifRule`) whose tokens equal an earlier, non-overlapping window of
    the piece: ``reward`` + ``bonus`` per extra distinct pitch.

    >>> motif = [14, 1, 16, 1, 18, 1, 19, 21]
    >>> RepeatedMotifRule()(np.array([motif + motif])).tolist()[0][-4:]
    [0.0, 0.0, 0.0, 6.0]
    """

    reward: float = 4.0
    bonus: float = 1.0

    def from_view(self, v: MelodyView) -> np.ndarray:
        w = self.window
        distinct, hit = self._hits(v)
        steps = v.tokens.shape[1]
        if steps < 2 * w:
            return np.zeros(v.tokens.shape)
        # one integer per distinct window, then compare every window with the earlier ones
        windows = _windows(v.tokens, w)
        codes = np.unique(windows.reshape(-1, w), axis=0, return_inverse=True)[1].reshape(
            windows.shape[:2]
        )
        ends = np.arange(w - 1, steps)
        earlier = ends[None, :] <= ends[:, None] - w  # (end t, end s): s ends before t's window
        same = (codes[:, :, None] == codes[:, None, :]) & earlier[None]
        repeated = np.zeros(v.tokens.shape, dtype=bool)
        repeated[:, w - 1 :] = same.any(-1)
        return np.where(
            hit & repeated, self.reward + self.bonus * (distinct - self.min_pitches), 0.0
        )
