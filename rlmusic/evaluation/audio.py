"""Pieces to sound: WAV files a browser plays, rendered offline with a General MIDI SoundFont.

The synthesisers (``synth=`` in conf/compare.yaml and conf/listen.yaml), each playing GM
``program`` at ``sample_rate`` (44.1 kHz by default). ``program: null`` plays the encoding's
own (``encoding.default_program``: 0, Acoustic Grand Piano, for melodies; 19, Church Organ, for
chorales, whose four voices sound together):

* ``tinysoundfont`` — TinySoundFont (the ``tinysoundfont`` wheel: no system library) playing the
  General MIDI SoundFont pretty_midi ships (``TimGM6mb.sf2``). The wheel asks for PyAudio,
  which it only uses for live playback and which needs PortAudio's headers to build, so it is
  installed with ``pip install --no-deps tinysoundfont`` (scripts/setup_env.sh does);
* ``fluidsynth`` — FluidSynth with the same SoundFont (``pip install 'rlmusic[audio]'`` and
  the system library, Debian ``libfluidsynth3``);
* ``sine`` — pretty_midi's sine waves (``PrettyMIDI.synthesize``): no instrument, the last
  fallback;
* ``auto`` — the first of these that is installed.

Every file is mono 16-bit PCM, ``TAIL`` seconds longer than its piece (a piano's release), at
one loudness: a gated RMS of ``LOUDNESS_DB`` dBFS over its sounding 50 ms blocks, its peak held
at or under ``PEAK`` (no clipping), whichever synthesiser and however many notes. A 32-step
piece at 80 qpm is 6.5 s: about 570 kB at 44.1 kHz. A piece lasts its time steps, whatever
the tokens per step.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlmusic.config import ConfigError
from rlmusic.data.encodings import Encoding
from rlmusic.errors import MissingDependencyError

SYNTHS = ("auto", "tinysoundfont", "fluidsynth", "sine")
SOUNDFONT_SYNTHS = ("tinysoundfont", "fluidsynth")  # auto's order of preference
NAMES = {"tinysoundfont": "TinySoundFont", "fluidsynth": "FluidSynth"}
INSTALL = {
    "tinysoundfont": "pip install --no-deps tinysoundfont (scripts/setup_env.sh does)",
    "fluidsynth": "pip install 'rlmusic[audio]' and apt-get install libfluidsynth3",
}
SOUNDFONT = "TimGM6mb.sf2"  # the General MIDI SoundFont inside pretty_midi's package
LOUDNESS_DB = -20.0  # gated RMS of every file, dBFS
PEAK = 0.9  # the highest sample (about -0.9 dBFS): a loud attack is turned down, never clipped
TAIL = 0.5  # seconds of release after the piece
_BLOCK = 0.05  # seconds per loudness block
_GATE_DB = -40.0  # blocks this far under the loudest are silence, left out of the loudness


def soundfont_path() -> Path:
    """pretty_midi's General MIDI SoundFont."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / SOUNDFONT


def available(synth: str) -> bool:
    """Whether a SoundFont synthesiser imports (pyfluidsynth also needs its system library)."""
    try:
        if synth == "tinysoundfont":
            import tinysoundfont as module
        elif synth == "fluidsynth":
            import fluidsynth as module
        else:
            return synth == "sine"
    except (ImportError, OSError):  # not installed, or pyfluidsynth without libfluidsynth
        return False
    return hasattr(module, "Synth")


@dataclass(frozen=True)
class Renderer:
    """How pieces sound: a resolved ``synth`` (tinysoundfont | fluidsynth | sine), the GM
    ``program`` the SoundFont plays (None: each encoding's ``default_program``) and the WAV's
    ``sample_rate``; ``fallback``: ``auto`` found no SoundFont synthesiser."""

    synth: str = "sine"
    sample_rate: int = 44100
    program: int | None = None
    fallback: bool = False

    def program_for(self, encoding: Encoding) -> int:
        """The GM program pieces of ``encoding`` are played with."""
        return encoding.default_program if self.program is None else int(self.program)

    def describe(self, encoding: Encoding | None = None) -> str:
        """One line for a page, e.g. ``TinySoundFont, TimGM6mb.sf2, program 0 (Acoustic Grand
        Piano), 44.1 kHz``; the program is ``encoding``'s when the renderer names none."""
        import pretty_midi

        rate = f"{self.sample_rate / 1000:g} kHz"
        if self.synth == "sine":
            text = f"sine waves (pretty_midi's PrettyMIDI.synthesize), {rate}"
            if self.fallback:
                text += f"; no SoundFont synthesiser is installed ({INSTALL['tinysoundfont']})"
            return text
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
        if self.synth == "tinysoundfont":
            samples = self._tinysoundfont(notes, frames, self.program_for(encoding))
        elif self.synth == "fluidsynth":
            samples = midi.fluidsynth(fs=self.sample_rate)  # its default SoundFont: TimGM6mb.sf2
        elif self.synth == "sine":
            samples = midi.synthesize(fs=self.sample_rate)
        else:
            raise ValueError(f"a Renderer takes a resolved synth, got {self.synth!r}")
        samples = np.asarray(samples, dtype=np.float64)[:frames]
        return normalise(np.pad(samples, (0, frames - len(samples))), self.sample_rate)

    def _tinysoundfont(self, notes: list, frames: int, program: int) -> np.ndarray:
        import tinysoundfont

        synth = tinysoundfont.Synth(samplerate=self.sample_rate)
        synth.program_select(0, synth.sfload(str(soundfont_path())), 0, program)
        rate = self.sample_rate
        # (frame, 0 = off before 1 = on at the same frame: a repeated pitch is struck again)
        events = sorted(
            [(int(round(n.end * rate)), 0, n.pitch, 0) for n in notes]
            + [(int(round(n.start * rate)), 1, n.pitch, n.velocity) for n in notes]
        )
        chunks, now = [], 0
        # two voices in unison are two note-ons of one key: TinySoundFont's note-off releases
        # the oldest of them only, so the other voice sings on to its own note-off
        for frame, on, pitch, velocity in [*events, (frames, -1, 0, 0)]:
            if frame > now:  # interleaved stereo float32 up to this event
                chunks.append(np.frombuffer(synth.generate_simple(frame - now), np.float32))
                now = frame
            if on == 1:
                synth.noteon(0, pitch, velocity)
            elif on == 0:
                synth.noteoff(0, pitch)
        return np.concatenate(chunks).reshape(-1, 2).mean(axis=1)  # (frames,) mono

    def render_wav(
        self, tokens: np.ndarray, path: str | Path, encoding: Encoding, qpm: float = 80.0
    ) -> Path:
        """:meth:`synthesize` one piece into a WAV file."""
        return write_wav(self.synthesize(tokens, encoding, qpm), path, self.sample_rate)


def renderer(synth: str = "auto", sample_rate: int = 44100, program: int | None = None) -> Renderer:
    """The :class:`Renderer` a config asks for: ``auto`` -> TinySoundFont, else FluidSynth,
    else sine waves; ``program`` None plays each encoding's own.

    Raises:
        ConfigError: an unknown synth, a program outside 0-127, a rate under 8 kHz.
        MissingDependencyError: a SoundFont synthesiser asked for by name is not installed.
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
        return Renderer(found or "sine", int(sample_rate), program, fallback=found is None)
    if synth != "sine" and not available(synth):
        raise MissingDependencyError(
            f"synth={synth}: {NAMES[synth]} is not installed ({INSTALL[synth]}), "
            "or use synth=auto or synth=sine"
        )
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
