"""A weighted sum of reward terms that reports each term's share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlmusic.rewards.base import (
    MelodyView,
    RewardError,
    ViewTerm,
    check_term_output,
    is_sequence_level,
)


@dataclass
class WeightedTerm:
    name: str
    term: Callable[[np.ndarray], np.ndarray]
    weight: float = 1.0

    @property
    def sequence_level(self) -> bool:
        return is_sequence_level(self.term)


class CompositeReward:
    """``total = sum_i weight_i * term_i(tokens)``; every weighted share is returned too.

    >>> from rlmusic.rewards.theory import KeyRule
    >>> total, shares = CompositeReward([WeightedTerm("key", KeyRule(), 2.0)]).score(np.array([[14, 15]]))
    >>> total.tolist(), shares["key"].tolist()
    ([[0.0, -2.0]], [[0.0, -2.0]])
    """

    def __init__(self, terms: list[WeightedTerm]) -> None:
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise RewardError(f"reward term names must be unique, got {names}")
        self.terms = terms

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.terms]

    def score(
        self, tokens: np.ndarray, include_sequence_level: bool = True
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(B, T) tokens -> (total (B, T), {name: weighted share (B, T)}).

        ``include_sequence_level=False`` skips end-of-piece terms (an environment scoring a
        prefix that is not yet the whole piece); they are then reported as zeros.
        """
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise RewardError(f"score takes a (B, T) token array, got shape {tokens.shape}")
        total = np.zeros(tokens.shape)
        shares: dict[str, np.ndarray] = {}
        views: dict[object, MelodyView] = {}  # rules share one view of the batch per encoding
        for t in self.terms:
            if t.sequence_level and not include_sequence_level:
                shares[t.name] = np.zeros(tokens.shape)
                continue
            if isinstance(t.term, ViewTerm):
                view = views.get(t.term.encoding)
                if view is None:
                    view = views[t.term.encoding] = MelodyView.of(tokens, t.term.encoding)
                raw = t.term.from_view(view)
            else:
                raw = t.term(tokens)
            value = t.weight * check_term_output(t.name, raw, tokens.shape)
            shares[t.name] = value
            total += value
        return total, shares

    def score_last(
        self, tokens: np.ndarray, final: bool, state: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The rewards of the last step only: ``score(tokens, final)`` column ``-1``, as (B,) arrays.

        What environments call once per step on the prefix ``tokens (B, t + 1)``. A term with an
        incremental path (``term.score_last(tokens, term_state) -> ((B,), term_state)``, e.g.
        the prior, which then steps its generator one token instead of re-reading the prefix)
        keeps its state in ``state`` (start each episode with ``{}``); its values equal the
        whole-sequence ones up to float rounding. ``final``: the last column ends the piece.
        """
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] == 0:
            raise RewardError(f"score_last takes a (B, t + 1) token array, got {tokens.shape}")
        total = np.zeros(len(tokens))
        shares: dict[str, np.ndarray] = {}
        views: dict[object, MelodyView] = {}
        for t in self.terms:
            if t.sequence_level and not final:
                value = np.zeros(len(tokens))
            elif hasattr(t.term, "score_last"):
                raw, state[t.name] = t.term.score_last(tokens, state.get(t.name))
                value = check_term_output(t.name, raw, (len(tokens),))
            elif isinstance(t.term, ViewTerm):
                view = views.get(t.term.encoding)
                if view is None:
                    view = views[t.term.encoding] = MelodyView.of(tokens, t.term.encoding)
                value = check_term_output(t.name, t.term.from_view(view), tokens.shape)[:, -1]
            else:
                value = check_term_output(t.name, t.term(tokens), tokens.shape)[:, -1]
            shares[t.name] = t.weight * value
            total += shares[t.name]
        return total, shares

    def check_discount(self, gamma: float) -> None:
        """Refuse a discount that a term's shaping is not valid under.

        A term may declare ``required_gamma`` (potential-based shaping telescopes to the whole
        piece's score only at gamma 1; at gamma < 1 it silently becomes a per-prefix reward).

        Raises:
            RewardError: naming the term, its shaping's discount and the algorithm's.
        """
        for t in self.terms:
            required = getattr(t.term, "required_gamma", None)
            if required is not None and abs(float(gamma) - float(required)) > 1e-12:
                raise RewardError(
                    f"reward term {t.name!r} (shaping={getattr(t.term, 'shaping', '?')}) pays "
                    f"potential differences, whose return is the whole piece's score only at "
                    f"gamma {required:g}; this run has algo.gamma={gamma:g}: set algo.gamma="
                    f"{required:g}, or use the term's default shaping"
                )

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        return self.score(tokens)[0]
