"""Pieces to sound: WAV files a browser plays, rendered offline with a General MIDI SoundFont.

The synthesisers (``synth=`` in conf/compare.yaml and conf/listen.yaml), each playing GM
``program`` at ``sample_rate`` (44.1 kHz by default). ``program: null`` plays the encoding's
own (``encoding.default_program``: 0, Acoustic Grand Piano, for melodies; 19, Church Organ, for
chorales, whose four voices sound together):

* ``midirenderer`` — the ``midirenderer`` wheel (RustySynth compiled in: no system library, no
  requirements of its own; a dependency of rlmusic) playing the General MIDI SoundFont
  pretty_midi ships (``TimGM6mb.sf2``). It writes 48 kHz stereo; the stereo is mixed to mono
  and resampled to ``sample_rate`` (scipy's polyphase filter);
* ``fluidsynth`` — FluidSynth with the same SoundFont (``pip install 'rlmusic[audio]'`` and
  the system library, Debian ``libfluidsynth3``);
* ``sine`` — pretty_midi's sine waves (``PrettyMIDI.synthesize``): no instrument;
* ``auto`` — the first of midirenderer and FluidSynth that is installed; sine waves only where
  the SoundFont is missing or neither is installed, with a warning and the reason on the page.

TinySoundFont, the piano before midirenderer, is gone: its wheel asks for PyAudio (live
playback, with no Linux wheel), so it could only be installed with ``--no-deps``, which left
``pip check`` broken; midirenderer plays the same SoundFont as a declared dependency.

Every file is mono 16-bit PCM, ``TAIL`` seconds longer than its piece (a piano's release), at
one loudness: a gated RMS of ``LOUDNESS_DB`` dBFS over its sounding 50 ms blocks, its peak held
at or under ``PEAK`` (no clipping), whichever synthesiser and however many notes. A 32-step
piece at 80 qpm is 6.5 s: about 570 kB at 44.1 kHz. A piece lasts its time steps, whatever
the tokens per step.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlmusic.config import ConfigError
from rlmusic.data.encodings import Encoding
from rlmusic.errors import MissingDependencyError

if TYPE_CHECKING:
    import pretty_midi

log = logging.getLogger(__name__)

SYNTHS = ("auto", "midirenderer", "fluidsynth", "sine")
SOUNDFONT_SYNTHS = ("midirenderer", "fluidsynth")  # auto's order of preference
NAMES = {"midirenderer": "midirenderer (RustySynth)", "fluidsynth": "FluidSynth"}
INSTALL = {
    # rlmusic depends on it where it has a wheel (pyproject.toml): elsewhere, FluidSynth
    "midirenderer": "pip install 'midirenderer>=0.1.3,<0.2' on Linux x86_64, macOS or Windows; "
    "elsewhere pip install 'rlmusic[audio]' for FluidSynth",
    "fluidsynth": "pip install 'rlmusic[audio]' and apt-get install libfluidsynth3",
}
SOUNDFONT = "TimGM6mb.sf2"  # the General MIDI SoundFont inside pretty_midi's package
LOUDNESS_DB = -20.0  # gated RMS of every file, dBFS
PEAK = 0.9  # the highest sample (about -0.9 dBFS): a loud attack is turned down, never clipped
TAIL = 0.5  # seconds of release after the piece
_BLOCK = 0.05  # seconds per loudness block
_GATE_DB = -40.0  # blocks this far under the loudest are silence, left out of the loudness
# a controller General MIDI leaves undefined (a synthesiser ignores it), sent at a file's end:
# midirenderer stops at the last event, and the last note's release needs TAIL more seconds
_END_MARK_CC = 3


def soundfont_path() -> Path:
    """pretty_midi's General MIDI SoundFont."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / SOUNDFONT


def missing_soundfont() -> str:
    """Why no SoundFont synthesiser can play (the SoundFont is missing), or "" when it is there."""
    path = soundfont_path()
    if path.is_file():
        return ""
    return (
        f"the SoundFont {path} is missing (pip install --force-reinstall pretty_midi restores it)"
    )


@functools.lru_cache(maxsize=2)
def _soundfont_bytes(path: str) -> bytes:
    # 6 MB, read once per process: midirenderer takes the SoundFont's bytes on every call
    return Path(path).read_bytes()


def available(synth: str) -> bool:
    """Whether a synthesiser imports (pyfluidsynth also needs its system library)."""
    try:
        if synth == "midirenderer":
            import midirenderer as module

            entry = "render_wave_from"
        elif synth == "fluidsynth":
            import fluidsynth as module

            entry = "Synth"
        else:
            return synth == "sine"
    except (ImportError, OSError):  # not installed, or pyfluidsynth without libfluidsynth
        return False
    return hasattr(module, entry)


