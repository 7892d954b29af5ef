"""Four-part voice leading counted on the 16th grid: pure, vectorised functions of the frames.

A *frame* is one time step's four sounding pitches, ``encoding.sounding(tokens)`` (N, 4, n):
MIDI pitch or -1 where a voice is silent; voice 0 is the soprano, 3 the bass. Every rule here
is a boolean array over frames (or over voice pairs and frames), so a statistic is a sum of
them and a reward term puts each ``True`` on the token that completes it
(:mod:`rlmusic.rewards.harmony_terms`). docs/rewards.md states each definition; in short:

* **parallel fifths / octaves** (:func:`parallels`): between frames ``t-1`` and ``t``, a voice
  pair where both voices sound at both frames, *both* change pitch in the same direction
  (similar motion), and the interval between them is a fifth (7 mod 12) at both frames, or an
  octave or unison (0 mod 12). A re-struck note at the same pitch is not motion. A hidden
  fifth (similar motion *into* a fifth) and contrary fifths are not parallels here (music21's
  ``parallelFifth()`` also counts contrary, "antiparallel", fifths). The denominator is the
  *moving* pair transitions: both voices sound at both frames and at least one changes pitch.
* **voice crossing** (:func:`crossing`): a frame with all four voices sounding where a lower
  voice is strictly above the voice above it.
* **spacing** (:func:`spacing`): a full frame where soprano-alto or alto-tenor lie more than an
  octave apart (tenor-bass may be wider, as the textbooks allow).
* **range** (:func:`out_of_range`): an onset outside its voice's range, :data:`VOICE_RANGES`.
* **unprepared dissonance on a strong beat** (:func:`unprepared_dissonance`).
* **final cadence** (:func:`final_cadence`).
* **full voicing** (:func:`full_frames`): all four voices sound.

Examples write pitches as MIDI numbers, one list per voice (soprano first), ``-1`` silent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlmusic.data.chorale_encoding import ChoraleEncoding

# voice pairs (upper, lower): the six intervals of four voices; the lower index is the higher voice
PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
UPPER = np.array([upper for upper, _ in PAIRS])
LOWER = np.array([lower for _, lower in PAIRS])
BASS = 3
FIFTH, OCTAVE = 7, 0  # interval classes (semitones mod 12)
SPACED_PAIRS = (0, 3)  # indexes into PAIRS: soprano-alto, alto-tenor
MAX_UPPER_GAP = 12  # semitones: the upper voices may be an octave apart, no more

# Each voice's range, inclusive: the 0.5% and 99.5% quantiles of its onsets in data=chorales'
# train split (keys normalised to C major / A minor, split_seed 0); a few chorales' parts sit an
# octave off, so the extremes (S 55..84, B 36..69) say little. S C4..Bb5, A G3..E5, T C3..B4,
# B D2..E4: the textbook ranges, give or take a step. `python scripts/check_voice_leading.py
# --ranges` prints them. The rule's reward and the table's row read this one table.
VOICE_RANGES: tuple[tuple[int, int], ...] = ((60, 82), (55, 76), (48, 71), (38, 64))

# Interval classes over any two voices that are dissonant: seconds, the tritone, sevenths.
DISSONANT = frozenset({1, 2, 6, 10, 11})
# Against the bass the perfect fourth is a dissonance too (the 6/4 and 4-3 suspension).
DISSONANT_OVER_BASS = DISSONANT | {5}


def frames(tokens: np.ndarray, encoding: ChoraleEncoding) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4 n) tokens -> (sounding pitch (N, 4, n), onset (N, 4, n)); a 1-D piece is one row."""
    tokens = np.atleast_2d(np.asarray(tokens)).astype(np.int64)
    return encoding.sounding(tokens), encoding.onsets(tokens)


def _pairs(pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, n) -> the upper and lower voice of every pair, (N, 6, n) each."""
    return pitch[:, UPPER, :], pitch[:, LOWER, :]


def _pad_first(transitions: np.ndarray) -> np.ndarray:
    """(N, 6, n - 1) transitions into frames 1.. -> (N, 6, n), frame 0 False (no frame before)."""
    first = np.zeros((*transitions.shape[:-1], 1), dtype=transitions.dtype)
    return np.concatenate([first, transitions], axis=-1)


def parallels(pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fifths, octaves, moving)``, each (N, 6, n) bool over (pair, frame): the transition
    from frame ``t - 1`` into frame ``t`` (frame 0 is never one).

    Everything steps up: S-T a fifth (G4/C4 -> A4/D4) and S-B a twelfth (a fifth mod 12),
    T-B an octave (C4/C3 -> D4/D3); all six pairs move:

    >>> fifths, octaves, moving = parallels(np.array([[[67, 69], [64, 65], [60, 62], [48, 50]]]))
    >>> fifths[0, :, 1].tolist(), octaves[0, :, 1].tolist(), int(moving.sum())
    ([False, True, True, False, False, False], [False, False, False, False, False, True], 6)
    """
    upper, lower = _pairs(np.asarray(pitch))
    a0, a1, b0, b1 = upper[..., :-1], upper[..., 1:], lower[..., :-1], lower[..., 1:]
    sounding = (a0 >= 0) & (a1 >= 0) & (b0 >= 0) & (b1 >= 0)
    up, down = a1 - a0, b1 - b0
    moving = sounding & ((up != 0) | (down != 0))
    similar = sounding & (up != 0) & (down != 0) & (np.sign(up) == np.sign(down))
    before, after = np.abs(a0 - b0) % 12, np.abs(a1 - b1) % 12
    fifths = similar & (before == FIFTH) & (after == FIFTH)
    octaves = similar & (before == OCTAVE) & (after == OCTAVE)
    return _pad_first(fifths), _pad_first(octaves), _pad_first(moving)


