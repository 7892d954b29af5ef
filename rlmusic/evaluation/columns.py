"""The columns of a comparison: compositions from a generator, a folder of MIDI files, or the
held-out real melodies, each named by a spec.

Specs (``models.NAME=SPEC``):

* ``pretrained:<name>`` — a shipped generator; a checkpoint file; a run folder (its
  ``tuned.safetensors`` if it has one, else ``model.safetensors`` / ``best.pt`` / ``last.pt``):
  ``n`` seeded samples of ``length`` steps (:func:`rlmusic.models.sampling.sample_seeded`).
* a folder of MIDI files (searched recursively; a folder holding a checkpoint is a run folder):
  each file's opening ``length`` steps (:func:`rlmusic.critics.midi_folder_windows`: read with
  ``load_melody``, a short one ends in a rest); more than ``n`` files: a seeded choice of ``n``.
* ``heldout`` (or ``corpus:test``) — openings of the corpus test split, disjoint from the ones
  the realism measures compare against (see :func:`split_heldout`); the same openings at every
  run seed (the division is keyed by ``data.split_seed``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rlmusic.config import ConfigError
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.encodings import Encoding
from rlmusic.data.harmonisation import sopranos
from rlmusic.models.checkpoint import CheckpointError, find_in_directory
from rlmusic.models.conditions import Conditions, SopranoConditions
from rlmusic.models.registry import PRETRAINED_PREFIX, checkpoint_conditioning, load_generator
from rlmusic.models.sampling import sample_seeded

log = logging.getLogger(__name__)

HELDOUT_SPECS = ("heldout", "corpus:test")
TUNED_FILE = "tuned.safetensors"  # what a fine-tuning run folder holds
MIDI_SUFFIXES = (".mid", ".midi")
GENERATOR, MIDI, HELDOUT = "generator", "midi", "heldout"


@dataclass
class Column:
    """One column's compositions: ``tokens`` (n, length); ``log_probs`` (n, length) are the
    generator's own ``log pi`` of its samples (None for real or MIDI pieces);
    ``critic_tokens`` the pieces the two-sample critic test scores: a generator's own larger
    draw, a MIDI folder's pieces, none for ``heldout`` (its openings are tunes the critic
    learns real music from; the test's sanity row is real against real instead)."""

    name: str
    spec: str
    kind: str  # generator | midi | heldout
    tokens: np.ndarray
    log_probs: np.ndarray | None = None
    seconds: float = 0.0
    critic_tokens: np.ndarray | None = None  # what the critic test scores (None: left out)


def soprano_conditions(
    specs: list[str], openings: list[np.ndarray] | np.ndarray, encoding: Encoding, task: str
) -> SopranoConditions | None:
    """Harmonisers (checkpoints trained with ``condition=soprano``) harmonise the held-out
    ``openings``' sopranos, every model the same ones (by the seed); None when the generator
    ``specs`` (the prior's included) write whole pieces. Harmonisers and generators do not mix:
    a harmoniser's prior must read the soprano too."""
    kinds = {spec: checkpoint_conditioning(spec) for spec in specs}
    if not any(kinds.values()):
        return None
    if not all(kinds.values()):
        plain = ", ".join(spec for spec, kind in kinds.items() if not kind)
        raise ConfigError(
            f"rlmusic {task}: harmonisers and generators cannot share one table: {plain} writes "
            "whole pieces (compare harmonisers together, with a harmoniser as prior=)"
        )
    if len(openings) == 0:
        raise ConfigError(
            f"rlmusic {task}: a harmoniser is judged on the held-out chorales' sopranos: give "
            "data=chorales"
        )
    return SopranoConditions(sopranos(np.stack(openings), encoding), encoding)