@dataclass(frozen=True)
class Renderer:
    """How pieces sound: a resolved ``synth`` (midirenderer | fluidsynth | sine), the GM
    ``program`` the SoundFont plays (None: each encoding's ``default_program``) and the WAV's
    ``sample_rate``; ``fallback``: why ``auto`` plays sine waves ("" when it does not)."""

    synth: str = "sine"
    sample_rate: int = 44100
    program: int | None = None
    fallback: str = ""

    def program_for(self, encoding: Encoding) -> int:
        """The GM program pieces of ``encoding`` are played with."""
        return encoding.default_program if self.program is None else int(self.program)

    def describe(self, encoding: Encoding | None = None) -> str:
        """One line for a page, e.g. ``midirenderer (RustySynth), TimGM6mb.sf2, program 0
        (Acoustic Grand Piano), 44.1 kHz``; the program is ``encoding``'s when the renderer
        names none."""
        import pretty_midi

        rate = f"{self.sample_rate / 1000:g} kHz"
        if self.synth == "sine":
            text = f"sine waves (pretty_midi's PrettyMIDI.synthesize), {rate}"
            return f"{text}; {self.fallback}" if self.fallback else text
        if self.program is None and encoding is None:
            return f"{NAMES[self.synth]}, {SOUNDFONT}, each encoding's program, {rate}"
        program = self.program if encoding is None else self.program_for(encoding)
        instrument = pretty_midi.program_to_instrument_name(program)
        return f"{NAMES[self.synth]}, {SOUNDFONT}, program {program} ({instrument}), {rate}"

    def synthesize(self, tokens: np.ndarray, encoding: Encoding, qpm: float = 80.0) -> np.ndarray:
        """One piece (every voice) as float samples at one loudness (see :func:`normalise`),
        ``TAIL`` seconds longer than the piece's time steps; a piece without a note is silence."""
        tokens = np.asarray(tokens)
        midi = encoding.to_pretty_midi(tokens, qpm=qpm, program=self.program_for(encoding))
        notes = [n for instrument in midi.instruments for n in instrument.notes]
        seconds = encoding.steps_in(tokens) * 60.0 / qpm / encoding.steps_per_quarter
        frames = int(round((max([seconds, *(n.end for n in notes)]) + TAIL) * self.sample_rate))
        if not notes:
            return np.zeros(frames)
        if self.synth == "midirenderer":
            samples = self._midirenderer(midi, frames / self.sample_rate)
        elif self.synth == "fluidsynth":
            samples = midi.fluidsynth(fs=self.sample_rate)  # its default SoundFont: TimGM6mb.sf2
        elif self.synth == "sine":
            samples = midi.synthesize(fs=self.sample_rate)
        else:
            raise ValueError(f"a Renderer takes a resolved synth, got {self.synth!r}")
        samples = np.asarray(samples, dtype=np.float64)[:frames]
        return normalise(np.pad(samples, (0, frames - len(samples))), self.sample_rate)

    def _midirenderer(self, midi: pretty_midi.PrettyMIDI, end: float) -> np.ndarray:
        """``midi`` rendered, mono at ``sample_rate``, to ``end`` seconds (``midi`` gets the end
        mark)."""
        import midirenderer
        import pretty_midi
        from scipy.signal import resample_poly

        midi.instruments[0].control_changes.append(pretty_midi.ControlChange(_END_MARK_CC, 0, end))
        buffer = io.BytesIO()
        midi.write(buffer)
        wav = midirenderer.render_wave_from(
            _soundfont_bytes(str(soundfont_path())), buffer.getvalue()
        )
        with wave.open(io.BytesIO(wav), "rb") as handle:
            rate, channels, width = (
                handle.getframerate(),
                handle.getnchannels(),
                handle.getsampwidth(),
            )
            data = handle.readframes(handle.getnframes())
        if width != 2:
            raise RuntimeError(f"midirenderer wrote {8 * width}-bit samples; rlmusic reads 16-bit")
        mono = np.frombuffer(data, "<i2").reshape(-1, channels).mean(axis=1) / 32767
        if rate == self.sample_rate:
            return mono
        common = math.gcd(rate, self.sample_rate)  # 48000 -> 44100: up 147, down 160
        return resample_poly(mono, self.sample_rate // common, rate // common)

    def render_wav(
        self, tokens: np.ndarray, path: str | Path, encoding: Encoding, qpm: float = 80.0
    ) -> Path:
        """:meth:`synthesize` one piece into a WAV file."""
        return write_wav(self.synthesize(tokens, encoding, qpm), path, self.sample_rate)


def renderer(synth: str = "auto", sample_rate: int = 44100, program: int | None = None) -> Renderer:
    """The :class:`Renderer` a config asks for: ``auto`` -> midirenderer, else FluidSynth, else
    (no SoundFont, or neither installed: a warning) sine waves; ``program`` None plays each
    encoding's own.

    Raises:
        ConfigError: an unknown synth, a program outside 0-127, a rate under 8 kHz.
        MissingDependencyError: a SoundFont synthesiser asked for by name is not installed, or
            the SoundFont is missing.
    """
    if synth not in SYNTHS:
        raise ConfigError(f"unknown synth {synth!r}; known: {', '.join(SYNTHS)}")
    if program is not None and not 0 <= int(program) <= 127:
        raise ConfigError(
            f"program={program}: a General MIDI program is 0-127 (0: piano), or null for the "
            "encoding's own"
        )
    program = None if program is None else int(program)
    if int(sample_rate) < 8000:
        raise ConfigError(f"sample_rate={sample_rate}: at least 8000 Hz (44100: CD quality)")
    if synth == "auto":
        found = next((s for s in SOUNDFONT_SYNTHS if available(s)), None)
        why = missing_soundfont() or (
            "" if found else f"midirenderer is not installed ({INSTALL['midirenderer']})"
        )
        if not why:
            return Renderer(found, int(sample_rate), program)
        log.warning("synth=auto plays sine waves: %s", why)
        return Renderer("sine", int(sample_rate), program, fallback=why)
    if synth != "sine" and not available(synth):
        raise MissingDependencyError(
            f"synth={synth}: {NAMES[synth]} is not installed ({INSTALL[synth]}), "
            "or use synth=auto or synth=sine"
        )
    if synth != "sine" and missing_soundfont():
        raise MissingDependencyError(f"synth={synth}: {missing_soundfont()}, or use synth=sine")
    return Renderer(synth, int(sample_rate), program)


def from_cfg(cfg) -> Renderer:
    """The renderer of a task config's ``synth``, ``sample_rate`` and ``program`` keys
    (``program`` null or absent: each encoding's own)."""
    program = cfg.get("program")
    return renderer(str(cfg.synth), int(cfg.sample_rate), None if program is None else int(program))


def loudness_db(samples: np.ndarray, sample_rate: int) -> float:
    """Gated RMS in dBFS: the mean power of the 50 ms blocks within 40 dB of the loudest
    (-inf for silence).

    >>> t = np.arange(44100) / 44100
    >>> round(loudness_db(0.1 * np.sqrt(2) * np.sin(2 * np.pi * 440 * t), 44100), 2)
    -20.0
    """
    samples = np.asarray(samples, dtype=np.float64)
    block = max(1, int(sample_rate * _BLOCK))
    whole = len(samples) // block * block
    power = (samples[:whole].reshape(-1, block) ** 2).mean(axis=1) if whole else samples**2
    if not len(power) or power.max() <= 0:
        return float("-inf")
    sounding = power[power >= power.max() * 10 ** (_GATE_DB / 10)]
    return float(10 * np.log10(sounding.mean()))


def normalise(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Scaled to ``LOUDNESS_DB`` (:func:`loudness_db`), or less where the peak would pass
    ``PEAK``; silence stays silence."""
    level = loudness_db(samples, sample_rate)
    if not np.isfinite(level):
        return samples
    peak = float(np.abs(samples).max())
    return samples * min(10 ** ((LOUDNESS_DB - level) / 20), PEAK / peak)


def write_wav(samples: np.ndarray, path: str | Path, sample_rate: int) -> Path:
    """Mono 16-bit PCM WAV (the standard library's ``wave``: every browser plays it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(int(sample_rate))
        handle.writeframes(pcm.tobytes())
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A mono 16-bit WAV as (float samples in [-1, 1], sample rate)."""
    with wave.open(str(path), "rb") as handle:
        rate, data = handle.getframerate(), handle.readframes(handle.getnframes())
    return np.frombuffer(data, "<i2").astype(np.float64) / 32767, rate


def energy_share_above(samples: np.ndarray, sample_rate: int, hz: float = 2000.0) -> float:
    """The share of a signal's energy above ``hz`` (its power spectrum; 0 for silence): a
    piano's harmonics put about 1e-2 of a melody's there, pretty_midi's sine waves 1e-6.

    >>> t = np.arange(44100) / 44100
    >>> two = np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 4400 * t)
    >>> round(energy_share_above(two, 44100), 4)
    0.0099
    """
    power = np.abs(np.fft.rfft(np.asarray(samples, dtype=np.float64))) ** 2
    total = float(power.sum())
    if total <= 0:
        return 0.0
    freqs = np.fft.rfftfreq(len(samples), 1 / sample_rate)
    return float(power[freqs > hz].sum()) / total