def pitch_changes(pitch: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """(N, 4, n) bool: the voice strikes another pitch class than it sounded a step before
    (a voice that moves; a repeated or held note, a leap of an octave, or an entry after a rest
    does not: an octave leap moves no harmony, and an optimiser paid per change found it).

    >>> pitch = np.array([[[72, 72, 74, 74, -1, 74, 62]]])  # C5, C5, D5 held, rest, D5, D4
    >>> onset = np.array([[[True, True, True, False, False, True, True]]])
    >>> pitch_changes(pitch, onset).astype(int).tolist()
    [[[0, 0, 1, 0, 0, 0, 0]]]
    """
    pitch, onset = np.asarray(pitch), np.asarray(onset, dtype=bool)
    before = np.concatenate([np.full(pitch.shape[:-1] + (1,), -1), pitch[..., :-1]], axis=-1)
    return onset & (before >= 0) & (pitch >= 0) & (pitch % 12 != before % 12)


def full_frames(pitch: np.ndarray) -> np.ndarray:
    """(N, n) bool: all four voices sound.

    >>> full_frames(np.array([[[72, 72], [67, -1], [64, 64], [48, 48]]])).tolist()
    [[True, False]]
    """
    return (np.asarray(pitch) >= 0).all(axis=1)


def crossed_pairs(pitch: np.ndarray) -> np.ndarray:
    """(N, 3, n) bool: adjacent voices ``v, v + 1`` both sounding, the lower strictly above.

    Any crossing of two voices implies one of adjacent voices, so these three suffice."""
    pitch = np.asarray(pitch)
    high, low = pitch[:, :-1, :], pitch[:, 1:, :]
    return (high >= 0) & (low >= 0) & (low > high)


def crossing(pitch: np.ndarray) -> np.ndarray:
    """(N, n) bool: a full frame with a voice crossing.

    >>> crossing(np.array([[[72, 64], [67, 67], [64, 60], [48, 48]]])).tolist()
    [[False, True]]
    """
    return full_frames(pitch) & crossed_pairs(pitch).any(axis=1)


def spaced_pairs(pitch: np.ndarray, max_gap: int = MAX_UPPER_GAP) -> np.ndarray:
    """(N, 2, n) bool: soprano-alto, alto-tenor more than ``max_gap`` semitones apart (both
    sounding)."""
    pitch = np.asarray(pitch)
    high, low = pitch[:, :2, :], pitch[:, 1:3, :]
    return (high >= 0) & (low >= 0) & (np.abs(high - low) > max_gap)


def spacing(pitch: np.ndarray, max_gap: int = MAX_UPPER_GAP) -> np.ndarray:
    """(N, n) bool: a full frame whose soprano-alto or alto-tenor gap exceeds ``max_gap``.

    >>> spacing(np.array([[[76, 77], [64, 64], [55, 50], [36, 36]]])).tolist()  # 12: fine; 13: wide
    [[False, True]]
    """
    return full_frames(pitch) & spaced_pairs(pitch, max_gap).any(axis=1)


def out_of_range(
    pitch: np.ndarray, onset: np.ndarray, ranges: Sequence[Sequence[int]] = VOICE_RANGES
) -> np.ndarray:
    """(N, 4, n) bool: an onset outside its voice's ``[low, high]`` (inclusive).

    >>> out_of_range(np.array([[[84], [60], [60], [30]]]), np.ones((1, 4, 1), bool)).ravel().tolist()
    [True, False, False, True]
    """
    bounds = np.asarray(ranges, dtype=np.int64)
    if bounds.shape != (4, 2) or (bounds[:, 0] > bounds[:, 1]).any():
        raise ValueError(f"voice ranges must be four [low, high] pairs, got {ranges}")
    pitch = np.asarray(pitch)
    outside = (pitch < bounds[None, :, 0, None]) | (pitch > bounds[None, :, 1, None])
    return np.asarray(onset, bool) & outside


def strong_beats(steps: int, encoding: ChoraleEncoding) -> np.ndarray:
    """(steps,) bool: beat 1 of every bar, and beat 3 in 4/4 (the bar's half).

    >>> strong_beats(20, ChoraleEncoding()).nonzero()[0].tolist()
    [0, 8, 16]
    """
    step = np.arange(steps) % encoding.steps_per_bar
    strong = step == 0
    if encoding.beats_per_bar == 4:
        strong |= step == 2 * encoding.steps_per_quarter
    return strong


def unprepared_dissonance(
    pitch: np.ndarray, onset: np.ndarray, encoding: ChoraleEncoding
) -> np.ndarray:
    """(N, 6, n) bool: a voice pair dissonant on a strong beat, with neither voice prepared.

    The definition is the strict-style rule of Fux's *Gradus ad Parnassum* (1725), fourth
    species, as Aldwell & Schachter (*Harmony and Voice Leading*, ch. on suspensions) teach it
    for four parts: on a strong beat (:func:`strong_beats`) a dissonance is allowed only as a
    suspension, i.e. *prepared*: the dissonant note is the same pitch held over (tied, not
    re-struck) from the frame before. Dissonant: a second, tritone or seventh (interval class
    1, 2, 6, 10 or 11) between any two voices; against the bass the perfect fourth (5) too.
    A pair is prepared when either of its voices holds its pitch from the frame before (we do
    not ask which note is "the" dissonance). Accented passing tones and appoggiaturas count as
    unprepared: Bach writes them, so his rate is not zero (the table shows it).

    >>> enc = ChoraleEncoding()
    >>> # beat 3 (frame 8): S holds C5 over D4 in the alto -> a 7th, prepared (a suspension)
    >>> pitch = np.array([[[72] * 9, [64] * 8 + [62], [55] * 9, [48] * 9]])
    >>> onset = np.zeros_like(pitch, bool); onset[..., 0] = True; onset[0, 1, 8] = True
    >>> bool(unprepared_dissonance(pitch, onset, enc).any())
    False
    >>> onset[0, 0, 8] = True  # the soprano re-strikes its C5: no longer prepared
    >>> unprepared_dissonance(pitch, onset, enc)[0, :, 8].tolist()
    [True, False, False, False, False, False]
    """
    pitch, onset = np.asarray(pitch), np.asarray(onset, bool)
    upper, lower = _pairs(pitch)
    sounding = (upper >= 0) & (lower >= 0)
    interval = np.abs(upper - lower) % 12
    dissonant = np.isin(interval, list(DISSONANT))
    over_bass = np.isin(interval, list(DISSONANT_OVER_BASS)) & (LOWER == BASS)[None, :, None]
    previous = np.concatenate([np.full_like(pitch[..., :1], -1), pitch[..., :-1]], axis=-1)
    held = (pitch >= 0) & ~onset & (pitch == previous)  # (N, 4, n): tied over from the frame before
    prepared = held[:, UPPER, :] | held[:, LOWER, :]
    strong = strong_beats(pitch.shape[-1], encoding)[None, None, :]
    return strong & sounding & (dissonant | over_bass) & ~prepared


def cadence_tonics(tonic: int = 0, mode: str = "major") -> tuple[int, ...]:
    """The tonics a final cadence may close on: the key's, and its relative's (the chorale
    corpus holds C major and A minor pieces: keys are normalised to one of the two)."""
    relative = (tonic + 9) % 12 if mode == "major" else (tonic + 3) % 12
    return (tonic % 12, relative)


def final_cadence(pitch: np.ndarray, tonics: Sequence[int] = (0, 9)) -> np.ndarray:
    """(N,) bool: the piece ends on an authentic cadence in one of ``tonics``.

    The last frame's bass sounds the tonic, the soprano a note of the tonic triad (root,
    either third: a minor piece may end on its major "Picardy" third, or fifth), and the bass
    note before the final one is the dominant (tonic + 7): V - I in the bass.

    >>> G2, C3, C5, E5 = 43, 48, 72, 76
    >>> final_cadence(np.array([[[74, C5], [67, 67], [59, 64], [G2, C3]],
    ...                         [[74, E5], [67, 67], [59, 64], [C3, C3]]])).tolist()
    [True, False]
    """
    pitch = np.asarray(pitch)
    count, _, steps = pitch.shape
    out = np.zeros(count, dtype=bool)
    if steps == 0:
        return out
    bass, soprano = pitch[:, BASS, :], pitch[:, 0, -1]
    last = bass[:, -1]
    # the bass note before the final one: the last frame whose bass differs from the final pitch
    differs = (bass != last[:, None]) & (bass >= 0)
    index = np.where(differs, np.arange(steps), -1).max(axis=1)
    before = np.where(index >= 0, bass[np.arange(count), np.maximum(index, 0)], -1)
    for tonic in tonics:
        triad = np.isin((soprano - tonic) % 12, [0, 3, 4, 7])
        out |= (
            (last >= 0)
            & (last % 12 == tonic % 12)
            & (soprano >= 0)
            & triad
            & (before >= 0)
            & (before % 12 == (tonic + 7) % 12)
        )
    return out
