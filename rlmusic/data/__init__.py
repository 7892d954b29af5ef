"""Data: the token encoding, corpus readers, MIDI/MusicXML/ABC I/O and the dataset cache.

>>> from rlmusic.data import MelodyEncoding, load_melodies, load_melody, prepare_corpus  # doctest: +SKIP
"""

from rlmusic.data.corpus import Corpus, CorpusError
from rlmusic.data.encoding import NO_EVENT, NOTE_OFF, MelodyEncoding, Note
from rlmusic.data.io import (
    Melodies,
    MelodyLoadError,
    RejectedTune,
    Tune,
    load_melodies,
    load_melody,
    save_abc,
    save_midi,
    save_musicxml,
)
from rlmusic.data.prepare import prepare_corpus
from rlmusic.data.readers import MelodyWarning

__all__ = [
    "Corpus",
    "CorpusError",
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
    "load_melody",
    "prepare_corpus",
    "save_abc",
    "save_midi",
    "save_musicxml",
]
