"""RL Tuner's nine music-theory rules as pure, batched, causal reward terms.

Values default to the original's; every weight and threshold is a field. Differences from the
original, on purpose (its defects): the special tokens are read one way everywhere (NOTE_OFF
starts a rest, NO_EVENT holds); a held note is never a "repeat"; the key is a parameter; window
lengths come from the encoding's bar; no hidden state (leaps are judged from the tokens).

Examples use ``C, D, E, F, G, A, B, c = 14, 16, 18, 19, 21, 23, 25, 26`` (MIDI 60..72) and
``H = 1`` (hold), ``R = 0`` (rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import MelodyView, ViewTerm, scale_pitch_classes


@dataclass
class _Rule(ViewTerm):
    encoding: MelodyEncoding = field(default_factory=MelodyEncoding)
    tonic: int = 0  # pitch class of the key's tonic (0 = C)
    mode: str = "major"


@dataclass
class KeyRule(_Rule):
    """A note outside the key costs ``penalty``; rests and holds are in key.

    >>> KeyRule()(np.array([[14, 1, 15, 0]])).tolist()
    [[0.0, 0.0, -1.0, 0.0]]
    """

    penalty: float = -1.0

    def from_view(self, v: MelodyView) -> np.ndarray:
        in_key = scale_pitch_classes(self.tonic, self.mode)[np.maximum(v.pitch, 0) % 12]
        return np.where(v.onset & ~in_key, self.penalty, 0.0)


@dataclass
class TonicRule(_Rule):
    """``reward`` for a first step on the tonic at ``octave`` (4 = middle C's; None: any octave).

    >>> TonicRule()(np.array([[14, 1, 1, 1]])).tolist()
    [[3.0, 0.0, 0.0, 0.0]]
    """

    reward: float = 3.0
    octave: int | None = 4

    def from_view(self, v: MelodyView) -> np.ndarray:
        out = np.zeros(v.tokens.shape)
        first = v.pitch[:, 0]
        if self.octave is None:
            starts = (first >= 0) & (first % 12 == self.tonic)
        else:
            starts = first == 12 * (self.octave + 1) + self.tonic
        out[:, 0] = np.where(starts, self.reward, 0.0)
        return out


@dataclass
class TonicEndRule(_Rule):
    """The tonic rule's second half, at the end: ``reward`` when the last note struck is the
    tonic (any octave) and lies in the final bar, so the piece ends on it, then holds or rests.

    >>> TonicEndRule()(np.array([[16, 1, 14, 1]])).tolist()
    [[0.0, 0.0, 0.0, 3.0]]
    """

    reward: float = 3.0
    sequence_level = True

    def from_view(self, v: MelodyView) -> np.ndarray:
        out = np.zeros(v.tokens.shape)
        steps = v.tokens.shape[1]
        final_bar = max(0, steps - self.encoding.steps_per_bar)
        index = np.where(v.onset, np.arange(steps), -1).max(axis=1)
        last_pitch = np.where(index >= 0, v.pitch[np.arange(len(index)), np.maximum(index, 0)], -1)
        ends = (index >= final_bar) & (last_pitch >= 0) & (last_pitch % 12 == self.tonic)
        out[:, -1] = np.where(ends, self.reward, 0.0)
        return out


@dataclass
class RepetitionRule(_Rule):
    """``penalty`` on every strike past ``max_strikes`` of one pitch in a row.

    Strikes are onsets; holds between strikes keep the run going, a rest or another pitch ends
    it. One long held note is one strike and never punished.

    >>> RepetitionRule()(np.array([[14, 14, 1, 14, 14, 14, 1, 1, 1]])).tolist()[0][4:6]
    [0.0, -100.0]
    """

    penalty: float = -100.0
    max_strikes: int = 4

    def from_view(self, v: MelodyView) -> np.ndarray:
        run = np.zeros(v.tokens.shape[0], dtype=np.int64)
        out = np.zeros(v.tokens.shape)
        for t in range(v.tokens.shape[1]):
            same = v.onset[:, t] & (v.pitch[:, t] == v.prev_pitch[:, t]) & ~v.rest_since_prev[:, t]
            run = np.where(v.onset[:, t], np.where(same, run + 1, 1), run)
            out[:, t] = np.where(v.onset[:, t] & (run > self.max_strikes), self.penalty, 0.0)
        return out


@dataclass
class AutocorrelationRule(_Rule):
    """At the end: ``scale * |r_k|`` for each lag k whose autocorrelation |r_k| > ``threshold``.

    Computed on the raw token sequence, as the paper's statistic is.

    >>> float(AutocorrelationRule()(np.array([[14, 1, 14, 1, 14, 1]]))[0, -1])  # |-5/6|+|4/6|+|-3/6| = 2
    -6.0
    """

    scale: float = -3.0
    threshold: float = 0.15
    lags: tuple[int, ...] = (1, 2, 3)
    sequence_level = True

    def from_view(self, v: MelodyView) -> np.ndarray:
        x = v.tokens.astype(np.float64)
        n = x.shape[1]
        centred = x - x.mean(axis=1, keepdims=True)
        variance = x.var(axis=1)
        out = np.zeros(x.shape)
        for lag in self.lags:
            if lag >= n:
                continue
            product = (centred[:, lag:] * centred[:, : n - lag]).sum(axis=1)
            coef = np.abs(
                np.divide(product / n, variance, out=np.zeros(len(x)), where=variance > 0)
            )
            out[:, -1] += np.where(coef > self.threshold, self.scale * coef, 0.0)
        return out


def _windows(array: np.ndarray, window: int) -> np.ndarray:
    """(B, T) -> (B, T - window + 1, window): the window ending at each step from window - 1."""
    return np.lib.stride_tricks.sliding_window_view(array, window, axis=1)


def _window_distinct(v: MelodyView, window: int) -> np.ndarray:
    """(B, T): distinct pitches struck in the ``window`` steps ending at t (0 where t < window-1)."""
    batch, steps = v.pitch.shape
    out = np.zeros((batch, steps), dtype=np.int64)
    if steps < window:
        return out
    ordered = np.sort(_windows(v.pitch, window), axis=-1)  # silent steps (-1) sort first
    new = np.concatenate(
        [ordered[..., :1] >= 0, (ordered[..., 1:] != ordered[..., :-1]) & (ordered[..., 1:] >= 0)],
        axis=-1,
    )
    out[:, window - 1 :] = new.sum(-1)
    return out


@dataclass
class MotifRule(_Rule):
    """At a note whose last ``window_bars`` bar (8 steps in 4/4 at 16ths, as the original) holds
    at least ``min_pitches`` distinct pitches: ``reward`` + ``bonus`` per extra distinct pitch.

    >>> MotifRule()(np.array([[14, 1, 16, 1, 18, 1, 19, 21]])).tolist()[0][-2:]
    [0.0, 3.6]
    """

    reward: float = 3.0
    bonus: float = 0.3
    min_pitches: int = 3
    window_bars: float = 0.5

    @property
    def window(self) -> int:
        return max(1, round(self.window_bars * self.encoding.steps_per_bar))

    def from_view(self, v: MelodyView) -> np.ndarray:
        distinct = _window_distinct(v, self.window)
        hit = v.onset & (distinct >= self.min_pitches)
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
        distinct = _window_distinct(v, w)
        hit = v.onset & (distinct >= self.min_pitches)
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


@dataclass
class PreferredIntervalsRule(_Rule):
    """The interval from the previous note, times ``scale`` (5): in-key thirds 0.15, in-key
    fifths 0.1, thirds 0.09, seconds 0.08, fourths 0.07, sixths 0.05, other fifths 0.02,
    sevenths -0.3, more than an octave -1.0; unisons, tritones and octaves 0.

    >>> PreferredIntervalsRule()(np.array([[14, 18, 1, 37]])).tolist()
    [[0.0, 0.75, 0.0, -5.0]]
    """

    scale: float = 5.0
    in_key_third: float = 0.15
    in_key_fifth: float = 0.1
    third: float = 0.09
    second: float = 0.08
    fourth: float = 0.07
    sixth: float = 0.05
    fifth: float = 0.02
    seventh: float = -0.3
    beyond_octave: float = -1.0

    def from_view(self, v: MelodyView) -> np.ndarray:
        scale_mask = scale_pitch_classes(self.tonic, self.mode)
        both_in_key = (
            scale_mask[np.maximum(v.pitch, 0) % 12] & scale_mask[np.maximum(v.prev_pitch, 0) % 12]
        )
        size = np.abs(v.pitch - v.prev_pitch)
        value = np.zeros(v.tokens.shape)
        table = {
            1: self.second,
            2: self.second,
            5: self.fourth,
            8: self.sixth,
            9: self.sixth,
            10: self.seventh,
            11: self.seventh,
        }
        for interval, reward in table.items():
            value[size == interval] = reward
        value[(size == 3) | (size == 4)] = self.third
        value[((size == 3) | (size == 4)) & both_in_key] = self.in_key_third
        value[size == 7] = np.where(both_in_key[size == 7], self.in_key_fifth, self.fifth)
        value[size > 12] = self.beyond_octave
        counted = v.onset & (v.prev_pitch >= 0)
        return np.where(counted, self.scale * value, 0.0)


@dataclass
class LeapResolutionRule(_Rule):
    """After a leap of ``leap`` semitones or more, the next note: moving back the other way
    earns ``resolved``; another leap the same way costs ``doubled``.

    >>> LeapResolutionRule()(np.array([[14, 21, 19, 12, 2, 1]])).tolist()  # +7 -2 | -7 -10
    [[0.0, 0.0, 5.0, 0.0, -5.0, 0.0]]
    """

    leap: int = 7
    resolved: float = 5.0
    doubled: float = -5.0

    def from_view(self, v: MelodyView) -> np.ndarray:
        out = np.zeros(v.tokens.shape)
        previous_interval = np.zeros(v.tokens.shape[0], dtype=np.int64)
        for t in range(v.tokens.shape[1]):
            onset = v.onset[:, t] & (v.prev_pitch[:, t] >= 0)
            interval = np.where(onset, v.pitch[:, t] - v.prev_pitch[:, t], 0)
            was_leap = np.abs(previous_interval) >= self.leap
            back = np.sign(interval) == -np.sign(previous_interval)
            again = (np.abs(interval) >= self.leap) & (
                np.sign(interval) == np.sign(previous_interval)
            )
            out[:, t] = np.where(onset & was_leap & back & (interval != 0), self.resolved, 0.0)
            out[:, t] += np.where(onset & was_leap & again, self.doubled, 0.0)
            previous_interval = np.where(onset, interval, previous_interval)
        return out


@dataclass
class UniqueExtremesRule(_Rule):
    """At the end: ``reward`` if the highest note is struck exactly once, and again for the lowest.

    >>> UniqueExtremesRule()(np.array([[14, 26, 16, 14]])).tolist()
    [[0.0, 0.0, 0.0, 3.0]]
    """

    reward: float = 3.0
    sequence_level = True

    def from_view(self, v: MelodyView) -> np.ndarray:
        out = np.zeros(v.tokens.shape)
        has = v.onset.any(axis=1)
        high = np.where(v.onset, v.pitch, -1).max(axis=1)
        low = np.where(v.onset, v.pitch, 999).min(axis=1)
        unique_high = ((v.pitch == high[:, None]) & v.onset).sum(1) == 1
        unique_low = ((v.pitch == low[:, None]) & v.onset).sum(1) == 1
        out[:, -1] = np.where(has, self.reward * (unique_high.astype(float) + unique_low), 0.0)
        return out


RULES: dict[str, tuple[type[_Rule], str]] = {
    "key": (KeyRule, "-1 for a note outside the key"),
    "tonic": (TonicRule, "+3 for starting on the tonic (middle C's octave)"),
    "tonic_end": (TonicEndRule, "+3 at the end when the piece ends on the tonic in its final bar"),
    "repetition": (
        RepetitionRule,
        "-100 for each strike past 4 of one pitch in a row (holds are fine)",
    ),
    "autocorrelation": (
        AutocorrelationRule,
        "-3 x |autocorrelation| per lag 1-3 above 0.15, at the end",
    ),
    "motif": (
        MotifRule,
        "+3 (+0.3 per extra pitch) for a note ending a half-bar of 3+ distinct pitches",
    ),
    "repeated_motif": (
        RepeatedMotifRule,
        "+4 (+1 per extra pitch) when that motif occurred earlier",
    ),
    "preferred_intervals": (
        PreferredIntervalsRule,
        "-5 .. +0.75 by the interval from the previous note",
    ),
    "leap_resolution": (
        LeapResolutionRule,
        "+5 for resolving a leap back, -5 for a second leap the same way",
    ),
    "unique_extremes": (
        UniqueExtremesRule,
        "+3 each for a unique highest and a unique lowest note, at the end",
    ),
}
