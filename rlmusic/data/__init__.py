"""Data: the token encodings (melody, chorale), corpus readers, MIDI/MusicXML/ABC I/O and the
dataset cache.

>>> from rlmusic.data import ChoraleEncoding, load_piece, prepare_corpus  # doctest: +SKIP
"""

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.corpus import Corpus, CorpusError
from rlmusic.data.encoding import NO_EVENT, NOTE_OFF, MelodyEncoding, Note
from rlmusic.data.encodings import Encoding, encoding_from_cfg
from rlmusic.data.io import (
    Melodies,
    MelodyLoadError,
    RejectedTune,
    Tune,
    load_melodies,
    load_melody,
    load_piece,
    read_voice_tracks,
    save_abc,
    save_midi,
    save_musicxml,
)
from rlmusic.data.prepare import prepare_corpus
from rlmusic.data.readers import MelodyWarning

__all__ = [
    "ChoraleEncoding",
    "Corpus",
    "CorpusError",
    "Encoding",
    "MelodyEncoding",
    "MelodyLoadError",
    "MelodyWarning",
    "Melodies",
    "NOTE_OFF",
    "NO_EVENT",
    "Note",
    "RejectedTune",
    "Tune",
    "load_melodies",
    "encoding_from_cfg",
    "load_melody",
    "load_piece",
    "prepare_corpus",
    "read_voice_tracks",
    "save_abc",
    "save_midi",
    "save_musicxml",
]
