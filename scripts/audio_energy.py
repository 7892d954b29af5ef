"""Measure audio: each WAV's rate and share of energy above 2 kHz, or the render time per piece.

    python scripts/audio_energy.py measure outputs/compare/<run>/audio
    python scripts/audio_energy.py time outputs/compare/<run>/tokens.npz --synth midirenderer

``measure`` reads every ``*.wav`` in a folder (rlmusic writes mono 16-bit PCM) and prints one
line per file (rate, seconds, share of energy above ``--hz``) and their minimum and median.
Pretty_midi's sine waves put about 1e-6 of a melody's energy above 2 kHz, a SoundFont piano
1e-2 (rlmusic.evaluation.audio.energy_share_above). ``time`` renders the first ``--k`` pieces
of every column of a compare's ``tokens.npz`` with ``--synth`` (after one untimed warm-up) and
prints the wall time per piece and per second of audio. Docs: docs/results/audio.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import wave
from pathlib import Path

import numpy as np

from rlmusic.data.encodings import ENCODINGS
from rlmusic.evaluation import audio


def read_any_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV (any channel count) as mono float samples and its rate."""
    with wave.open(str(path), "rb") as handle:
        if handle.getsampwidth() != 2:
            raise SystemExit(f"{path}: {8 * handle.getsampwidth()}-bit samples; reads 16-bit PCM")
        channels, rate = handle.getnchannels(), handle.getframerate()
        data = handle.readframes(handle.getnframes())
    return np.frombuffer(data, "<i2").reshape(-1, channels).mean(axis=1) / 32767, rate


def measure(folder: Path, hz: float) -> int:
    """Print each WAV's rate, length and energy share above ``hz``; 1 when there are none."""
    paths = sorted(folder.glob("*.wav"))
    if not paths:
        print(f"{folder}: no .wav files", file=sys.stderr)
        return 1
    shares, rates = [], set()
    for path in paths:
        samples, rate = read_any_wav(path)
        share = audio.energy_share_above(samples, rate, hz)
        shares.append(share)
        rates.add(rate)
        print(f"{path.name}: {rate} Hz, {len(samples) / rate:.2f} s, above {hz:g} Hz {share:.2e}")
    print(
        f"{len(paths)} files, rates {sorted(rates)} Hz; share above {hz:g} Hz: "
        f"min {min(shares):.2e}, median {statistics.median(shares):.2e}, max {max(shares):.2e}"
    )
    return 0


def time_renders(tokens_file: Path, synth: str, kind: str, k: int, sample_rate: int) -> int:
    """Render the first ``k`` pieces of every column in ``tokens_file``; print seconds per piece."""
    if not tokens_file.is_file():
        print(f"{tokens_file}: no such file (a compare's tokens.npz)", file=sys.stderr)
        return 1
    encoding = ENCODINGS[kind]()
    render = audio.renderer(synth, sample_rate)
    with np.load(tokens_file) as columns:
        pieces = [piece for name in columns.files for piece in columns[name][:k]]
    render.synthesize(pieces[0], encoding)  # warm-up: imports, the SoundFont read once
    spent, sounded = [], 0.0
    for piece in pieces:
        start = time.perf_counter()
        samples = render.synthesize(piece, encoding)
        spent.append(time.perf_counter() - start)
        sounded += len(samples) / sample_rate
    print(
        f"{render.describe(encoding)}: {len(pieces)} pieces, {sounded / len(pieces):.2f} s each; "
        f"render median {1000 * statistics.median(spent):.1f} ms, max {1000 * max(spent):.1f} ms "
        f"per piece; {1000 * sum(spent) / sounded:.1f} ms per second of audio"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="rate and share of energy above --hz for a folder of WAVs")
    m.add_argument("folder", type=Path)
    m.add_argument("--hz", type=float, default=2000.0)
    t = sub.add_parser("time", help="render time per piece for a compare's tokens.npz")
    t.add_argument("tokens", type=Path)
    t.add_argument("--synth", default="auto", choices=audio.SYNTHS)
    t.add_argument("--kind", default="melody", choices=sorted(ENCODINGS))
    t.add_argument("--k", type=int, default=8, help="pieces per column")
    t.add_argument("--sample-rate", type=int, default=44100)
    args = parser.parse_args(argv)
    if args.command == "measure":
        return measure(args.folder, args.hz)
    return time_renders(args.tokens, args.synth, args.kind, args.k, args.sample_rate)


if __name__ == "__main__":
    sys.exit(main())
