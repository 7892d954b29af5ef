"""Pieces to sound: WAV files a browser plays, synthesised offline.

FluidSynth with the General MIDI soundfont pretty_midi ships (``TimGM6mb.sf2``, a piano) when
``pyfluidsynth`` and the FluidSynth library are installed (``pip install rlmusic[audio]`` and
Debian's ``libfluidsynth3``); otherwise pretty_midi's own sine-wave synthesis
(``PrettyMIDI.synthesize``). Files are mono 16-bit PCM at a modest rate (16 kHz by default:
about 220 kB for a 32-step piece), peak-normalised.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from rlmusic.data.encoding import MelodyEncoding

SYNTHS = ("auto", "fluidsynth", "sine")
DESCRIPTIONS = {
    "fluidsynth": "FluidSynth with pretty_midi's General MIDI soundfont (TimGM6mb.sf2, piano)",
    "sine": "pretty_midi's sine-wave synthesis (PrettyMIDI.synthesize): install pyfluidsynth "
    "and the FluidSynth library (rlmusic[audio], Debian libfluidsynth3) for a piano sound",
}
PEAK = 0.9


def fluidsynth_available() -> bool:
    """Whether pyfluidsynth imports and finds its system library."""
    try:
        import fluidsynth
    except (ImportError, OSError):  # not installed, or installed without libfluidsynth
        return False
    return hasattr(fluidsynth, "Synth")


def resolve_synth(synth: str) -> str:
    """``auto`` -> ``fluidsynth`` when available, else ``sine``.

    Raises:
        ValueError: an unknown synth, or ``fluidsynth`` asked for but not installed.
    """
    if synth not in SYNTHS:
        raise ValueError(f"unknown synth {synth!r}; known: {', '.join(SYNTHS)}")
    if synth == "auto":
        return "fluidsynth" if fluidsynth_available() else "sine"
    if synth == "fluidsynth" and not fluidsynth_available():
        raise ValueError(
            "synth=fluidsynth: pyfluidsynth or the FluidSynth library is missing "
            "(pip install 'rlmusic[audio]'; apt-get install libfluidsynth3), or use synth=sine"
        )
    return synth


def synthesize(
    tokens: np.ndarray,
    encoding: MelodyEncoding,
    synth: str = "sine",
    sample_rate: int = 16000,
    qpm: float = 80.0,
) -> np.ndarray:
    """One piece as float samples in [-PEAK, PEAK] (a resolved ``synth``: fluidsynth | sine).

    A piece without a note is silence as long as the piece.
    """
    midi = encoding.to_pretty_midi(np.asarray(tokens), qpm=qpm)
    if not midi.instruments[0].notes:
        seconds = len(tokens) * 60.0 / qpm / encoding.steps_per_quarter
        return np.zeros(int(round(seconds * sample_rate)))
    if synth == "fluidsynth":
        audio = midi.fluidsynth(fs=sample_rate)
    elif synth == "sine":
        audio = midi.synthesize(fs=sample_rate)
    else:
        raise ValueError(f"synthesize takes a resolved synth (fluidsynth | sine), got {synth!r}")
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    return audio * (PEAK / peak) if peak > 0 else audio


def write_wav(samples: np.ndarray, path: str | Path, sample_rate: int) -> Path:
    """Mono 16-bit PCM WAV (the standard library's ``wave``: every browser plays it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(int(sample_rate))
        handle.writeframes(pcm.tobytes())
    return path


def render_wav(
    tokens: np.ndarray,
    path: str | Path,
    encoding: MelodyEncoding,
    synth: str = "sine",
    sample_rate: int = 16000,
    qpm: float = 80.0,
) -> Path:
    """:func:`synthesize` one piece into a WAV file."""
    return write_wav(synthesize(tokens, encoding, synth, sample_rate, qpm), path, sample_rate)
