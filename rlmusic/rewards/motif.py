"""RL Tuner's motif rules: a half-bar of three or more pitches, and such a motif repeated.

The window helpers are shared with the evaluation's "notes in motif" statistics, so the rule
pays exactly what the statistic counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlmusic.rewards.base import MelodyView, Rule


def _windows(array: np.ndarray, window: int) -> np.ndarray:
    """(B, T) -> (B, T - window + 1, window): the window ending at each step from window - 1."""
    return np.lib.stride_tricks.sliding_window_view(array, window, axis=1)


def _window_distinct(v: MelodyView, window: int) -> np.ndarray:
    """:func:`window_distinct` of the view's pitches, cached on the view (the rules share it)."""
    key = ("window_distinct", window)
    if key not in v.cache:
        v.cache[key] = window_distinct(v.pitch, window)
    return v.cache[key]


def window_distinct(pitch: np.ndarray, window: int) -> np.ndarray:
    """(B, T): distinct pitches struck in the ``window`` steps ending at each step t, the step
    included; 0 where t < window - 1 (no full window yet). ``pitch`` is -1 at silent steps.

    >>> window_distinct(np.array([[60, -1, 62, 60, 64]]), 3).tolist()
    [[0, 0, 2, 2, 3]]
    """
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


def repeats_earlier_window(tokens: np.ndarray, window: int) -> np.ndarray:
    """(B, T) bool: the ``window`` tokens ending at t equal, token for token (holds and rests
    included), the ``window`` tokens ending at some s <= t - window: an earlier window that
    ends before this one starts, as the original's ``detect_repeated_motif`` searched.

    >>> repeats_earlier_window(np.array([[5, 6, 5, 6, 6]]), 2).tolist()
    [[False, False, False, True, False]]
    """
    batch, steps = tokens.shape
    repeated = np.zeros((batch, steps), dtype=bool)
    if steps < 2 * window:
        return repeated
    # one integer per distinct window, then compare every window with the earlier ones
    windows = _windows(np.asarray(tokens), window)
    codes = np.unique(windows.reshape(-1, window), axis=0, return_inverse=True)[1].reshape(
        windows.shape[:2]
    )
    ends = np.arange(window - 1, steps)
    earlier = ends[None, :] <= ends[:, None] - window  # (end t, end s): s ends before t starts
    same = (codes[:, :, None] == codes[:, None, :]) & earlier[None]
    repeated[:, window - 1 :] = same.any(-1)
    return repeated


@dataclass
class MotifRule(Rule):
    """At a step whose last ``window_bars`` bar (8 steps in 4/4 at 16ths, as the original),
    the step included, holds at least ``min_pitches`` distinct pitches: ``reward`` + ``bonus``
    per extra distinct pitch.

    Paid at every such step, holds and rests included, as the original paid it and as the
    "notes in motif" statistic counts it: the rule asks for three pitches in every half-bar,
    not for more strikes. ``onsets_only=True`` pays only steps that strike a note; that pays
    busyness (each extra strike in a qualifying window earns another +3), which the original
    never paid.

    >>> MotifRule()(np.array([[14, 1, 16, 1, 18, 1, 19, 21, 1]])).tolist()[0][-3:]  # C gone
    [0.0, 3.6, 3.3]
    """

    reward: float = 3.0
    bonus: float = 0.3
    min_pitches: int = 3
    window_bars: float = 0.5
    onsets_only: bool = False

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
    """A motif step (as :class:`MotifRule`) whose window's tokens equal, token for token, a
    window that ends before this one starts (:func:`repeats_earlier_window`, the original's
    ``detect_repeated_motif``): ``reward`` + ``bonus`` per extra distinct pitch.

    >>> motif = [14, 1, 16, 1, 18, 1, 19, 21]
    >>> RepeatedMotifRule()(np.array([motif + motif])).tolist()[0][-4:]
    [0.0, 0.0, 0.0, 6.0]
    """

    reward: float = 4.0
    bonus: float = 1.0

    def from_view(self, v: MelodyView) -> np.ndarray:
        distinct, hit = self._hits(v)
        repeated = repeats_earlier_window(v.tokens, self.window)
        return np.where(
            hit & repeated, self.reward + self.bonus * (distinct - self.min_pitches), 0.0
        )
