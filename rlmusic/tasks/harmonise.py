"""`rlmusic harmonise`: alto, tenor and bass under given melodies, by a harmoniser checkpoint.

``rlmusic harmonise checkpoint=pretrained:chorale_harmoniser melody=FILE_OR_FOLDER out=DIR``
reads every melody (a MIDI, MusicXML or ABC file, or every file under a folder, recursively)
as ``rlmusic data`` reads a tune: its top line on the 16th grid, its key normalised to C major
/ A minor, then moved by whole octaves into Bach's soprano range
(:mod:`rlmusic.data.melody_input`). A melody it cannot harmonise whole and unchanged is refused
with one line naming it and why (outside the soprano range, a grid finer than 16ths,
polyphony, unreadable); the others go on. Each melody is harmonised whole, as many steps as it
has (no padding), ``n`` times, from one seeded generator (same seed, same files): the
soprano's tokens are forced, alto, tenor and bass sampled (:mod:`rlmusic.models.harmoniser`).

For each melody it writes, named by the input's stem (its path under the folder given):

* ``<stem>_satb.mid``: one track per voice, soprano first;
* ``<stem>_satb.musicxml``: four staves with the melody's key signature;

both back in the melody's own key (at the octave chosen for the soprano: a tune given an octave
low comes back an octave up; ``_satb_2`` .. when ``n`` > 1). Then it prints
and writes ``summary.md`` and ``summary.json``: melodies written and refused, the soprano
check (each written soprano equals its input note for note on the 16th grid), and the
voice-leading table of what it wrote, counted in C (``rlmusic evaluate``'s, with bootstrap
intervals).

``melody=heldout`` harmonises the sopranos of ``data``'s test split (whole chorales; the first
``length`` steps when ``length`` is set) and prints Bach's own table for the same chorales
beside the model's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from rlmusic.config import ConfigError
from rlmusic.config.preflight import Bound, check_bounds, check_device, check_generator_spec
from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.harmonisation import sopranos as soprano_columns
from rlmusic.data.melody import PITCH_CLASS_NAMES
from rlmusic.data.melody_input import (
    Refusal,
    Soprano,
    key_encoding,
    melody_files,
    read_sopranos,
    soprano_from_tokens,
    soprano_kept,
)
from rlmusic.evaluation.harmonisation_summary import Harmonised, Summary, table_column
from rlmusic.models.harmoniser import check_harmoniser, harmonise
from rlmusic.models.registry import load_generator
from rlmusic.rewards.harmony import VOICE_RANGES
from rlmusic.runtime import resolve_device, run_folder

log = logging.getLogger(__name__)

HELDOUT = "heldout"
SUFFIX = "_satb"
BOUNDS = (
    Bound("n", low=1, what="harmonisations per melody"),
    Bound("temperature", low=0, open_low=True, what="the soprano is forced, the rest sampled"),
    Bound("max_dropped_notes", low=0, high=1, what="a share of the notes"),
    Bound("max_steps", low=1),
    Bound("length", low=1, what="steps of each held-out chorale; null: whole chorales"),
    Bound("resamples", low=0),
    Bound("timeout_s", low=0, open_low=True),
)


@dataclass
class HarmoniseResult:
    out_dir: Path
    summary: Summary

    @property
    def metrics(self) -> dict[str, float]:
        return self.summary.metrics()


def check(cfg: DictConfig) -> None:
    """Every check that needs no work: bounds, the device, the checkpoint is a harmoniser.

    Raises:
        UserError: one line naming the key and the value.
    """
    check_bounds("harmonise", cfg, BOUNDS)
    check_device("harmonise", cfg)
    check_generator_spec("checkpoint", cfg.checkpoint)
    check_harmoniser(str(cfg.checkpoint))
    given = cfg.get("soprano_range")
    if given is not None:
        if len(given) != 2 or int(given[1]) - int(given[0]) < 12:
            raise ConfigError(
                f"rlmusic harmonise: soprano_range={list(given)} must be [low, high] "
                "MIDI pitches at least an octave apart (null: Bach's)"
            )


def heldout_sopranos(
    cfg: DictConfig, encoding: ChoraleEncoding
) -> tuple[list[Soprano], list[Refusal], list[np.ndarray]]:
    """The sopranos of ``data``'s test split (whole chorales, or their first ``length``
    steps), the chorales too short for ``length``, and Bach's own pieces (in C)."""
    from rlmusic.data.prepare import prepare_corpus

    corpus = prepare_corpus(cfg.data, encoding, progress=False)
    length = int(cfg.length) if cfg.get("length") else None
    sopranos, refused, bach = [], [], []
    for i in np.flatnonzero(corpus.split == "test"):
        tune_id = str(corpus.metadata["tune_id"][i])
        source = f"{tune_id} ({cfg.data.source} test split)"
        tokens = np.asarray(corpus.tokens[i], dtype=np.int64)
        if length is not None:
            if encoding.steps_in(tokens) < length:
                refused.append(Refusal(source, f"shorter than length={length} steps"))
                continue
            tokens = tokens[: encoding.tokens_for(length)]
        soprano = soprano_from_tokens(
            tune_id,
            source,
            soprano_columns(tokens, encoding),
            encoding,
            int(corpus.metadata["transposition"][i]),
            key=str(corpus.metadata["key"][i]),
        )
        sopranos.append(soprano)
        bach.append(tokens)
    return sopranos, refused, bach


