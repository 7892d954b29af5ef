"""Four-part harmony (S A T B) <-> token grid: the second encoding of the project.

Each 16th step is four tokens, soprano first: ``S_0 A_0 T_0 B_0 S_1 A_1 ...`` (the Music
Transformer's serialisation of the JSB chorales). Each voice has a block of its own in the
vocabulary: token ``v * voice_size + local``, where ``local`` follows
:class:`~rlmusic.data.encoding.MelodyEncoding`'s convention over one pitch range: ``0 =
NOTE_OFF`` (the voice falls silent), ``1 = NO_EVENT`` (the voice holds its note, or its rest),
``2..`` = MIDI pitches ``min_pitch..max_pitch`` struck at this step. A held note (``60, 1``)
therefore differs from a repeated one (``60, 60``). Every token names its voice, holds and
rests too: with one vocabulary shared by the voices, a model had to count positions mod 4 to
know which voice it writes, and the shipped-size models lost count (84% of frames crossed;
docs/results/chorale_models.md). ``voice_columns`` gives each voice's column in the local
(melody) convention, so per-voice code reads it as a melody.

A piece of ``n`` steps is ``4 n`` tokens: ``length=64`` is four 4/4 bars in both domains
(:meth:`tokens_for`). Any token sequence decodes: a trailing partial step is ignored.

>>> enc = ChoraleEncoding()
>>> enc.vocab_size, enc.tokens_per_step, enc.tokens_for(64)
(204, 4, 256)
>>> voices = [[Note(72, 0, 2)], [Note(67, 0, 1), Note(65, 1, 2)], [Note(64, 0, 2)], [Note(48, 0, 2)]]
>>> tokens = enc.encode_voices(voices, steps=2)
>>> [enc.pitch_name(t) for t in tokens]
['C5', 'G4', 'E4', 'C3', '-', 'F4', '-', '-']
>>> enc.decode_voices(tokens) == voices
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from rlmusic.data.encoding import FIRST_PITCH_TOKEN, NO_EVENT, NOTE_OFF, MelodyEncoding, Note

if TYPE_CHECKING:
    import music21
    import pretty_midi

VOICE_NAMES = ("soprano", "alto", "tenor", "bass")
# Bump when the token layout changes without a field changing: caches keyed by cache_key()
# (datasets, critics) then re-prepare. 2: one vocabulary block per voice.
LAYOUT_VERSION = 2
# Church organ by default: sustained tones show the voice leading (General MIDI 20 = Church Organ).
ORGAN_PROGRAM = 19
_PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


@dataclass(frozen=True)
class ChoraleEncoding:
    """Four voices per 16th step over one pitch range. Frozen and hashable like MelodyEncoding.

    Args:
        min_pitch: lowest MIDI pitch with a token (36 = C2, under Bach's basses in C).
        max_pitch: highest MIDI pitch with a token, inclusive (84 = C6, over his sopranos).
        steps_per_quarter: grid resolution (4 = 16th notes).
        melody_length: steps in one composition (64 = four 4/4 bars); tokens are 4x this.
        beats_per_bar: quarter notes in a bar (4/4).
    """

    min_pitch: int = 36
    max_pitch: int = 84
    steps_per_quarter: int = 4
    melody_length: int = 64
    beats_per_bar: int = 4

    kind: ClassVar[str] = "chorale"
    voice_names: ClassVar[tuple[str, ...]] = VOICE_NAMES
    NOTE_OFF: ClassVar[int] = NOTE_OFF
    NO_EVENT: ClassVar[int] = NO_EVENT
    FIRST_PITCH_TOKEN: ClassVar[int] = FIRST_PITCH_TOKEN
    default_program: ClassVar[int] = ORGAN_PROGRAM

    def __post_init__(self) -> None:
        # the per-voice line uses MelodyEncoding's checks and conventions
        self.voice_encoding  # noqa: B018 - raises ValueError on a bad field

    # ---- sizes ---------------------------------------------------------------------------
    @property
    def voice_encoding(self) -> MelodyEncoding:
        """One voice's column as a melody over the shared range (its rules and decoding)."""
        return MelodyEncoding(
            min_pitch=self.min_pitch,
            max_pitch=self.max_pitch,
            steps_per_quarter=self.steps_per_quarter,
            melody_length=self.melody_length,
            beats_per_bar=self.beats_per_bar,
        )

    @property
    def num_voices(self) -> int:
        return len(VOICE_NAMES)

    @property
    def tokens_per_step(self) -> int:
        return self.num_voices

    def tokens_for(self, steps: int) -> int:
        """Tokens in a piece of ``steps`` time steps."""
        return int(steps) * self.tokens_per_step

    @property
    def num_pitches(self) -> int:
        return self.max_pitch - self.min_pitch + 1

    @property
    def voice_size(self) -> int:
        """Tokens in one voice's block: NOTE_OFF, NO_EVENT and the pitches."""
        return FIRST_PITCH_TOKEN + self.num_pitches

    @property
    def vocab_size(self) -> int:
        return self.num_voices * self.voice_size

    def local(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens in the melody convention of their voice (0 off, 1 hold, 2.. pitches)."""
        return np.asarray(tokens).astype(np.int64) % self.voice_size

    def event_classes(self) -> np.ndarray:
        """(vocab_size,) the event of each token: 0 NOTE_OFF, 1 NO_EVENT, 2 a strike."""
        return np.minimum(np.arange(self.vocab_size) % self.voice_size, FIRST_PITCH_TOKEN)

    def is_onset(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens that strike a note (in any voice); BOS (``vocab_size``) and negative padding
        (a loss's ignore index) are not tokens of the vocabulary, so never onsets."""
        tokens = np.asarray(tokens)
        inside = (tokens >= 0) & (tokens < self.vocab_size)
        return inside & (self.local(tokens) >= FIRST_PITCH_TOKEN)

    def silence(self, steps: int) -> np.ndarray:
        """Tokens of ``steps`` silent steps: each voice's rest starts, then holds."""
        local = np.full((max(int(steps), 0), self.num_voices), NO_EVENT, dtype=np.int64)
        local[:1] = NOTE_OFF
        return (local + self.voice_size * np.arange(self.num_voices)).reshape(-1)

    @property
    def steps_per_bar(self) -> int:
        return self.steps_per_quarter * self.beats_per_bar

    def pitch_to_token(self, pitch: int, voice: int = 0) -> int:
        """The token that strikes ``pitch`` in ``voice`` (0 = soprano .. 3 = bass)."""
        if not 0 <= int(voice) < self.num_voices:
            raise ValueError(f"voice {voice} is not one of 0..{self.num_voices - 1}")
        return int(voice) * self.voice_size + self.voice_encoding.pitch_to_token(pitch)

    def token_to_pitch(self, token: int) -> int:
        if not 0 <= int(token) < self.vocab_size:
            raise ValueError(f"token {token} is outside the vocabulary (0..{self.vocab_size - 1})")
        return self.voice_encoding.token_to_pitch(int(token) % self.voice_size)

    def pitches(self, tokens: np.ndarray) -> np.ndarray:
        """Vectorised: MIDI pitch of each pitch token (any voice), -1 for NOTE_OFF and NO_EVENT."""
        local = self.local(tokens)
        return np.where(local >= FIRST_PITCH_TOKEN, local - FIRST_PITCH_TOKEN + self.min_pitch, -1)

    def fold_pitch(self, pitch: int) -> int:
        return self.voice_encoding.fold_pitch(pitch)

    def pitch_name(self, token: int) -> str:
        """``C4`` for a pitch token, ``-`` for a hold, ``.`` for NOTE_OFF (prints samples)."""
        if int(token) % self.voice_size == NO_EVENT:
            return "-"
        if int(token) % self.voice_size == NOTE_OFF:
            return "."
        pitch = self.token_to_pitch(int(token))
        return f"{_PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"

    def cache_key(self) -> str:
        """Short stable digest of the kind and every field: datasets are cached under it."""
        blob = json.dumps(
            {"kind": self.kind, "layout": LAYOUT_VERSION, **asdict(self)}, sort_keys=True
        ).encode()
        return hashlib.sha1(blob).hexdigest()[:10]

    # ---- voices <-> tokens ---------------------------------------------------------------
    def voice_columns(self, tokens: np.ndarray) -> np.ndarray:
        """(..., 4 n) tokens -> (..., 4, n) per-voice columns in the local (melody) convention;
        a trailing partial step is dropped."""
        tokens = self.local(tokens)
        steps = tokens.shape[-1] // self.num_voices
        whole = tokens[..., : steps * self.num_voices]
        columns = whole.reshape(*tokens.shape[:-1], steps, self.num_voices)
        return np.swapaxes(columns, -1, -2)

    def sounding(self, tokens: np.ndarray) -> np.ndarray:
        """(..., 4 n) tokens -> (..., 4, n) MIDI pitch each voice sounds at each step, -1 silent.

        Vectorised: a pitch token sets the voice's pitch, NOTE_OFF silences it, NO_EVENT keeps
        the last value (a hold at the very start is silence). Callers get frames for rules.
        """
        columns = self.voice_columns(tokens).astype(np.int64)
        n = columns.shape[-1]
        changes = columns != NO_EVENT
        values = np.where(
            columns >= FIRST_PITCH_TOKEN, columns - FIRST_PITCH_TOKEN + self.min_pitch, -1
        )
        index = np.where(changes, np.arange(n), -1)
        last = np.maximum.accumulate(index, axis=-1)
        held = np.take_along_axis(values, np.maximum(last, 0), axis=-1)
        return np.where(last >= 0, held, -1)

    def onsets(self, tokens: np.ndarray) -> np.ndarray:
        """(..., 4 n) tokens -> (..., 4, n) bool: a voice strikes a note at this step."""
        return self.voice_columns(tokens) >= FIRST_PITCH_TOKEN

    def encode_voices(
        self, voices: Sequence[Sequence[Note]], steps: int | None = None
    ) -> np.ndarray:
        """Four monophonic lines (soprano first) on the step grid -> interleaved tokens (uint8).

        ``steps`` pads every voice to that many steps (a silent voice rests); by default the
        piece ends where its last note ends.
        """
        if len(voices) != self.num_voices:
            raise ValueError(f"a chorale has {self.num_voices} voices, got {len(voices)}")
        ends = [max((n.end for n in v), default=0) for v in voices]
        steps = max(ends) if steps is None else int(steps)
        if max(ends) > steps:
            raise ValueError(f"a note ends at step {max(ends)}, after the piece's {steps} steps")
        line = self.voice_encoding
        columns = np.full((self.num_voices, steps), NO_EVENT, dtype=np.int64)
        for v, notes in enumerate(voices):
            encoded = line.encode_notes(notes)
            columns[v, : len(encoded)] = encoded
            if len(encoded) < steps and notes:
                columns[v, len(encoded)] = NOTE_OFF  # the voice stops before the others
            if not notes and steps:
                columns[v, 0] = NOTE_OFF
        blocks = (self.voice_size * np.arange(self.num_voices))[:, None]
        return np.ascontiguousarray((columns + blocks).T).reshape(-1).astype(np.uint8)

    def decode_voices(self, tokens: np.ndarray) -> list[list[Note]]:
        """Tokens -> four lists of notes on the step grid, soprano first."""
        line = self.voice_encoding
        return [line.decode(column) for column in self.voice_columns(np.asarray(tokens))]

    def decode(self, tokens: np.ndarray) -> list[Note]:
        """All four voices' notes, ordered by onset then pitch (for code that wants one list)."""
        notes = [n for voice in self.decode_voices(tokens) for n in voice]
        return sorted(notes, key=lambda n: (n.start, -n.pitch))

    def steps_in(self, tokens: np.ndarray) -> int:
        """Whole time steps in a token sequence."""
        return len(tokens) // self.num_voices

    # ---- external formats ----------------------------------------------------------------
    def to_pretty_midi(
        self,
        tokens: np.ndarray,
        qpm: float = 80.0,
        program: int | None = None,
        velocity: int = 90,
    ) -> pretty_midi.PrettyMIDI:
        """Tokens -> PrettyMIDI with one instrument (track) per voice, soprano first."""
        import pretty_midi

        program = self.default_program if program is None else program
        midi = pretty_midi.PrettyMIDI(initial_tempo=qpm)
        seconds_per_step = 60.0 / qpm / self.steps_per_quarter
        for name, notes in zip(VOICE_NAMES, self.decode_voices(tokens), strict=True):
            instrument = pretty_midi.Instrument(program=program, name=name)
            instrument.notes = [
                pretty_midi.Note(
                    velocity, n.pitch, n.start * seconds_per_step, n.end * seconds_per_step
                )
                for n in notes
            ]
            midi.instruments.append(instrument)
        return midi

    def to_music21(self, tokens: np.ndarray, title: str | None = None) -> music21.stream.Score:
        """Tokens -> a four-staff music21 score (treble S and A, bass T and B as Bach wrote them)."""
        from music21 import clef, metadata, stream

        score = stream.Score()
        steps = self.steps_in(np.asarray(tokens))
        clefs = (clef.TrebleClef, clef.TrebleClef, clef.Treble8vbClef, clef.BassClef)
        for v, column in enumerate(self.voice_columns(np.asarray(tokens))):
            part = self.voice_encoding.to_music21(column).parts[0]
            part.partName = VOICE_NAMES[v].capitalize()
            part.id = VOICE_NAMES[v]
            part.insert(0, clefs[v]())
            if steps and part.highestTime == 0:
                continue
            score.insert(0, part)
        if title:
            score.metadata = metadata.Metadata(title=title)
        return score
