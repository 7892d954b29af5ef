"""Data: the token encoding, corpus readers, MIDI/MusicXML/ABC I/O and the dataset cache."""

from rlmusic.data.corpus import Corpus, CorpusError
from rlmusic.data.encoding import NO_EVENT, NOTE_OFF, MelodyEncoding, Note

__all__ = ["Corpus", "CorpusError", "MelodyEncoding", "Note", "NOTE_OFF", "NO_EVENT"]
