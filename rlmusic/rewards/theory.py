"""RL Tuner's nine music-theory rules as pure, batched, causal reward terms.

Values default to the original's; every weight and threshold is a field; the key (``tonic``
pitch class, ``mode``) is a parameter and window lengths come from the encoding's bar. Fixed
on purpose (the original's defects): the special tokens are read one way everywhere (NOTE_OFF
starts a rest, NO_EVENT changes nothing); a held note is never a "repeat"; no hidden state
(every rule is a function of the tokens, recomputed per call; the leap detector, stateful in
the original, is a scan over time). The tonic rule is two terms,
``tonic`` (start) and ``tonic_end`` (end of piece), so an environment can pay the first on
step 0 and the second only when the piece ends. The motif rules live in
:mod:`rlmusic.rewards.motif`. docs/rewards.md states every rule's exact definition.

Examples use ``C, D, E, F, G, A, B, c = 14, 16, 18, 19, 21, 23, 25, 26`` (MIDI 60..72) and
``H = 1`` (NO_EVENT: hold), ``R = 0`` (NOTE_OFF: rest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlmusic.data.encoding import NO_EVENT
from rlmusic.rewards.base import MelodyView, Rule, scale_pitch_classes
from rlmusic.rewards.motif import MotifRule, RepeatedMotifRule


@dataclass
class KeyRule(Rule):
    """A note outside the key costs ``penalty``; rests and holds are in key.

    >>> KeyRule()(np.array([[14, 1, 15, 0]])).tolist()
    [[0.0, 0.0, -1.0, 0.0]]
    """

    penalty: float = -1.0

    def from_view(self, v: MelodyView) -> np.ndarray:
        in_key = scale_pitch_classes(self.tonic, self.mode)[np.maximum(v.pitch, 0) % 12]
        return np.where(v.onset & ~in_key, self.penalty, 0.0)


@dataclass
class OnsetsRule(Rule):
    """``penalty`` per note struck. Alone it asks for held notes; with a band on onsets per
    piece (``reward.constraints.onsets``, set from the data by ``reward.targets``) its
    multiplier charges strikes above the band and pays for them below it, so the rules that
    pay per note (motif, preferred intervals) cannot make a slow style busy.

    ``penalty`` is -3: at the default reward's ``c = 3`` a strike costs one point once the
    multiplier reaches 1 (at -1 a run's 150 batches let a slow folder's onsets sit 20% above
    its band: docs/results/own_corpus.md).

    >>> OnsetsRule()(np.array([[14, 1, 15, 0]])).tolist()
    [[-3.0, 0.0, -3.0, 0.0]]
    """

    penalty: float = -3.0
    band_only = True  # rlmusic.algos.constraints: its multipliers start at 0

    def from_view(self, v: MelodyView) -> np.ndarray:
        return np.where(v.onset, self.penalty, 0.0)


@dataclass
class TonicRule(Rule):
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
class TonicEndRule(Rule):
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
class RepetitionRule(Rule):
    """``penalty`` on every strike past ``max_strikes`` of one pitch in a row.

    Strikes are onsets; holds between strikes keep the run going, a rest or another pitch ends
    it. One long held note is one strike and never punished.

    >>> RepetitionRule()(np.array([[14, 14, 1, 14, 14, 14, 1, 1, 1]])).tolist()[0][4:6]
    [0.0, -100.0]
    """

    penalty: float = -100.0
    max_strikes: int = 4

    def from_view(self, v: MelodyView) -> np.ndarray:
        return np.where(excess_strikes(v, self.max_strikes), self.penalty, 0.0)


def excess_strikes(v: MelodyView, max_strikes: int = 4) -> np.ndarray:
    """(B, T) bool: onsets that are past the ``max_strikes``-th strike of one pitch in a run.

    A strike starts a new run unless it repeats the previous strike with no NOTE_OFF between
    (holds between keep the run). Shared by the rule and the "excessively repeated" statistic.
    """
    same = v.onset & (v.pitch == v.prev_pitch) & ~v.rest_since_prev
    strikes = np.cumsum(v.onset, axis=1)  # strikes so far, this one included
    first = np.maximum.accumulate(np.where(v.onset & ~same, strikes, 0), axis=1)
    run = strikes - first + 1  # this strike's place in its run
    return v.onset & (run > max_strikes)


@dataclass
class AutocorrelationRule(Rule):
    """``scale * |r_k|`` for each lag k whose autocorrelation |r_k| exceeds ``threshold``.

    ``r_k`` is the original's statistic of the raw token sequence,
    ``sum_t (x_t - m)(x_{t-k} - m) / (n var(x))`` (0 for a constant sequence). By default it is
    paid once, at the end, on the whole piece (the quantity the paper's table reports);
    ``every_step=True`` pays it at every step on the prefix so far, as the original's
    environment did (then it is a step-level term).

    >>> float(AutocorrelationRule()(np.array([[14, 1, 14, 1, 14, 1]]))[0, -1])  # |-5/6|+|4/6|+|-3/6| = 2
    -6.0
    >>> AutocorrelationRule(every_step=True)(np.array([[14, 1, 14, 1]])).round(2).tolist()
    [[0.0, -1.5, -2.5, -4.5]]
    """

    scale: float = -3.0
    threshold: float = 0.15
    lags: tuple[int, ...] = (1, 2, 3)
    every_step: bool = False

    @property
    def sequence_level(self) -> bool:  # type: ignore[override]
        return not self.every_step

    def from_view(self, v: MelodyView) -> np.ndarray:
        x = v.tokens.astype(np.float64)
        if self.every_step:
            return self._prefixes(x)
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

    def _prefixes(self, x: np.ndarray) -> np.ndarray:
        """(B, T): the penalty of every prefix ``x[:, :t+1]`` at once, from running sums."""
        steps = x.shape[1]
        n = np.arange(1, steps + 1, dtype=np.float64)  # prefix lengths
        s1 = np.cumsum(x, axis=1)
        mean = s1 / n
        variance = np.maximum(np.cumsum(x * x, axis=1) / n - mean**2, 0.0)
        # a constant prefix has variance 0 up to rounding: treat tiny values as 0
        variance = np.where(variance > 1e-9 * np.maximum(mean**2, 1.0), variance, 0.0)
        out = np.zeros(x.shape)
        for lag in self.lags:
            if lag >= steps:
                continue
            # sum_{i=lag}^{n-1} x_i x_{i-lag}, sum_{i=lag}^{n-1} x_i, sum_{i=0}^{n-1-lag} x_i
            products = np.zeros(x.shape)
            products[:, lag:] = np.cumsum(x[:, lag:] * x[:, :-lag], axis=1)
            late = np.zeros(x.shape)
            late[:, lag:] = s1[:, lag:] - s1[:, lag - 1 : lag]
            early = np.zeros(x.shape)
            early[:, lag:] = s1[:, :-lag]
            pairs = np.maximum(n - lag, 0.0)
            numerator = products - mean * (late + early) + pairs * mean**2
            coef = np.abs(
                np.divide(numerator / n, variance, out=np.zeros(x.shape), where=variance > 0)
            )
            coef[:, :lag] = 0.0
            out += np.where(coef > self.threshold, self.scale * coef, 0.0)
        return out


@dataclass
class PreferredIntervalsRule(Rule):
    """The interval from the previous note, times ``scale`` (5): in-key thirds 0.15, in-key
    fifths 0.1, thirds 0.09, seconds 0.08, fourths 0.07, sixths 0.05, other fifths 0.02,
    sevenths -0.3, more than an octave -1.0; unisons (``unison``), tritones and octaves 0. "In key": both
    notes in the key's scale. A step that strikes nothing, after some note: holding that note
    0.075 (0.3 if it is the tonic or the fifth), resting 0.05 (0.15 after the tonic or fifth),
    the original's values (it read the two special tokens this way here). The original pays them
    on every silent step, so a held tonic earns 1.5 per step forever; ``silent_steps_paid``
    (None: the original) pays only the first that many silent steps after each onset.

    >>> PreferredIntervalsRule()(np.array([[14, 18, 1, 37, 0, 1]])).tolist()
    [[0.0, 0.75, 0.375, -5.0, 0.25, 0.25]]
    """

    scale: float = 5.0
    unison: float = 0.0  # the original's; the default preset pays a repeated note as a second
    in_key_third: float = 0.15
    in_key_fifth: float = 0.1
    third: float = 0.09
    second: float = 0.08
    fourth: float = 0.07
    sixth: float = 0.05
    fifth: float = 0.02
    seventh: float = -0.3
    beyond_octave: float = -1.0
    hold: float = 0.075
    hold_after_tonic_or_fifth: float = 0.3
    rest: float = 0.05
    rest_after_tonic_or_fifth: float = 0.15
    silent_steps_paid: int | None = None  # the default preset: 7 (up to a half note)

    def __post_init__(self) -> None:
        if self.silent_steps_paid is not None and self.silent_steps_paid < 0:
            raise ValueError(
                f"silent_steps_paid must be >= 0 or null, got {self.silent_steps_paid}"
            )

    def _table(self, in_key: bool) -> np.ndarray:
        """Value by interval size 0..13 (13 stands for anything over an octave)."""
        third = self.in_key_third if in_key else self.third
        fifth = self.in_key_fifth if in_key else self.fifth
        return np.array(
            [self.unison, self.second, self.second, third, third, self.fourth, 0.0, fifth]
            + [self.sixth, self.sixth, self.seventh, self.seventh, 0.0, self.beyond_octave]
        )

    def from_view(self, v: MelodyView) -> np.ndarray:
        scale_mask = scale_pitch_classes(self.tonic, self.mode)
        both_in_key = (
            scale_mask[np.maximum(v.pitch, 0) % 12] & scale_mask[np.maximum(v.prev_pitch, 0) % 12]
        )
        size = np.clip(np.abs(v.pitch - v.prev_pitch), 0, 13)  # 13: more than an octave
        value = np.where(both_in_key, self._table(True)[size], self._table(False)[size])
        value = np.where(v.onset, value, 0.0)
        # silent steps after a note: holding it, or resting (NOTE_OFF, or NO_EVENT in a rest)
        after = v.prev_pitch >= 0
        pitch_class = v.prev_pitch % 12
        anchor = (pitch_class == self.tonic) | (pitch_class == (self.tonic + 7) % 12)
        if self.silent_steps_paid is not None:  # a bounded time after each onset
            after &= v.onset | (
                np.arange(v.tokens.shape[1]) - v.prev_index <= self.silent_steps_paid
            )
        holding = ~v.onset & (v.tokens == NO_EVENT) & ~v.rest_since_prev
        value += np.where(holding, np.where(anchor, self.hold_after_tonic_or_fifth, self.hold), 0.0)
        value += np.where(
            ~v.onset & ~holding, np.where(anchor, self.rest_after_tonic_or_fifth, self.rest), 0.0
        )
        return np.where(after, self.scale * value, 0.0)


RESOLVED, DOUBLED = 1, -1  # leap_outcomes' values; 0: nothing decided at that step


def leap_outcomes(pitch: np.ndarray, leap: int = 7, min_gap: int = 6) -> np.ndarray:
    """RL Tuner's leap detector (``detect_leap_up_back``) as a causal scan, batched over rows.

    ``pitch`` (B, T): MIDI pitch at onsets, -1 at holds and rests. Returns (B, T) int8:
    ``RESOLVED`` (1) or ``DOUBLED`` (-1) at the step where the detector decides, else 0.

    Intervals are between consecutive onsets (holds and rests skipped). A *leap* is an
    interval of ``leap`` (7) semitones or more. With no leap open, a leap opens one: it
    remembers its direction and the note leapt from. While a leap is open:

    * a non-leap onset at or past the note leapt from (at or below it after a leap up, at or
      above it after a leap down) resolves it and closes it (a gradual return);
    * a leap the other way closes it, and resolves it only if more than ``min_gap`` (6) steps
      lie strictly between it and the last leap (holds and rests count as steps): an
      immediate leap back is not a resolution;
    * a leap the same way is doubled; the leap stays open with the *first* note leapt from,
      and the step count restarts from this leap (the original's ``steps_since_last_leap``
      is reset by every leap).

    The step count counts every step strictly between two leaps, so a leap back at step t
    after a leap at step s resolves only if t - s - 1 > ``min_gap``.

    >>> C, E, F, G, c, d = 60, 64, 65, 67, 72, 74
    >>> leap_outcomes(np.array([[C, G, F, E, C, -1]])).tolist()  # +7 opens; back to C: resolved
    [[0, 0, 0, 0, 1, 0]]
    >>> leap_outcomes(np.array([[C, G, C, G, C, G]])).tolist()  # leaps back at once: nothing
    [[0, 0, 0, 0, 0, 0]]
    >>> leap_outcomes(np.array([[C, G, d, -1, -1, -1]])).tolist()  # +7 +7: doubled
    [[0, 0, -1, 0, 0, 0]]
    """
    pitch = np.asarray(pitch)
    batch, steps = pitch.shape
    out = np.zeros((batch, steps), dtype=np.int8)
    scan = LeapScan.start(batch)
    for t in range(steps):
        scan, out[:, t] = scan.read(pitch[:, t], leap, min_gap)
    return out


@dataclass(frozen=True)
class LeapScan:
    """The leap detector's state after reading ``steps`` steps of B pieces (one row each).

    Immutable: :meth:`read` returns the next state, so a caller may keep any state and read
    on from it (the environments' incremental path does, one step per call).
    """

    last: np.ndarray  # (B,) the last onset's pitch so far (-1: none yet)
    direction: np.ndarray  # (B,) the open leap's: +1 up, -1 down, 0 none open
    leapt_from: np.ndarray  # (B,) the open leap's first note leapt from
    leap_step: np.ndarray  # (B,) step of the last leap (opening, doubled or closing)
    steps: int = 0

    @classmethod
    def start(cls, batch: int) -> LeapScan:
        zeros = np.zeros(batch, dtype=np.int64)
        return cls(np.full(batch, -1, dtype=np.int64), zeros, zeros, zeros)

    def read(
        self, note: np.ndarray, leap: int = 7, min_gap: int = 6
    ) -> tuple[LeapScan, np.ndarray]:
        """Read step ``steps`` (``note``: (B,) pitch, -1 if silent): the next state and the
        (B,) int8 outcome there (``RESOLVED``, ``DOUBLED`` or 0)."""
        t = self.steps
        onset = note >= 0
        interval = np.where(onset & (self.last >= 0), note - self.last, 0)
        is_leap = np.abs(interval) >= leap
        way = np.sign(interval)
        is_open = self.direction != 0
        back = is_leap & is_open & (way != self.direction)
        # after a leap up, at or below the note leapt from; after a leap down, at or above it
        gradual = onset & ~is_leap & is_open & (self.direction * (note - self.leapt_from) <= 0)
        resolved = gradual | (back & (t - self.leap_step - 1 > min_gap))
        doubled = is_leap & is_open & (way == self.direction)
        opens = is_leap & ~is_open
        state = LeapScan(
            last=np.where(onset, note, self.last),
            direction=np.where(back | gradual, 0, np.where(opens, way, self.direction)),
            leapt_from=np.where(opens, self.last, self.leapt_from),
            leap_step=np.where(is_leap, t, self.leap_step),
            steps=t + 1,
        )
        return state, resolved.astype(np.int8) - doubled.astype(np.int8)


@dataclass
class LeapResolutionRule(Rule):
    """``resolved`` (+5) where RL Tuner's leap detector resolves a leap, ``doubled`` (-5) where
    it finds a second leap the same way: :func:`leap_outcomes`, paid at the deciding step.

    A leap (``leap`` = 7+ semitones between consecutive onsets) is resolved by a gradual return
    to or past the note leapt from, or by a leap back only after more than ``min_gap`` (6)
    steps; an immediate leap back earns nothing (alternating two notes a fifth apart is not
    a resolution).

    >>> LeapResolutionRule()(np.array([[14, 21, 19, 14, 21, 14], [14, 21, 28, 1, 1, 1]])).tolist()
    [[0.0, 0.0, 0.0, 5.0, 0.0, 0.0], [0.0, 0.0, -5.0, 0.0, 0.0, 0.0]]
    """

    leap: int = 7
    min_gap: int = 6
    resolved: float = 5.0
    doubled: float = -5.0

    def _pay(self, outcome: np.ndarray) -> np.ndarray:
        return np.where(
            outcome == RESOLVED, self.resolved, np.where(outcome == DOUBLED, self.doubled, 0.0)
        )

    def from_view(self, v: MelodyView) -> np.ndarray:
        return self._pay(leap_outcomes(v.pitch, self.leap, self.min_gap))

    def score_last(
        self, tokens: np.ndarray, state: tuple[LeapScan, np.ndarray] | None
    ) -> tuple[np.ndarray, tuple[LeapScan, np.ndarray]]:
        """The last column of ``self(tokens)`` for ``tokens (B, t + 1)``, reading on from
        ``state`` (None to start): what the previous call returned, with the tokens it read.

        The environments' incremental path: one scan step per call instead of the whole
        prefix. The state is explicit (the caller keeps it for the episode); a state whose
        tokens are not a prefix of ``tokens`` is ignored and the scan starts over.
        """
        tokens = np.asarray(tokens).astype(np.int64)
        scan, seen = state if state is not None else (None, None)
        if (
            scan is None
            or seen.shape[0] != len(tokens)
            or seen.shape[1] >= tokens.shape[1]
            or not np.array_equal(seen, tokens[:, : seen.shape[1]])
        ):
            scan, seen = LeapScan.start(len(tokens)), tokens[:, :0]
        outcome = np.zeros(len(tokens), dtype=np.int8)
        for column in self.encoding.pitches(tokens[:, seen.shape[1] :]).T:
            scan, outcome = scan.read(column, self.leap, self.min_gap)
        return self._pay(outcome), (scan, tokens)


@dataclass
class UniqueExtremesRule(Rule):
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


RULES: dict[str, tuple[type[Rule], str]] = {
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
        "+3 (+0.3 per extra pitch) for each step ending a half-bar of 3+ distinct pitches",
    ),
    "repeated_motif": (
        RepeatedMotifRule,
        "+4 (+1 per extra pitch) for each motif step whose half-bar occurred earlier",
    ),
    "preferred_intervals": (
        PreferredIntervalsRule,
        "-5 .. +0.75 by the interval from the previous note; +0.25 .. +1.5 for holds and rests",
    ),
    "leap_resolution": (
        LeapResolutionRule,
        "+5 where a leap is resolved (a gradual return, or a leap back more than 6 steps "
        "later), "
        "-5 for a second leap the same way",
    ),
    "unique_extremes": (
        UniqueExtremesRule,
        "+3 each for a unique highest and a unique lowest note, at the end",
    ),
    "onsets": (OnsetsRule, "-3 per note struck (holds a band on onsets per piece)"),
}
# RL Tuner's own rules (Jaques et al. 2017), in the paper's order: every rule above but the
# band-holding ``onsets``
PAPER_RULES: tuple[str, ...] = tuple(name for name in RULES if name != "onsets")