def spec_kind(spec: str) -> tuple[str, str]:
    """``(kind, what to load)`` for a spec: a generator spec for ``load_generator``, a MIDI
    folder, or the held-out melodies.

    Raises:
        ConfigError: (a ValueError) no such file or folder, or a folder with neither a
            checkpoint nor MIDI.
    """
    spec = str(spec)
    if spec in HELDOUT_SPECS:
        return HELDOUT, spec
    if spec.startswith(PRETRAINED_PREFIX):
        return GENERATOR, spec
    path = Path(spec).expanduser()
    if path.is_file():
        return GENERATOR, str(path)
    if not path.is_dir():
        raise ConfigError(
            f"model spec {spec!r}: no such file or folder (a spec is pretrained:<name>, a "
            f"checkpoint, a run folder, a folder of MIDI files or {' / '.join(HELDOUT_SPECS)})"
        )
    try:  # tuned.safetensors first: find_in_directory's order
        return GENERATOR, str(find_in_directory(path))
    except CheckpointError:  # no checkpoint: a folder of MIDI files, or nothing usable
        pass
    if any(p.suffix.lower() in MIDI_SUFFIXES for p in path.rglob("*")):
        return MIDI, str(path)
    raise ConfigError(f"model spec {spec!r}: a folder with no checkpoint and no MIDI file")


def split_heldout(
    openings: list[np.ndarray] | np.ndarray, seed: int, column: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(reference, column pool)``: a seeded shuffle of the held-out openings, the first
    ``column`` (at most half) for a held-out column and the rest as the realism reference, so
    the column is never compared with itself (0 is no column: all of them are the reference).

    ``seed`` is the data's split seed (``data.split_seed``), not the run's: a comparison at
    another seed shows and measures against the same held-out pieces."""
    rows = np.stack([np.asarray(o, np.int64) for o in openings]) if len(openings) else None
    if rows is None:
        raise ConfigError(
            "no held-out melody of the requested length: no tune of the data's test split is "
            "that long (give data= more tunes, a larger data.test_fraction or a smaller length=)"
        )
    rows = rows[np.random.default_rng(seed).permutation(len(rows))]
    take = min(column, len(rows) // 2)
    return rows[take:], rows[:take]


def _choose(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(rows) <= n:
        return rows
    return rows[np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))]


def load_column(
    name: str,
    spec: str,
    n: int,
    length: int,
    seed: int,
    encoding: MelodyEncoding,
    heldout_pool: np.ndarray | None = None,
    device: torch.device | str = "cpu",
    critic_samples: int = 0,
    conditions: Conditions | None = None,
) -> Column:
    """The column a spec names (see the module's docstring); ``critic_samples`` > 0: a
    generator also draws that many pieces for the critic test (seed ``seed + 1``).
    ``length`` counts time steps (``encoding.tokens_for(length)`` tokens a piece).
    ``conditions``: a harmoniser's sopranos (:func:`soprano_conditions`).

    Raises:
        ValueError: a bad spec, a generator of another encoding, or ``heldout`` with no pool.
    """
    from rlmusic.critics.data import midi_folder_windows

    started = time.perf_counter()
    kind, target = spec_kind(spec)
    log_probs = critic_tokens = None
    if kind == GENERATOR:
        model, model_encoding = load_generator(target, device=device)
        if model_encoding != encoding:
            raise ValueError(f"model {name} ({spec}): its encoding differs from the prior's")
        size = encoding.tokens_for(length)
        tokens, log_probs = sample_seeded(model, n, size, seed, conditions=conditions)
        if critic_samples > 0:
            critic_tokens = sample_seeded(
                model, critic_samples, size, seed + 1, conditions=conditions
            )[0]
    elif kind == MIDI:
        tokens = _choose(midi_folder_windows(target, length, encoding), n, seed)
        critic_tokens = tokens if critic_samples > 0 else None
    else:
        if heldout_pool is None or len(heldout_pool) == 0:
            raise ValueError(f"model {name} ({spec}): no held-out melodies to show")
        tokens = heldout_pool[:, : encoding.tokens_for(length)]
    tokens = np.asarray(tokens, dtype=np.int64)
    seconds = time.perf_counter() - started
    log.info("%s (%s, %s): %d compositions in %.1f s", name, spec, kind, len(tokens), seconds)
    return Column(name, str(spec), kind, tokens, log_probs, seconds, critic_tokens)
