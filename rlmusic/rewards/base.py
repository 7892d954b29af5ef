"""The reward seam: a term is a pure, batched, causal function of the tokens.

``term(tokens: int array (B, T)) -> float array (B, T)``: the reward each step earns given its
prefix. Changing tokens after step ``t`` never changes rewards at steps ``<= t``. A term that
judges the whole piece (an end-of-piece rule, a critic) sets ``sequence_level = True`` and pays
only on the last step of the array it is given. A plain function with that signature is a term.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from rlmusic.data.encoding import NO_EVENT, MelodyEncoding
from rlmusic.errors import UserError


class RewardError(UserError, ValueError):
    """A reward term is misconfigured or returned something unusable (names the term)."""


@runtime_checkable
class RewardTerm(Protocol):
    def __call__(self, tokens: np.ndarray) -> np.ndarray: ...


def is_sequence_level(term: object) -> bool:
    return bool(getattr(term, "sequence_level", False))


@dataclass(frozen=True)
class MelodyView:
    """Per-step facts every rule needs, computed once per batch.

    ``pitch``: MIDI pitch at onsets, -1 elsewhere. ``onset``: pitch tokens. ``prev_index`` and
    ``prev_pitch``: step and pitch of the last onset strictly before each step (-1 if none).
    ``rest_since_prev``: a NOTE_OFF lies strictly between that onset and this step.
    """

    tokens: np.ndarray  # (B, T) int64
    pitch: np.ndarray  # (B, T)
    onset: np.ndarray  # (B, T) bool
    prev_index: np.ndarray  # (B, T)
    prev_pitch: np.ndarray  # (B, T)
    rest_since_prev: np.ndarray  # (B, T) bool
    cache: dict = field(default_factory=dict, repr=False, compare=False)  # shared by rules

    @classmethod
    def of(cls, tokens: np.ndarray, encoding: MelodyEncoding) -> MelodyView:
        tokens = np.asarray(tokens).astype(np.int64)
        if tokens.ndim != 2:
            raise RewardError(f"reward terms take a (B, T) token array, got shape {tokens.shape}")
        if getattr(encoding, "kind", "melody") != "melody":
            # four interleaved voices read as one line would be judged wrongly, not fail
            raise RewardError(
                f"melody rules read one line, and this encoding is {encoding.kind}: use the "
                "voice-leading terms, or per_voice to apply a melody rule to each voice"
            )
        pitch = encoding.pitches(tokens)
        onset = pitch >= 0
        steps = np.arange(tokens.shape[1])

        def last_before(mask: np.ndarray) -> np.ndarray:
            """(B, T): index of the last True strictly before each step, -1 if none."""
            upto = np.maximum.accumulate(np.where(mask, steps, -1), axis=1)
            return np.concatenate([np.full((len(mask), 1), -1), upto[:, :-1]], axis=1)

        prev_index = last_before(onset)
        prev_pitch = np.where(
            prev_index >= 0, np.take_along_axis(pitch, np.maximum(prev_index, 0), axis=1), -1
        )
        rest_since = last_before(~onset & (tokens != NO_EVENT)) > prev_index
        return cls(tokens, pitch, onset, prev_index, prev_pitch, rest_since)


class ViewTerm:
    """A rule computed from a shared :class:`MelodyView` (the composite builds it once)."""

    encoding: MelodyEncoding
    sequence_level = False

    def from_view(self, view: MelodyView) -> np.ndarray:
        raise NotImplementedError  # abstract

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        return self.from_view(MelodyView.of(tokens, self.encoding))


@dataclass
class Rule(ViewTerm):
    """A music-theory rule: a view term with the encoding (bar length) and the key."""

    encoding: MelodyEncoding = field(default_factory=MelodyEncoding)
    tonic: int = 0  # pitch class of the key's tonic (0 = C)
    mode: str = "major"  # major | minor


def scale_pitch_classes(tonic: int, mode: str) -> np.ndarray:
    """Boolean (12,) mask of the key's scale (major, or natural/harmonic minor)."""
    steps = {
        "major": (0, 2, 4, 5, 7, 9, 11),
        "minor": (0, 2, 3, 5, 7, 8, 10, 11),  # natural minor plus the leading tone
    }
    if mode not in steps:
        raise RewardError(f"unknown mode {mode!r}; known: {', '.join(steps)}")
    if not 0 <= tonic < 12:
        raise RewardError(f"tonic must be a pitch class 0..11, got {tonic}")
    mask = np.zeros(12, dtype=bool)
    mask[[(tonic + s) % 12 for s in steps[mode]]] = True
    return mask


def check_term_output(name: str, rewards: object, shape: tuple[int, ...]) -> np.ndarray:
    """Stop on a wrong shape or non-finite values, naming the term."""
    array = np.asarray(rewards, dtype=np.float64)
    if array.shape != shape:
        raise RewardError(f"reward term {name!r} returned shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        bad = int((~np.isfinite(array)).sum())
        raise RewardError(f"reward term {name!r} returned {bad} non-finite values (NaN or inf)")
    return array