def music21_key(name: str):
    """``"Eb major"`` -> a music21 key signature (``E-`` major); None for an unknown name.

    >>> str(music21_key("Eb major")), music21_key("")
    ('E- major', None)
    """
    from music21 import key

    tonic, _, mode = name.partition(" ")
    if tonic not in PITCH_CLASS_NAMES or mode not in ("major", "minor"):
        return None
    return key.Key(tonic[0] + tonic[1:].replace("b", "-"), mode)


def write_files(
    pieces: np.ndarray, soprano: Soprano, encoding: ChoraleEncoding, out: Path, qpm: float
) -> list[Path]:
    """MIDI and MusicXML of each harmonisation, back in the melody's own key."""
    back = key_encoding(encoding, soprano.shift)
    stem = out / f"{soprano.name}{SUFFIX}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    files = []
    for i, piece in enumerate(pieces):
        base = stem if len(pieces) == 1 else stem.with_name(f"{stem.name}_{i + 1}")
        midi = base.with_name(base.name + ".mid")
        back.to_pretty_midi(piece, qpm=qpm).write(str(midi))
        score = back.to_music21(piece, title=Path(soprano.name).name)
        for part in score.parts:
            signature = music21_key(soprano.key)  # one object per part: music21's sites
            if signature is not None:
                part.insert(0, signature)
        xml = base.with_name(base.name + ".musicxml")
        score.write("musicxml", fp=str(xml))
        files += [midi, xml]
    return files


def run(cfg: DictConfig) -> HarmoniseResult:
    """Harmonise per ``cfg`` (conf/harmonise.yaml): write the files and the summary."""
    check(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    model, encoding = load_generator(str(cfg.checkpoint), device=device)
    bach = None
    if str(cfg.melody) == HELDOUT:
        sopranos, refused, bach = heldout_sopranos(cfg, encoding)
    else:
        root, files = melody_files(str(cfg.melody))
        soprano_range = [int(p) for p in cfg.get("soprano_range") or VOICE_RANGES[0]]
        if soprano_range[0] < encoding.min_pitch or soprano_range[1] > encoding.max_pitch:
            raise ConfigError(
                f"rlmusic harmonise: soprano_range={soprano_range} must lie in the checkpoint's "
                f"pitch range {encoding.min_pitch}..{encoding.max_pitch}"
            )
        sopranos, refused = read_sopranos(
            files,
            root,
            encoding,
            soprano_range,
            max_dropped=float(cfg.max_dropped_notes),
            max_steps=int(cfg.max_steps),
            timeout_s=float(cfg.timeout_s),
        )
    out = run_folder(cfg.get("out"), fallback="outputs/harmonise")
    out.mkdir(parents=True, exist_ok=True)
    rng = torch.Generator(device=device).manual_seed(int(cfg.seed))
    harmonised = []
    for soprano in sopranos:
        pieces = harmonise(
            model, soprano.tokens, int(cfg.n), rng, encoding, float(cfg.temperature), device
        )
        files = write_files(pieces, soprano, encoding, out, float(cfg.qpm))
        kept = [soprano_kept(p, soprano, encoding) for p in pieces]
        harmonised.append(Harmonised(soprano, pieces, files, kept))
        log.info("%s: %d steps, %d written", soprano.source, soprano.steps, len(files))
    resamples, seed = int(cfg.resamples), int(cfg.seed)
    written = [p for h in harmonised for p in h.pieces]
    columns = [table_column(str(cfg.checkpoint), written, encoding, resamples, seed)]
    real = table_column("Bach (same chorales)", bach, encoding, resamples, seed) if bach else None
    settings = {
        "checkpoint": str(cfg.checkpoint),
        "melody": str(cfg.melody),
        "n": int(cfg.n),
        "seed": seed,
        "temperature": float(cfg.temperature),
    }
    summary = Summary(harmonised, refused, columns if written else [], real, settings)
    print("\n".join(summary.lines()))
    md, js = summary.write(out)
    print(f"-> {out} ({md.name}, {js.name})")
    return HarmoniseResult(out, summary)
