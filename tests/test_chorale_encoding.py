"""The chorale encoding by round trip and by hand: voices <-> tokens, frames, records,
checkpoints, and the MIDI / MusicXML files its pieces are written as."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import torch

from rlmusic.data.chorale_encoding import VOICE_NAMES, ChoraleEncoding
from rlmusic.data.encoding import FIRST_PITCH_TOKEN, NO_EVENT, NOTE_OFF, MelodyEncoding, Note
from rlmusic.data.encodings import encoding_from_cfg, encoding_from_record, encoding_record
from rlmusic.data.io import save_midi, save_musicxml
from rlmusic.models import LSTMConfig, NoteLSTM, load_checkpoint, save_checkpoint
from rlmusic.models.checkpoint import CheckpointError

ENC = ChoraleEncoding()
BLOCK = ENC.voice_size  # 51 tokens a voice: NOTE_OFF, NO_EVENT, pitches 36..84


def off(voice: int) -> int:
    """Voice ``voice``'s NOTE_OFF token."""
    return voice * BLOCK + NOTE_OFF


def hold(voice: int) -> int:
    """Voice ``voice``'s NO_EVENT token."""
    return voice * BLOCK + NO_EVENT


def in_blocks(local: np.ndarray) -> np.ndarray:
    """Local (melody-convention) tokens at interleaved positions -> each in its voice's block."""
    local = np.asarray(local)
    return local + BLOCK * (np.arange(local.shape[-1]) % 4)


