"""The voice-leading table of four-part pieces: summable counts keyed by :class:`HarmonyStatistic`.

The chorale encoding's counterpart of :mod:`rlmusic.rewards.statistics` (RL Tuner's melody
table), with the same contract: :class:`HarmonyStats` holds integer counts that add over
pieces, so a bootstrap resample sums the pieces' counts by their weights
(:mod:`rlmusic.evaluation.table_rows`) and :meth:`HarmonyStats.table` turns any sum into the
rows. Every row is counted by :mod:`rlmusic.rewards.harmony` on the 16th grid, the functions
the reward terms pay from, so a rule and its row can never disagree.

Rows are fractions (a table prints them per 1,000 or in percent):

* ``PARALLEL_FIFTHS`` / ``PARALLEL_OCTAVES`` — similar-motion parallels over *moving* voice-pair
  transitions (both voices sound at both frames and at least one changes pitch);
  ``PARALLELS`` is their sum over the same denominator.
* ``VOICE_CROSSING`` / ``SPACING`` — over frames where all four voices sound.
* ``OUT_OF_RANGE`` — onsets outside their voice's range (:data:`~rlmusic.rewards.harmony.VOICE_RANGES`), over onsets.
* ``UNPREPARED_DISSONANCE`` — strong-beat full frames with an unprepared dissonance, over
  strong-beat full frames.
* ``FINAL_CADENCE`` — pieces ending on a V-I cadence in the key or its relative, over pieces.
* ``FULL_VOICING`` — frames with all four voices sounding, over frames.
* ``ONSETS_PER_VOICE_PER_BAR`` — onsets / (4 voices x bars), bars = frames / steps per bar.
* ``PITCH_CHANGES_PER_VOICE_PER_BAR`` — onsets at another pitch than the voice sounded a step
  before (:func:`~rlmusic.rewards.harmony.pitch_changes`) / (4 voices x bars): how much the
  voices move (a static harmony repeats and holds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import Enum

import numpy as np

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.rewards import harmony
from rlmusic.rewards.statistics import KeySpec, _by_length


class HarmonyStatistic(str, Enum):
    """A voice-leading row's identifier; its value is its metric name (``eval/<value>``) and
    never changes (tests/test_harmony_statistics.py pins them)."""

    PARALLEL_FIFTHS = "parallel_fifths"
    PARALLEL_OCTAVES = "parallel_octaves"
    PARALLELS = "parallel_fifths_and_octaves"
    VOICE_CROSSING = "voice_crossing"
    SPACING = "upper_voice_spacing"
    OUT_OF_RANGE = "notes_out_of_range"
    UNPREPARED_DISSONANCE = "unprepared_strong_dissonance"
    FINAL_CADENCE = "final_cadence"
    FULL_VOICING = "full_voicing"
    ONSETS_PER_VOICE_PER_BAR = "onsets_per_voice_per_bar"
    PITCH_CHANGES_PER_VOICE_PER_BAR = "pitch_changes_per_voice_per_bar"

    def __str__(self) -> str:
        return self.value


def _share(count: float, total: float) -> float:
    return count / total if total else float("nan")


@dataclass
class HarmonyStats:
    """Counts over pieces (every field adds over pieces: the resampling contract)."""

    pieces: int = 0
    frames: int = 0
    full_frames: int = 0
    moving: int = 0  # moving voice-pair transitions
    fifths: int = 0
    octaves: int = 0
    crossing: int = 0  # full frames
    spacing: int = 0  # full frames
    onsets: int = 0
    out_of_range: int = 0  # onsets
    strong_frames: int = 0  # strong-beat full frames
    unprepared: int = 0  # strong-beat full frames with an unprepared dissonance
    cadences: int = 0  # pieces
    bars: float = 0.0  # frames / steps per bar (a fraction for a partial bar)
    moves: int = 0  # onsets at another pitch than the voice's a step before

    def table(self) -> dict[HarmonyStatistic, float]:
        """The rows, as fractions (onsets per voice per bar as a rate)."""
        s = HarmonyStatistic
        return {
            s.PARALLEL_FIFTHS: _share(self.fifths, self.moving),
            s.PARALLEL_OCTAVES: _share(self.octaves, self.moving),
            s.PARALLELS: _share(self.fifths + self.octaves, self.moving),
            s.VOICE_CROSSING: _share(self.crossing, self.full_frames),
            s.SPACING: _share(self.spacing, self.full_frames),
            s.OUT_OF_RANGE: _share(self.out_of_range, self.onsets),
            s.UNPREPARED_DISSONANCE: _share(self.unprepared, self.strong_frames),
            s.FINAL_CADENCE: _share(self.cadences, self.pieces),
            s.FULL_VOICING: _share(self.full_frames, self.frames),
            s.ONSETS_PER_VOICE_PER_BAR: _share(self.onsets, 4 * self.bars),
            s.PITCH_CHANGES_PER_VOICE_PER_BAR: _share(self.moves, 4 * self.bars),
        }

    def variants(self) -> dict[HarmonyStatistic, float]:
        """None: the melody table's slot for earlier ways of counting."""
        return {}

    def onsets_per_composition(self) -> float:
        return _share(self.onsets, self.pieces)

    def counts(self) -> list[float]:
        """The fields' values in :data:`COUNT_FIELDS` order."""
        return [getattr(self, name) for name in COUNT_FIELDS]


