"""Rule targets as constraints: pay a rule only as much as it takes to meet its target.

A rule's reward pays without end, so an optimiser drives its statistic past what real music
does (tonic starts at 60% where real melodies have 22%), and a critic tells the result from real
music by that overshoot. ``reward.constraints`` turns a target such as "tonic start >= 30%" into
a Lagrange multiplier ``lambda`` on that rule's weight, the way adaptive KL control moves its
beta (and as Moskovitz et al. 2023, "Confronting Reward Model Overoptimization with Constrained
RLHF", do for composite rewards):

    v        = (target - statistic) / room                  # > 0 while the target is missed
    integral <- clip(integral + lr * v, 0, max_multiplier)   # starts at 1: the base weight
    lambda    = clip(integral + kp * v, 0, max_multiplier)

for an "at least" target (the sign flips for "at most"), once per batch, from the batch's own
statistic counted exactly as ``rlmusic evaluate`` counts it
(:func:`rlmusic.rewards.statistics.composition_stats`): projected gradient ascent on the
Lagrangian (the integral) with a proportional term, the PID Lagrangian of Stooke et al. 2020
("Responsive Safety in Reinforcement Learning by PID Lagrangian Methods") without its
derivative. While the target is missed the rule pays more; once it is passed the rule pays
less, down to nothing, so overshoot earns nothing and the KL control and the critic pull the
statistic back toward real music. A statistic is a share, and ``room`` is the target's
distance to the nearer end of [0, 1] (0.3 for a 30% target, 0.08 for 92%, 0.01 for 1%), so one
gain suits them all; a rate above 1 (pitch changes per voice per bar) is measured relative to
its target.

Measured (docs/finetuning.md): a multiplicative update collapsed to ~0 while tonic starts
overshot and took ~60 iterations to climb back; a pure integral at lr 0.5 swung tonic starts
between 23% and 55% with a period of ~80 iterations (the policy answers a new weight ~10-20
iterations late), so where a run stopped decided its numbers. The proportional term answers
at once and the small integral only settles the weight.

A target may be a band: ``at_least`` and ``at_most``. The bound the rule serves (``at_least``
for a rule that pays for its statistic, ``at_most`` for a penalty) scales the rule's weight;
the other bound has a multiplier of its own that starts at 0 and is subtracted, so a statistic
pushed past its ceiling by *other* terms (tonic starts rise with the preferred-intervals rule's
pay for holding the tonic, not only with the tonic rule) is paid back down. The served bound
pulls the statistic to itself: its integral falls while the statistic is past it, so a run
pays the least rule weight that meets the bound (what keeps ``algo=batched``'s music close to
real melodies). A learner whose statistic wanders by a few points round to round ends below
that bound as often as above it; with ``hold`` no multiplier moves while the statistic is
inside its band, and the weight that brought it in is kept (docs/results/finetuning.md, "One
default reward for every learner").

A learner with few or noisy moves (``algo.constraint_*``, :meth:`RuleConstraints.tune`) may
average each statistic over its moves (``constraint_smoothing``), pool pieces per move
(``constraint_pieces``) or scale both gains (``constraint_gain``).

Config (``reward.constraints``), keyed by the rule term whose weight the multipliers scale::

    constraints:
      tonic: {at_least: 0.33, at_most: 0.37}   # eval/compositions_starting_with_tonic
      leap_resolution: {at_least: 0.95}        # eval/leaps_resolved (the original's detector)
      motif: {at_least: 0.43}                  # eval/notes_in_motif (per step)

The multipliers are a trainer's state: saved in its resume point, logged per iteration as
``constraint/<term>/statistic``, ``.../at_least``, ``.../at_most`` and ``.../multiplier``. ``reward.constraint_lr``,
``reward.constraint_kp`` and ``reward.constraint_max`` set the gains and the cap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlmusic.data.encodings import Encoding
from rlmusic.evaluation.table_rows import row_name, statistic_values, table_for
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.composite import CompositeReward
from rlmusic.rewards.harmony_statistics import HarmonyStatistic
from rlmusic.rewards.statistics import KeySpec, Statistic

log = logging.getLogger(__name__)

# the rule term -> the statistic (as `rlmusic evaluate` counts it) that its targets bound, and
# whether the term's reward rises with it (True: it pays for it) or falls (a penalty)
# (melodies: RL Tuner's table; chorales: the voice-leading table, both picked by the encoding's
# kind through rlmusic.evaluation.table_rows.table_for)
STATISTIC_OF_TERM: dict[str, tuple[Statistic | HarmonyStatistic, bool]] = {
    "tonic": (Statistic.TONIC_START, True),
    "leap_resolution": (Statistic.LEAPS_RESOLVED, True),
    "motif": (Statistic.NOTES_IN_MOTIF, True),
    "repeated_motif": (Statistic.NOTES_IN_REPEATED_MOTIF, True),
    "unique_extremes": (Statistic.UNIQUE_MAX, True),
    "key": (Statistic.NOTES_NOT_IN_KEY, False),
    "repetition": (Statistic.NOTES_EXCESSIVELY_REPEATED, False),
    "onsets": (Statistic.ONSETS_PER_PIECE, False),
    "parallel_fifths": (HarmonyStatistic.PARALLEL_FIFTHS, False),
    "parallel_octaves": (HarmonyStatistic.PARALLEL_OCTAVES, False),
    "voice_crossing": (HarmonyStatistic.VOICE_CROSSING, False),
    "spacing": (HarmonyStatistic.SPACING, False),
    "voice_range": (HarmonyStatistic.OUT_OF_RANGE, False),
    "unprepared_dissonance": (HarmonyStatistic.UNPREPARED_DISSONANCE, False),
    "full_voicing": (HarmonyStatistic.FULL_VOICING, True),
    "voice_motion": (HarmonyStatistic.PITCH_CHANGES_PER_VOICE_PER_BAR, True),
    "voice_onsets": (HarmonyStatistic.ONSETS_PER_VOICE_PER_BAR, False),
    "final_cadence": (HarmonyStatistic.FINAL_CADENCE, True),
}
BOUNDS = ("at_least", "at_most")


def _room(target: float) -> float:
    """The scale of a violation: a share's distance to the nearer end of [0, 1]; a rate above
    1 (pitch changes per voice per bar) is measured against itself.

    >>> _room(0.3), round(_room(0.92), 2), _room(3.0)
    (0.3, 0.08, 3.0)
    """
    if target > 1.0:
        return target
    return max(min(target, 1.0 - target), 1e-3)


@dataclass
class Bound:
    """One target of a statistic with its PI multiplier. The bound the term's reward serves
    (``at_least`` for a term that pays for the statistic, ``at_most`` for a penalty) starts at
    the base weight (integral 1); the other bound starts at 0 and pushes the other way."""

    kind: str  # at_least | at_most
    target: float
    serves: bool  # the term's own direction: its multiplier scales the base weight up
    integral: float = 0.0
    multiplier: float = 0.0
    start: float = 1.0  # the served bound's first multiplier (0 for a term that only holds a band)

    def __post_init__(self) -> None:
        if self.serves and self.integral == 0.0:
            self.integral = self.multiplier = self.start

    def violation(self, value: float, edge: float | None = None) -> float:
        """Shortfall in units of the target's room (> 0 while it is missed, < 0 once passed),
        counted from ``edge`` where given (a held band's edge the statistic crossed)."""
        target = self.target if edge is None else edge
        gap = target - value if self.kind == "at_least" else value - target
        return gap / _room(self.target)


@dataclass
class Constraint:
    """``term``'s weight = base weight x (served multiplier - opposing multiplier): a band
    ``[at_least, at_most]`` on ``statistic`` (either end may be left open)."""

    term: str
    statistic: Statistic | HarmonyStatistic
    base_weight: float
    bounds: list[Bound]

    def edge(self, value: float) -> float | None:
        """For a held two-sided band, the edge ``value`` lies past, or ``value`` itself inside
        the band (no violation); None for a one-sided target. Counted from the crossed edge, a
        statistic one point over a 98% ceiling no longer reads as 3.5 points over a 95% floor,
        whose proportional term flipped the rule's sign in one move."""
        if len(self.bounds) < 2:
            return None
        low = min(b.target for b in self.bounds)
        high = max(b.target for b in self.bounds)
        return min(max(value, low), high)

    @property
    def multiplier(self) -> float:
        served = [b.multiplier for b in self.bounds if b.serves]
        opposing = sum(b.multiplier for b in self.bounds if not b.serves)
        return (served[0] if served else 1.0) - opposing


class RuleConstraints:
    """Multipliers on rule weights that move toward meeting their targets and no more.

    Wraps a :class:`CompositeReward`'s ``score``: each call scores the batch with the current
    multipliers, then updates them from that batch's statistics (used from the next batch on).
    Called as a run harness hook ``(step, policy)`` (:mod:`rlmusic.algos.harness`) it returns
    the latest metrics; its ``state_dict`` rides in the resume point with the other hooks'.

    Args:
        reward: the composite whose term weights it scales (in place).
        constraints: ``term -> {at_least: share, at_most: share}`` (one or both).
        encoding: for the statistics.
        key: the key the statistics count in (the reward's ``tonic`` and ``mode``).
        lr: the integral's step per unit of shortfall (in units of the target's room).
        kp: the proportional gain: the multiplier's immediate answer to a shortfall.
        max_multiplier: upper bound of a multiplier.
    """

    def __init__(
        self,
        reward: CompositeReward,
        constraints: Mapping[str, Mapping[str, float]],
        encoding: Encoding,
        key: KeySpec,
        lr: float = 0.05,
        kp: float = 0.5,
        max_multiplier: float = 4.0,
    ) -> None:
        if lr <= 0 or kp < 0 or max_multiplier <= 0:
            raise RewardError(
                f"need reward.constraint_lr > 0, reward.constraint_kp >= 0 and "
                f"reward.constraint_max > 0, got {lr}, {kp} and {max_multiplier}"
            )
        self.reward, self.encoding, self.key = reward, encoding, key
        self.table = table_for(encoding)
        self.lr, self.kp, self.max_multiplier = float(lr), float(kp), float(max_multiplier)
        weights = {t.name: t for t in reward.terms}
        self.constraints = [self._parse(term, spec, weights) for term, spec in constraints.items()]
        self.min_pieces = 0  # pool scored batches until this many pieces (tune)
        self.smoothing = 0.0  # the past's weight in each statistic's running average (tune)
        self.hold = False  # keep the multipliers while a statistic is inside its band (tune)
        self.averages: dict[str, float] = {}  # term -> the running average the moves follow
        self._pending: list[np.ndarray] = []
        self._apply()
        self.latest: dict[str, float] = self._metrics(None)

    def tune(
        self, gain: float = 1.0, min_pieces: int = 0, smoothing: float = 0.0, hold: bool = False
    ) -> None:
        """Suit the updates to a learner: ``gain`` scales both gains (a learner with fewer
        updates needs larger steps), ``min_pieces`` pools scored batches until that many pieces
        before a move, ``smoothing`` is the weight of the past in an exponential average of
        each statistic (a small sample's statistic is noise: the leaps resolved in 256 pieces
        swing by 3 points, the width of their band), ``hold`` keeps every multiplier where it
        is while its statistic is inside its band (a learner whose statistic wanders by a few
        points round to round otherwise ends below the floor it was pulled back to)."""
        if gain <= 0 or min_pieces < 0 or not 0.0 <= smoothing < 1.0:
            raise RewardError(
                f"need algo.constraint_gain > 0, algo.constraint_pieces >= 0 and 0 <= "
                f"algo.constraint_smoothing < 1, got {gain}, {min_pieces} and {smoothing}"
            )
        self.lr, self.kp = self.lr * float(gain), self.kp * float(gain)
        self.min_pieces = int(min_pieces)
        self.smoothing = float(smoothing)
        self.hold = bool(hold)
        self.latest = self._metrics(None)  # with the averages' columns when smoothed

    def _parse(self, term: str, spec: Any, weights: Mapping[str, Any]) -> Constraint:
        if term not in weights:
            raise RewardError(
                f"reward.constraints.{term}: no such term in the reward; its terms: "
                f"{', '.join(weights)}"
            )
        mine = [
            t
            for t, (stat, _) in STATISTIC_OF_TERM.items()
            if isinstance(stat, self.table.statistic)
        ]
        if term not in mine:
            raise RewardError(
                f"reward.constraints.{term}: no statistic is known for this term in the "
                f"{self.table.section} table; constrainable: {', '.join(mine)}"
            )
        spec = dict(spec or {})
        given = {k: float(v) for k, v in spec.items() if k in BOUNDS and v is not None}
        if not given or set(spec) - set(BOUNDS):
            raise RewardError(
                f"reward.constraints.{term}: give at_least and / or at_most (shares), got {spec}"
            )
        if len(given) == 2 and given["at_least"] >= given["at_most"]:
            raise RewardError(
                f"reward.constraints.{term}: at_least {given['at_least']} must lie below "
                f"at_most {given['at_most']}"
            )
        statistic, pays = STATISTIC_OF_TERM[term]
        served = "at_least" if pays else "at_most"
        # a term that only holds a row in its band (``band_only``: a charge per onset) pays
        # nothing until the row leaves it: its multipliers all start at 0, not at the base weight
        start = 0.0 if getattr(weights[term].term, "band_only", False) else 1.0
        bounds = [
            Bound(kind, target, kind == served, start=start) for kind, target in given.items()
        ]
        return Constraint(term, statistic, weights[term].weight, bounds)

    def _apply(self) -> None:
        by_name = {t.name: t for t in self.reward.terms}
        for c in self.constraints:
            by_name[c.term].weight = c.base_weight * c.multiplier

    def update(self, tokens: np.ndarray) -> dict[str, float]:
        """Move each multiplier by the batch's statistic (pooled with the batches before it
        until ``min_pieces``); returns the logged metrics."""
        self._pending.append(np.asarray(tokens))
        if sum(len(t) for t in self._pending) < self.min_pieces:
            return self.latest
        tokens = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        table = statistic_values(self.table.count(tokens, self.encoding, self.key))
        cap = self.max_multiplier
        for c in self.constraints:
            value = table[c.statistic]
            if not math.isfinite(value):  # a batch with no leap says nothing about leaps
                continue
            if c.term in self.averages:
                value = self.smoothing * self.averages[c.term] + (1 - self.smoothing) * value
            self.averages[c.term] = value
            edge = c.edge(value) if self.hold else None
            for b in c.bounds:
                v = b.violation(value, edge)
                b.integral = float(np.clip(b.integral + self.lr * v, 0.0, cap))
                b.multiplier = float(np.clip(b.integral + self.kp * v, 0.0, cap))
        self._apply()
        self.latest = self._metrics(table)
        return self.latest

    def _metrics(self, table: Mapping[Any, float] | None) -> dict[str, float]:
        """The logged values: every bound's target, each statistic (NaN before the first
        move: a log's columns are fixed by its first row) and multiplier."""
        metrics: dict[str, float] = {}
        for c in self.constraints:
            prefix = f"constraint/{c.term}"
            for b in c.bounds:
                metrics[f"{prefix}/{b.kind}"] = b.target
            metrics[f"{prefix}/statistic"] = float("nan") if table is None else table[c.statistic]
            if self.smoothing:  # what the multipliers follow
                metrics[f"{prefix}/average"] = self.averages.get(c.term, float("nan"))
            metrics[f"{prefix}/multiplier"] = c.multiplier
        return metrics

    def wrap(
        self, score: Callable[[np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]]
    ) -> Callable[[np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]]:
        """``score`` with the current multipliers, then an update from the scored batch."""

        def constrained(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            out = score(tokens)
            self.update(tokens)
            return out

        return constrained

    def __call__(self, step: int, policy: Any) -> dict[str, float]:
        return dict(self.latest)

    def state_dict(self) -> dict[str, Any]:
        return {
            "bounds": {
                f"{c.term}.{b.kind}": [b.integral, b.multiplier]
                for c in self.constraints
                for b in c.bounds
            },
            "averages": dict(self.averages),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = dict(state.get("bounds", {}))
        mine = {f"{c.term}.{b.kind}": b for c in self.constraints for b in c.bounds}
        if set(saved) != set(mine):
            raise RewardError(
                f"the resume point constrains {sorted(saved)}, this run {sorted(mine)}: resume "
                "with the same reward.constraints, or use a new output folder"
            )
        for name, bound in mine.items():
            bound.integral, bound.multiplier = (float(x) for x in saved[name])
        self.averages = {k: float(v) for k, v in dict(state.get("averages", {})).items()}
        self._apply()


def applied(setup: Any, algo_cfg: Mapping[str, Any], algo: str, default: bool) -> Any:
    """``setup`` with its constraints, or without them when ``algo.apply_constraints`` (default
    ``default``) is false; says which."""
    from dataclasses import replace

    if setup.constraints is None:
        return setup
    if bool(algo_cfg.get("apply_constraints", default)):
        gain, pieces = algo_cfg.get("constraint_gain", 1.0), algo_cfg.get("constraint_pieces", 0)
        smoothing = float(algo_cfg.get("constraint_smoothing", 0.0))
        hold = bool(algo_cfg.get("constraint_hold", False))
        setup.constraints.tune(float(gain), int(pieces), smoothing, hold)
        log.info(
            "algo=%s: reward.constraints applied (gains x%g, %s, statistics averaged with the "
            "past at %g, %s)",
            algo,
            float(gain),
            f"pooled to {int(pieces)} pieces a move" if int(pieces) else "a move per update",
            smoothing,
            "held inside their bands" if hold else "pulled to the bound they serve",
        )
        return setup
    log.warning(
        "algo=%s: reward.constraints (%s) not applied (algo.apply_constraints=false): the rules "
        "are paid at their base weights",
        algo,
        ", ".join(c.term for c in setup.constraints.constraints),
    )
    return replace(setup, constraints=None)


def build_constraints(
    reward_cfg: Mapping[str, Any], reward: CompositeReward, encoding: Encoding
) -> RuleConstraints | None:
    """The ``reward.constraints`` of a reward config (None when it has none)."""
    constraints = reward_cfg.get("constraints") or {}
    if not constraints:
        return None
    controller = RuleConstraints(
        reward,
        constraints,
        encoding,
        KeySpec(int(reward_cfg.get("tonic", 0)), str(reward_cfg.get("mode", "major"))),
        float(reward_cfg.get("constraint_lr", 0.05)),
        float(reward_cfg.get("constraint_kp", 0.5)),
        float(reward_cfg.get("constraint_max", 4.0)),
    )
    log.info(
        "reward constraints: %s",
        ", ".join(
            f"{row_name(c.statistic)} "  # the log reads as the evaluation's table
            + " and ".join(
                f"{'>=' if b.kind == 'at_least' else '<='} {b.target:g}" for b in c.bounds
            )
            + f" (term {c.term})"
            for c in controller.constraints
        ),
    )
    return controller
