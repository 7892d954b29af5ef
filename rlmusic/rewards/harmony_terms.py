"""Voice-leading rules as reward terms: ``(B, T) tokens -> (B, T) rewards``, causal.

Each term counts with :mod:`rlmusic.rewards.harmony` (the functions the voice-leading table
counts with) and pays each offence on the token that completes it, so credit is sharp: a voice
pair ``(i, j)`` (``i`` above ``j``) at frame ``k`` is judged once both voices' tokens of frame
``k`` are in, at token ``4 k + j``; a voice's own offence (an onset out of range, a silence)
at its own token ``4 k + v``. Nothing at or before a token depends on what follows it, and a
prefix ending inside a frame earns what the same tokens earn in the whole piece (the frame's
missing tokens are padded with holds, which only the unjudged voices would read).

The terms take a :class:`~rlmusic.data.chorale_encoding.ChoraleEncoding` and refuse any other
(a one-line :class:`~rlmusic.rewards.base.RewardError`). :class:`PerVoice` applies a melody
rule of :mod:`rlmusic.rewards.theory` to each voice's column and scatters its rewards back.

Tokens in the examples: ``H = 1`` (hold); pitch tokens are ``pitch - 36 + 2``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import NO_EVENT
from rlmusic.rewards import harmony
from rlmusic.rewards.base import RewardError


def require_chorale(encoding: object, name: str) -> ChoraleEncoding:
    """``encoding`` if it is four-part, else a one-line error naming the term."""
    if getattr(encoding, "kind", None) != "chorale":
        kind = getattr(encoding, "kind", type(encoding).__name__)
        raise RewardError(
            f"reward term {name!r} judges four-part harmony and needs encoding=chorale; "
            f"this run's encoding is {kind}"
        )
    return encoding  # type: ignore[return-value]


def _whole_steps(tokens: np.ndarray, encoding: ChoraleEncoding) -> np.ndarray:
    """(B, T) -> (B, 4 ceil(T / 4)): a partial last frame padded with holds (each in its
    voice's block)."""
    tokens = np.asarray(tokens).astype(np.int64)
    if tokens.ndim != 2:
        raise RewardError(f"reward terms take a (B, T) token array, got shape {tokens.shape}")
    voices = encoding.num_voices
    missing = -tokens.shape[1] % voices
    holds = NO_EVENT + encoding.voice_size * np.arange(voices - missing, voices)
    return np.concatenate([tokens, np.broadcast_to(holds, (len(tokens), missing))], axis=1)


def _scatter(flags: np.ndarray, voices: np.ndarray, length: int, value: float) -> np.ndarray:
    """(B, P, n) flags on voice ``voices[p]`` at frame k -> (B, length) rewards at 4 k + v."""
    batch, _, steps = flags.shape
    out = np.zeros((batch, 4 * steps))
    for p, voice in enumerate(voices):
        out[:, voice::4] += value * flags[:, p, :]
    return out[:, :length]


@dataclass
class HarmonyTerm:
    """A voice-leading rule over the frames: subclasses give ``flags`` (which offences, on which
    voice's token) and ``penalty`` (the reward per offence)."""

    encoding: ChoraleEncoding = field(default_factory=ChoraleEncoding)
    penalty: float = -1.0
    name = "harmony"
    sequence_level = False

    def __post_init__(self) -> None:
        require_chorale(self.encoding, self.name)

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``((B, P, n) bool offences, (P,) the voice whose token each row is paid on)``."""
        raise NotImplementedError  # abstract

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        length = np.asarray(tokens).shape[-1]
        pitch, onset = harmony.frames(_whole_steps(tokens, self.encoding), self.encoding)
        flags, voices = self.flags(pitch, onset)
        return _scatter(flags, voices, length, self.paid)

    @property
    def paid(self) -> float:
        """The reward per flagged token: the penalty (a rule that pays for something says so)."""
        return self.penalty


@dataclass
class ParallelFifthsRule(HarmonyTerm):
    """``penalty`` per similar-motion parallel fifth (:func:`~rlmusic.rewards.harmony.parallels`).

    >>> enc = ChoraleEncoding()
    >>> pitches = (67, 64, 60, 48, 69, 64, 62, 48)  # S-T G/C -> A/D
    >>> t = [enc.pitch_to_token(p, i % 4) for i, p in enumerate(pitches)]
    >>> ParallelFifthsRule()(np.array([t])).tolist()
    [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0]]
    """

    name = "parallel_fifths"

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return harmony.parallels(pitch)[0], harmony.LOWER


@dataclass
class ParallelOctavesRule(HarmonyTerm):
    """``penalty`` per similar-motion parallel octave or unison."""

    name = "parallel_octaves"

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return harmony.parallels(pitch)[1], harmony.LOWER


@dataclass
class VoiceCrossingRule(HarmonyTerm):
    """``penalty`` per adjacent pair crossed (the lower voice strictly above), on the lower
    voice's token."""

    name = "voice_crossing"

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return harmony.crossed_pairs(pitch), np.array([1, 2, 3])