def random_voice(rng: np.random.Generator, steps: int, low: int, high: int) -> list[Note]:
    """A monophonic line: random rests, durations and pitches; repeats struck again often, and
    the line may stop before ``steps``."""
    notes: list[Note] = []
    cursor = int(rng.integers(0, 3))  # may open with a rest
    end = int(rng.integers(steps // 2, steps + 1))  # may end early
    while cursor < end:
        length = int(rng.integers(1, 6))
        stop = min(cursor + length, end)
        if notes and rng.random() < 0.3:
            pitch = notes[-1].pitch  # the same pitch again: a re-struck note, not a hold
        else:
            pitch = int(rng.integers(low, high + 1))
        notes.append(Note(pitch, cursor, stop))
        cursor = stop + (int(rng.integers(1, 4)) if rng.random() < 0.25 else 0)
    return notes


def random_voices(seed: int, steps: int = 40) -> list[list[Note]]:
    rng = np.random.default_rng(seed)
    voices = [random_voice(rng, steps, ENC.min_pitch, ENC.max_pitch) for _ in range(4)]
    if seed % 5 == 0:
        voices[int(rng.integers(4))] = []  # a voice that never sings
    return voices


def slow_sounding(tokens: np.ndarray) -> np.ndarray:
    """The frames by a plain loop over each voice's column (the reference for ``sounding``):
    a token is read by its place in its block (``token % 51``), whichever block it is in."""
    steps = len(tokens) // 4
    out = np.full((4, steps), -1, dtype=np.int64)
    for v in range(4):
        pitch = -1
        for s in range(steps):
            token = int(tokens[4 * s + v]) % BLOCK
            if token == NOTE_OFF:
                pitch = -1
            elif token != NO_EVENT:
                pitch = token - 2 + ENC.min_pitch
            out[v, s] = pitch
    return out


# ---- voices <-> tokens ---------------------------------------------------------------------------
def test_hand_worked_example_interleaves_soprano_first() -> None:
    voices = [
        [Note(72, 0, 2), Note(72, 2, 4)],  # re-struck C5
        [Note(67, 0, 4)],  # held G4
        [Note(64, 0, 1)],  # E4 then silence
        [Note(48, 1, 4)],  # a rest, then C3
    ]
    tokens = ENC.encode_voices(voices, steps=4)
    c5, g4, e4, c3 = (ENC.pitch_to_token(p, v) for v, p in enumerate((72, 67, 64, 48)))
    assert (c5, g4, e4, c3) == (38, 51 + 33, 102 + 30, 153 + 14)  # voice * 51 + local
    assert tokens.tolist() == [
        c5, g4, e4, off(3),
        hold(0), hold(1), off(2), c3,
        c5, hold(1), hold(2), hold(3),
        hold(0), hold(1), hold(2), hold(3),
    ]  # fmt: skip
    assert ENC.decode_voices(tokens) == voices
    assert ENC.vocab_size == 204 and ENC.voice_size == 51
    assert ENC.tokens_for(64) == 256 and ENC.steps_in(tokens) == 4


def test_held_and_restruck_notes_differ() -> None:
    held = ENC.encode_voices([[Note(60, 0, 4)], [], [], []], steps=4)
    struck = ENC.encode_voices([[Note(60, 0, 2), Note(60, 2, 4)], [], [], []], steps=4)
    assert not np.array_equal(held, struck)
    assert ENC.decode_voices(held)[0] == [Note(60, 0, 4)]
    assert ENC.decode_voices(struck)[0] == [Note(60, 0, 2), Note(60, 2, 4)]
    assert (ENC.sounding(held) == ENC.sounding(struck)).all()  # the same frames ...
    assert ENC.onsets(held)[0].tolist() == [True, False, False, False]  # ... not the same onsets
    assert ENC.onsets(struck)[0].tolist() == [True, False, True, False]


@pytest.mark.parametrize("seed", range(40))
def test_random_voices_round_trip(seed: int) -> None:
    voices = random_voices(seed)
    tokens = ENC.encode_voices(voices, steps=40)
    assert tokens.dtype == np.uint8 and len(tokens) == ENC.tokens_for(40)
    assert (tokens // BLOCK == np.arange(len(tokens)) % 4).all()  # every token names its voice
    assert ENC.decode_voices(tokens) == voices
    assert ENC.encode_voices(ENC.decode_voices(tokens), steps=40).tolist() == tokens.tolist()
    assert (ENC.sounding(tokens) == slow_sounding(tokens)).all()


@pytest.mark.parametrize("seed", range(10))
def test_any_token_sequence_decodes_and_frames_match_the_slow_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, ENC.vocab_size, size=4 * 30)  # some in another voice's block
    holds = rng.random(len(tokens)) < 0.5  # long holds and rests
    tokens[holds] = in_blocks(np.full(len(tokens), NO_EVENT))[holds]
    assert (ENC.sounding(tokens) == slow_sounding(tokens)).all()
    voices = ENC.decode_voices(tokens)
    # every decoding is a canonical piece: encoding it and decoding again changes nothing
    assert ENC.decode_voices(ENC.encode_voices(voices, steps=30)) == voices
    batch = np.stack([tokens, np.roll(tokens, 4)])
    assert (ENC.sounding(batch)[0] == ENC.sounding(tokens)).all()


def test_voice_columns_are_each_voice_in_the_melody_convention() -> None:
    tokens = in_blocks(np.arange(12))  # local steps (0 1 2 3) (4 5 6 7) (8 9 10 11)
    assert tokens[:4].tolist() == [0, 52, 104, 156]
    columns = ENC.voice_columns(tokens)
    assert columns.tolist() == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]
    batch = ENC.voice_columns(np.stack([tokens, tokens + 1]))
    assert batch.shape == (2, 4, 3) and batch[1, 2].tolist() == [3, 7, 11]
    line = MelodyEncoding(min_pitch=ENC.min_pitch, max_pitch=ENC.max_pitch)
    voices = random_voices(3)
    tokens = ENC.encode_voices(voices, steps=40)
    for v, column in enumerate(ENC.voice_columns(tokens)):
        assert line.decode(column) == voices[v]


def test_a_partial_trailing_step_is_ignored() -> None:
    voices = random_voices(7)
    tokens = ENC.encode_voices(voices, steps=40)
    for extra in (1, 2, 3):
        strikes = [ENC.pitch_to_token(60, v) for v in range(extra)]  # a step begun, not ended
        longer = np.concatenate([tokens, np.array(strikes, np.uint8)])
        assert ENC.steps_in(longer) == 40
        assert ENC.voice_columns(longer).shape == (4, 40)
        assert (ENC.sounding(longer) == ENC.sounding(tokens)).all()
        assert ENC.decode_voices(longer) == voices
    assert ENC.sounding(tokens[:3]).shape == (4, 0)


def test_bad_voice_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="4 voices"):
        ENC.encode_voices([[Note(60, 0, 1)]], steps=1)
    with pytest.raises(ValueError, match="after the piece's 2 steps"):
        ENC.encode_voices([[Note(60, 0, 3)], [], [], []], steps=2)
    with pytest.raises(ValueError, match="outside 36..84"):
        ENC.encode_voices([[Note(90, 0, 1)], [], [], []], steps=1)