COUNT_FIELDS = [f.name for f in fields(HarmonyStats)]


def batch_harmony(
    tokens: np.ndarray, encoding: ChoraleEncoding, key: KeySpec, stats: HarmonyStats
) -> None:
    """Add the counts of ``tokens`` (N, 4 n), pieces of one length, to ``stats``."""
    pitch, onset = harmony.frames(tokens, encoding)
    count, _, steps = pitch.shape
    stats.pieces += count
    stats.frames += count * steps
    stats.bars += count * steps / encoding.steps_per_bar
    if steps == 0:
        return
    fifths, octaves, moving = harmony.parallels(pitch)
    full = harmony.full_frames(pitch)
    strong = harmony.strong_beats(steps, encoding)[None, :] & full
    stats.full_frames += int(full.sum())
    stats.moving += int(moving.sum())
    stats.fifths += int(fifths.sum())
    stats.octaves += int(octaves.sum())
    stats.crossing += int(harmony.crossing(pitch).sum())
    stats.spacing += int(harmony.spacing(pitch).sum())
    stats.onsets += int(onset.sum())
    stats.moves += int(harmony.pitch_changes(pitch, onset).sum())
    stats.out_of_range += int(harmony.out_of_range(pitch, onset).sum())
    stats.strong_frames += int(strong.sum())
    unprepared = harmony.unprepared_dissonance(pitch, onset, encoding).any(axis=1)
    stats.unprepared += int((unprepared & strong).sum())
    tonics = harmony.cadence_tonics(key.tonic, key.mode)
    stats.cadences += int(harmony.final_cadence(pitch, tonics).sum())


def harmony_stats(
    pieces: Sequence[np.ndarray] | np.ndarray,
    encoding: ChoraleEncoding,
    key: KeySpec | None = None,
) -> HarmonyStats:
    """The voice-leading counts of pieces (a (N, 4 n) array or a list of token arrays).

    >>> from rlmusic.data.encoding import Note
    >>> enc = ChoraleEncoding()
    >>> piece = enc.encode_voices([[Note(67, 0, 1), Note(69, 1, 2)], [Note(64, 0, 2)],
    ...                            [Note(60, 0, 1), Note(62, 1, 2)], [Note(48, 0, 2)]])
    >>> stats = harmony_stats([piece], enc)
    >>> stats.fifths, stats.moving, stats.table()[HarmonyStatistic.PARALLEL_FIFTHS]
    (1, 5, 0.2)
    """
    if getattr(encoding, "kind", None) != "chorale":
        raise ValueError(
            f"the voice-leading table counts four-part pieces; got a {encoding.kind} encoding"
        )
    stats = HarmonyStats()
    for batch in _by_length(pieces):
        batch_harmony(batch, encoding, key or KeySpec(), stats)
    return stats