@dataclass
class SpacingRule(HarmonyTerm):
    """``penalty`` where soprano-alto or alto-tenor are more than ``max_gap`` apart."""

    max_gap: int = harmony.MAX_UPPER_GAP
    name = "spacing"

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return harmony.spaced_pairs(pitch, self.max_gap), np.array([1, 2])


@dataclass
class VoiceRangeRule(HarmonyTerm):
    """``penalty`` per onset outside its voice's range (``ranges``: four ``[low, high]``)."""

    ranges: Sequence[Sequence[int]] = harmony.VOICE_RANGES
    name = "voice_range"

    def __post_init__(self) -> None:
        super().__post_init__()
        harmony.out_of_range(np.zeros((1, 4, 0), int), np.zeros((1, 4, 0), bool), self.ranges)

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return harmony.out_of_range(pitch, onset, self.ranges), np.arange(4)


@dataclass
class UnpreparedDissonanceRule(HarmonyTerm):
    """``penalty`` per voice pair dissonant and unprepared on a strong beat
    (:func:`~rlmusic.rewards.harmony.unprepared_dissonance`)."""

    name = "unprepared_dissonance"

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return harmony.unprepared_dissonance(pitch, onset, self.encoding), harmony.LOWER


@dataclass
class FullVoicingRule(HarmonyTerm):
    """``penalty`` per voice silent at a frame, on its own token (rests in four-part writing are
    rare: Bach's chorales sound all four voices almost everywhere)."""

    name = "full_voicing"

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return pitch < 0, np.arange(4)


@dataclass
class VoiceMotionRule(HarmonyTerm):
    """``reward`` per voice that moves to another pitch (:func:`~rlmusic.rewards.harmony.
    pitch_changes`), on its own token: a voice that repeats or holds one note breaks no
    voice-leading rule, and without this term an optimiser keeps the harmony still. With a
    constraint (``at_least`` Bach's rate) it pays only while the pieces move less than his.

    >>> enc = ChoraleEncoding()
    >>> pitches = (72, 67, 64, 48, 72, 69, 64, 50)  # C chord; then alto and bass move
    >>> t = [enc.pitch_to_token(p, i % 4) for i, p in enumerate(pitches)]
    >>> VoiceMotionRule()(np.array([t])).tolist()
    [[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]]
    """

    reward: float = 1.0
    name = "voice_motion"

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return harmony.pitch_changes(pitch, onset), np.arange(4)

    @property
    def paid(self) -> float:
        return self.reward


@dataclass
class VoiceOnsetsRule(HarmonyTerm):
    """``penalty`` per onset (a voice striking a note, a repeat included), on its own token.
    Alone it asks for held notes; it is meant as a ceiling: with a constraint (``at_most``
    Bach's onsets per voice per bar) it costs only while the pieces strike more often than he
    does, so ``voice_motion`` buys motion in his rhythm rather than in eighth notes.

    >>> enc = ChoraleEncoding()
    >>> t = [enc.pitch_to_token(p, i % 4) for i, p in enumerate((72, 67, 64, 48))]
    >>> t += [1 + 51 * v for v in range(3)] + [enc.pitch_to_token(50, 3)]  # S A T hold; B strikes
    >>> VoiceOnsetsRule()(np.array([t])).tolist()
    [[-1.0, -1.0, -1.0, -1.0, 0.0, 0.0, 0.0, -1.0]]
    """

    name = "voice_onsets"
    band_only = True  # rlmusic.algos.constraints: its multipliers start at 0

    def flags(self, pitch: np.ndarray, onset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return onset.astype(bool), np.arange(4)


@dataclass
class FinalCadenceRule(HarmonyTerm):
    """At the end, ``reward`` when the piece closes on a V-I cadence in the key or its relative
    (:func:`~rlmusic.rewards.harmony.final_cadence`); paid on the last token only."""

    reward: float = 3.0
    tonic: int = 0
    mode: str = "major"
    name = "final_cadence"
    sequence_level = True

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens)
        out = np.zeros(tokens.shape)
        whole = tokens[:, : tokens.shape[1] - tokens.shape[1] % 4]  # the piece's whole frames
        pitch, _ = harmony.frames(_whole_steps(whole, self.encoding), self.encoding)
        ends = harmony.final_cadence(pitch, harmony.cadence_tonics(self.tonic, self.mode))
        out[:, -1] = np.where(ends, self.reward, 0.0)
        return out