# ---- the vocabulary: one block of 51 tokens a voice ---------------------------------------------
def test_pitch_tokens_name_their_voice_and_read_back() -> None:
    assert [ENC.pitch_to_token(60, v) for v in range(4)] == [26, 77, 128, 179]
    for voice in range(4):
        for pitch in (ENC.min_pitch, 60, ENC.max_pitch):
            token = ENC.pitch_to_token(pitch, voice)
            assert token // BLOCK == voice and ENC.token_to_pitch(token) == pitch
    assert ENC.token_to_pitch(153 + 14) == 48  # the bass's C3
    assert [ENC.pitch_name(t) for t in (77, hold(2), off(3))] == ["C4", "-", "."]
    with pytest.raises(ValueError, match="voice 4 is not one of 0..3"):
        ENC.pitch_to_token(60, 4)
    with pytest.raises(ValueError, match="token 204 is outside the vocabulary"):
        ENC.token_to_pitch(204)
    with pytest.raises(ValueError, match="outside 36..84"):
        ENC.pitch_to_token(85, 1)


def test_local_is_each_token_in_the_melody_convention() -> None:
    local = np.array([[38, 1, 0, 14], [2, 50, 1, 0]])
    blocked = in_blocks(local)
    assert blocked.tolist() == [[38, 52, 102, 167], [2, 101, 103, 153]]
    assert ENC.local(blocked).tolist() == local.tolist()
    assert ENC.local(blocked.astype(np.uint8)).dtype == np.int64  # no uint8 wrap-around
    melody = MelodyEncoding()
    assert melody.local(np.array([0, 1, 37])).tolist() == [0, 1, 37]  # one voice, one block


@pytest.mark.parametrize("encoding", [ENC, MelodyEncoding()], ids=["chorale", "melody"])
def test_event_classes_and_onsets_agree_on_every_token(encoding) -> None:
    classes = encoding.event_classes()
    assert classes.shape == (encoding.vocab_size,)
    every = np.arange(encoding.vocab_size)
    assert (encoding.is_onset(every) == (classes == 2)).all()
    assert (classes == 2).sum() == encoding.num_voices * (encoding.voice_size - FIRST_PITCH_TOKEN)
    # BOS (vocab_size) and a loss's ignore index are no tokens of the vocabulary: no onsets
    assert not encoding.is_onset(np.array([encoding.vocab_size, -100])).any()


def test_chorale_event_classes_by_hand() -> None:
    tokens = [0, 1, 2, 50, 51, 52, 53, 101, 102, 103, 153, 154, 203]
    assert ENC.event_classes()[tokens].tolist() == [0, 1, 2, 2, 0, 1, 2, 2, 0, 1, 0, 1, 2]
    assert MelodyEncoding().event_classes()[[0, 1, 2, 37]].tolist() == [0, 1, 2, 2]
    piece = ENC.encode_voices([[Note(72, 0, 2)], [Note(67, 1, 2)], [], [Note(48, 0, 1)]], 2)
    assert ENC.is_onset(piece).tolist() == [True, False, False, True, False, True, False, False]
    # the onsets are those the per-voice view finds
    assert (ENC.is_onset(piece).reshape(-1, 4).T == ENC.onsets(piece)).all()


