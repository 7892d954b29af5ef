"""Monophonic melody <-> token grid: the one token convention of the project.

The default is RL Tuner's: one token per 16th note, ``0 = NOTE_OFF`` (the sounding note
stops; a rest begins), ``1 = NO_EVENT`` (nothing changes: the sounding note is held, or the
rest goes on), and ``2..`` = MIDI pitches ``min_pitch..max_pitch`` (48..83, C3..B5).

A rest of four steps after a note is therefore ``[NOTE_OFF, NO_EVENT, NO_EVENT, NO_EVENT]``
and a note re-struck at the same pitch is its pitch token again. Decoding also accepts a
``NOTE_OFF`` while already resting (it just keeps resting), so any token sequence decodes.

>>> enc = MelodyEncoding()
>>> enc.vocab_size
38
>>> tokens = enc.encode_notes([Note(60, 0, 4), Note(62, 4, 6), Note(64, 8, 9)])
>>> tokens.tolist()
[14, 1, 1, 1, 16, 1, 0, 1, 18]
>>> enc.decode(tokens) == [Note(60, 0, 4), Note(62, 4, 6), Note(64, 8, 9)]
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import numpy as np

if TYPE_CHECKING:  # heavy imports only where the conversions need them
    import music21
    import pretty_midi

NOTE_OFF = 0
NO_EVENT = 1
FIRST_PITCH_TOKEN = 2


class Note(NamedTuple):
    """A note on the step grid: MIDI ``pitch`` sounding over steps ``[start, end)``."""

    pitch: int
    start: int
    end: int


@dataclass(frozen=True)
class MelodyEncoding:
    """The token grid. Frozen and hashable: its :meth:`cache_key` names cached datasets.

    Args:
        min_pitch: lowest MIDI pitch with a token (48 = C3 in RL Tuner).
        max_pitch: highest MIDI pitch with a token, inclusive (83 = B5).
        steps_per_quarter: grid resolution (4 = 16th notes).
        melody_length: steps in one composition (32 = two 4/4 bars in RL Tuner).
        beats_per_bar: quarter notes in a bar (4/4), so a bar is 16 steps by default.
    """

    min_pitch: int = 48
    max_pitch: int = 83
    steps_per_quarter: int = 4
    melody_length: int = 32
    beats_per_bar: int = 4

    kind: ClassVar[str] = "melody"
    voice_names: ClassVar[tuple[str, ...]] = ("melody",)
    NOTE_OFF: ClassVar[int] = NOTE_OFF
    NO_EVENT: ClassVar[int] = NO_EVENT
    FIRST_PITCH_TOKEN: ClassVar[int] = FIRST_PITCH_TOKEN
    default_program: ClassVar[int] = 0  # General MIDI 1: Acoustic Grand Piano

    def __post_init__(self) -> None:
        if not 0 <= self.min_pitch <= self.max_pitch <= 127:
            raise ValueError(
                f"MelodyEncoding needs 0 <= min_pitch <= max_pitch <= 127, "
                f"got min_pitch={self.min_pitch}, max_pitch={self.max_pitch}"
            )
        if self.max_pitch - self.min_pitch < 11:
            raise ValueError(
                f"MelodyEncoding needs at least one octave to fold pitches into, "
                f"got min_pitch={self.min_pitch}, max_pitch={self.max_pitch}"
            )
        for name in ("steps_per_quarter", "melody_length", "beats_per_bar"):
            if getattr(self, name) < 1:
                raise ValueError(f"MelodyEncoding.{name} must be >= 1, got {getattr(self, name)}")

    # ---- sizes and token <-> pitch -------------------------------------------------------
    @property
    def num_pitches(self) -> int:
        return self.max_pitch - self.min_pitch + 1

    @property
    def vocab_size(self) -> int:
        return FIRST_PITCH_TOKEN + self.num_pitches

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_quarter * self.beats_per_bar

    @property
    def num_voices(self) -> int:
        return 1

    @property
    def voice_size(self) -> int:
        """Tokens in the one voice's block: the whole vocabulary."""
        return self.vocab_size

    @property
    def tokens_per_step(self) -> int:
        return 1

    def tokens_for(self, steps: int) -> int:
        """Tokens in a piece of ``steps`` time steps (one token a step)."""
        return int(steps)

    def steps_in(self, tokens: np.ndarray) -> int:
        return len(tokens)

    def local(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens in the melody convention (they are already: one voice, one block)."""
        return np.asarray(tokens).astype(np.int64)

    def event_classes(self) -> np.ndarray:
        """(vocab_size,) the event of each token: 0 NOTE_OFF, 1 NO_EVENT, 2 a strike."""
        return np.minimum(np.arange(self.vocab_size), FIRST_PITCH_TOKEN)

    def is_onset(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens that strike a note."""
        tokens = np.asarray(tokens)
        return (tokens >= FIRST_PITCH_TOKEN) & (tokens < self.vocab_size)

    def silence(self, steps: int) -> np.ndarray:
        """Tokens of ``steps`` silent steps: a rest starts, then holds."""
        tokens = np.full(max(int(steps), 0), NO_EVENT, dtype=np.int64)
        tokens[:1] = NOTE_OFF
        return tokens

    def pitch_to_token(self, pitch: int) -> int:
        if not self.min_pitch <= pitch <= self.max_pitch:
            raise ValueError(f"pitch {pitch} is outside {self.min_pitch}..{self.max_pitch}")
        return int(pitch) - self.min_pitch + FIRST_PITCH_TOKEN

    def token_to_pitch(self, token: int) -> int:
        if not FIRST_PITCH_TOKEN <= token < self.vocab_size:
            raise ValueError(f"token {token} is not a pitch token (2..{self.vocab_size - 1})")
        return int(token) - FIRST_PITCH_TOKEN + self.min_pitch

    def pitches(self, tokens: np.ndarray) -> np.ndarray:
        """Vectorised: MIDI pitch of each pitch token, -1 for NOTE_OFF and NO_EVENT."""
        tokens = np.asarray(tokens).astype(np.int64)  # uint8 tokens would wrap -1 to 255
        return np.where(
            tokens >= FIRST_PITCH_TOKEN, tokens - FIRST_PITCH_TOKEN + self.min_pitch, -1
        )

    def cache_key(self) -> str:
        """Short stable digest of every field: datasets are cached under it."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:10]

    def fold_pitch(self, pitch: int) -> int:
        """Move ``pitch`` by whole octaves into the range (the pitch class is kept)."""
        while pitch < self.min_pitch:
            pitch += 12
        while pitch > self.max_pitch:
            pitch -= 12
        return pitch

    # ---- grid <-> notes ------------------------------------------------------------------
    def encode_notes(self, notes: Iterable[Note]) -> np.ndarray:
        """Notes on the step grid -> tokens (uint8). Leading silence is kept as a rest.

        Notes must be monophonic (sorted, non-overlapping) and in range; see
        :func:`rlmusic.data.melody.top_line` to get there from arbitrary notes.
        """
        notes = list(notes)
        if not notes:
            return np.zeros(0, dtype=np.uint8)
        length = max(n.end for n in notes)
        tokens = np.full(length, NO_EVENT, dtype=np.uint8)
        previous_end = 0
        for note in notes:
            if note.end <= note.start:
                raise ValueError(f"note {note} has no duration on the grid")
            if note.start < previous_end:
                raise ValueError(
                    f"note {note} overlaps the previous note: notes must be monophonic"
                )
            if note.start > previous_end:
                tokens[previous_end] = NOTE_OFF  # a rest starts where the last note stopped
            tokens[note.start] = self.pitch_to_token(note.pitch)
            previous_end = note.end
        return tokens

    def decode(self, tokens: np.ndarray) -> list[Note]:
        """Tokens -> notes on the step grid. Any token sequence decodes (holds on rests rest on)."""
        notes: list[Note] = []
        pitch, start = -1, 0
        tokens = np.asarray(tokens)
        for step, token in enumerate(tokens.tolist()):
            if token == NO_EVENT:
                continue
            if pitch >= 0:
                notes.append(Note(pitch, start, step))
            if token == NOTE_OFF:
                pitch = -1
            else:
                pitch, start = self.token_to_pitch(token), step
        if pitch >= 0:
            notes.append(Note(pitch, start, len(tokens)))
        return notes

    def decode_voices(self, tokens: np.ndarray) -> list[list[Note]]:
        """The one voice's notes, as a one-element list (the chorale encoding gives four)."""
        return [self.decode(tokens)]

    def voice_columns(self, tokens: np.ndarray) -> np.ndarray:
        """(..., n) tokens -> (..., 1, n): the one voice's column."""
        return np.asarray(tokens)[..., None, :]

    # ---- external formats ----------------------------------------------------------------
    def to_pretty_midi(
        self,
        tokens: np.ndarray,
        qpm: float = 80.0,
        program: int | None = None,
        velocity: int = 100,
    ) -> pretty_midi.PrettyMIDI:
        """Tokens -> a one-instrument PrettyMIDI at ``qpm`` quarter notes per minute (RL Tuner: 80)."""
        import pretty_midi

        program = self.default_program if program is None else program
        midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
        instrument = pretty_midi.Instrument(program=program, name="melody")
        seconds_per_step = 60.0 / qpm / self.steps_per_quarter
        for note in self.decode(tokens):
            instrument.notes.append(
                pretty_midi.Note(
                    velocity=velocity,
                    pitch=note.pitch,
                    start=note.start * seconds_per_step,
                    end=note.end * seconds_per_step,
                )
            )
        midi.instruments.append(instrument)
        return midi

    def to_music21(self, tokens: np.ndarray, title: str | None = None) -> music21.stream.Score:
        """Tokens -> a music21 score (4/4, rests explicit): write it as MusicXML, ABC or MIDI."""
        from fractions import Fraction

        from music21 import metadata, meter, note, stream

        part = stream.Part()
        part.append(meter.TimeSignature(f"{self.beats_per_bar}/4"))
        cursor = 0
        step_ql = Fraction(1, self.steps_per_quarter)
        for n in self.decode(tokens):
            if n.start > cursor:
                part.append(note.Rest(quarterLength=(n.start - cursor) * step_ql))
            part.append(note.Note(n.pitch, quarterLength=(n.end - n.start) * step_ql))
            cursor = n.end
        if cursor < len(tokens):
            part.append(note.Rest(quarterLength=(len(tokens) - cursor) * step_ql))
        score = stream.Score()
        score.insert(0, part)
        if title:
            score.metadata = metadata.Metadata(title=title)
        return score