@dataclass
class PerVoice:
    """A melody rule applied to each voice's column, its rewards scattered back to the voice's
    tokens (a sequence-level rule's to the last token, summed over voices).

    ``rule``: a name in :data:`rlmusic.rewards.theory.RULES`; ``voices``: which voices (0 =
    soprano .. 3 = bass); ``params``: the rule's own arguments.

    >>> enc = ChoraleEncoding()
    >>> term = PerVoice("key", encoding=enc, voices=(3,))
    >>> t = [enc.pitch_to_token(p, v) for v, p in enumerate((72, 64, 55, 49))]  # C#2 in the bass
    >>> term(np.array([t])).tolist()
    [[0.0, 0.0, 0.0, -1.0]]
    """

    rule: str
    encoding: ChoraleEncoding = field(default_factory=ChoraleEncoding)
    tonic: int = 0
    mode: str = "major"
    voices: Sequence[int] = (0, 1, 2, 3)
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from rlmusic.rewards.theory import RULES

        require_chorale(self.encoding, f"per_voice[{self.rule}]")
        if self.rule not in RULES:
            raise RewardError(
                f"per_voice: unknown melody rule {self.rule!r}; known: {', '.join(sorted(RULES))}"
            )
        if not set(self.voices) <= {0, 1, 2, 3} or not self.voices:
            raise RewardError(f"per_voice: voices must be some of 0..3, got {list(self.voices)}")
        line = self.encoding.voice_encoding
        self.term = RULES[self.rule][0](
            encoding=line, tonic=self.tonic, mode=self.mode, **dict(self.params)
        )

    @property
    def sequence_level(self) -> bool:
        return bool(getattr(self.term, "sequence_level", False))

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        tokens = np.asarray(tokens).astype(np.int64)
        out = np.zeros(tokens.shape)
        for voice in self.voices:
            column = self.encoding.local(tokens[:, voice::4])  # the melody convention
            if column.shape[1] == 0:
                continue
            rewards = np.asarray(self.term(column), dtype=np.float64)
            if self.sequence_level:
                out[:, -1] += rewards.sum(axis=1)
            else:
                out[:, voice::4] += rewards
        return out


HARMONY_RULES: dict[str, tuple[type, str]] = {
    "parallel_fifths": (ParallelFifthsRule, "-1 per similar-motion parallel fifth (16th grid)"),
    "parallel_octaves": (
        ParallelOctavesRule,
        "-1 per similar-motion parallel octave or unison (16th grid)",
    ),
    "voice_crossing": (VoiceCrossingRule, "-1 per adjacent voice pair crossed, per frame"),
    "spacing": (SpacingRule, "-1 where S-A or A-T lie more than an octave apart, per frame"),
    "voice_range": (VoiceRangeRule, "-1 per onset outside its voice's range (Bach's, train split)"),
    "unprepared_dissonance": (
        UnpreparedDissonanceRule,
        "-1 per voice pair dissonant on beat 1 or 3 with neither voice held over (prepared)",
    ),
    "full_voicing": (FullVoicingRule, "-1 per voice silent at a frame"),
    "voice_motion": (VoiceMotionRule, "+1 per voice moving to another pitch (not a repeat)"),
    "voice_onsets": (VoiceOnsetsRule, "-1 per onset (a strike, a repeat included) of a voice"),
    "final_cadence": (FinalCadenceRule, "+3 at the end for a V-I cadence in the key (or relative)"),
    "per_voice": (PerVoice, "a melody rule (rule=<name>) applied to each voice's column"),
}