def test_silence_is_four_empty_voices_in_their_blocks() -> None:
    assert ENC.silence(2).tolist() == [0, 51, 102, 153, 1, 52, 103, 154]
    for steps in (0, 1, 5):
        silent = ENC.silence(steps)
        assert silent.tolist() == ENC.encode_voices([[], [], [], []], steps).tolist()
        assert ENC.decode_voices(silent) == [[], [], [], []]
        assert (ENC.sounding(silent) == -1).all() and not ENC.is_onset(silent).any()
    assert MelodyEncoding().silence(3).tolist() == [NOTE_OFF, NO_EVENT, NO_EVENT]
    assert MelodyEncoding().silence(0).tolist() == []


# ---- records, configs, checkpoints ---------------------------------------------------------------
def test_encoding_record_round_trips_both_kinds() -> None:
    for encoding in (ChoraleEncoding(), ChoraleEncoding(melody_length=32), MelodyEncoding()):
        record = encoding_record(encoding)
        assert record["kind"] == encoding.kind
        again = encoding_from_record(record)
        assert again == encoding and type(again) is type(encoding)
    assert ChoraleEncoding().cache_key() != MelodyEncoding(min_pitch=36, max_pitch=84).cache_key()
    assert encoding_from_cfg({"kind": "chorale", "melody_length": 32}).tokens_for(32) == 128
    with pytest.raises(ValueError, match="unknown encoding kind 'fugue'"):
        encoding_from_record({"kind": "fugue"}, "x.safetensors")


def test_checkpoint_of_a_chorale_generator_keeps_its_encoding(tmp_path) -> None:
    torch.manual_seed(0)
    model = NoteLSTM(LSTMConfig(vocab_size=ENC.vocab_size, embed_dim=8, hidden_size=16,
                                num_layers=1, dropout=0.0))  # fmt: skip
    path = save_checkpoint(tmp_path / "chorale.safetensors", model, ENC)
    loaded, encoding, _ = load_checkpoint(path)
    assert encoding == ENC and isinstance(encoding, ChoraleEncoding)
    tokens = torch.randint(0, ENC.vocab_size, (2, 8))
    assert torch.allclose(loaded(tokens), model.eval()(tokens))
    with pytest.raises(CheckpointError, match="encoding mismatch.*chorale.*melody"):
        load_checkpoint(path, encoding=MelodyEncoding(min_pitch=36, max_pitch=84))


# ---- files ---------------------------------------------------------------------------------------
def test_midi_has_one_named_track_per_voice_soprano_first(tmp_path) -> None:
    voices = random_voices(11)
    tokens = ENC.encode_voices(voices, steps=40)
    path = save_midi(tokens, tmp_path / "piece.mid", ENC, qpm=60.0)
    midi = pretty_midi.PrettyMIDI(str(path))
    assert [i.name for i in midi.instruments] == list(VOICE_NAMES)
    assert {i.program for i in midi.instruments} == {ENC.default_program}
    step = 60.0 / 60.0 / 4  # seconds per 16th at 60 qpm
    for instrument, notes in zip(midi.instruments, voices):
        read = [(n.pitch, round(n.start / step), round(n.end / step)) for n in instrument.notes]
        assert read == [tuple(n) for n in notes]


def test_musicxml_has_four_parts_with_the_voices(tmp_path) -> None:
    music21 = pytest.importorskip("music21")
    voices = [
        [Note(72, 0, 4), Note(74, 4, 8)],
        [Note(67, 0, 8)],
        [Note(64, 0, 2), Note(64, 2, 4)],  # re-struck: two notes, not one
        [Note(48, 0, 8)],
    ]
    tokens = ENC.encode_voices(voices, steps=8)
    path = save_musicxml(tokens, tmp_path / "piece.musicxml", ENC)
    score = music21.converter.parse(str(path))
    assert [p.partName for p in score.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    for part, notes in zip(score.parts, voices):
        read = [
            (n.pitch.midi, round(n.offset * 4), round((n.offset + n.quarterLength) * 4))
            for n in part.flatten().notes
        ]
        assert read == [tuple(n) for n in notes]
