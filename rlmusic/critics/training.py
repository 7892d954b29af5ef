"""A critic trained into a run folder: the one discriminator recipe both of its callers run.

:func:`train_corpus_discriminator` trains a discriminator on a corpus split's tunes against
generators' samples, as a :class:`DiscriminatorRecipe` (conf/critic/discriminator.yaml as one
typed object) says, and writes the run folder. ``rlmusic train-critic critic=discriminator``
(:mod:`rlmusic.tasks.train_critic`) builds the recipe from its config; ``checkpoint: auto``
(:mod:`rlmusic.critics.auto_cache`) from :class:`~rlmusic.critics.auto_cache.AutoCriticSettings`.

:func:`critic_run` is the run folder of any critic: ``critic.log`` (rlmusic's INFO lines while
it trains), ``metrics.json`` (the validation figures, strict JSON) and the wall time; the critic
itself is ``critic.safetensors`` (:data:`~rlmusic.critics.io.DEFAULT_NAME`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlmusic.critics.cnn import CriticConfig
from rlmusic.critics.data import cut_windows, midi_folder_windows, sample_generators
from rlmusic.critics.discriminator import DiscriminatorTrainConfig, train_discriminator
from rlmusic.critics.io import DEFAULT_NAME, save_cnn_critic
from rlmusic.critics.stats import format_figures, seeded_split
from rlmusic.data.corpus import Corpus
from rlmusic.data.encodings import Encoding
from rlmusic.data.split import split_record

log = logging.getLogger(__name__)

# critic.train keys recorded in a discriminator's metadata (``trained.train``)
TRAIN_KEYS = ("steps", "time_s", "batch_size", "lr", "weight_decay", "log_every")


def _shipped_train() -> DiscriminatorTrainConfig:
    return DiscriminatorTrainConfig(steps=3000, time_s=60.0)  # conf/critic/discriminator.yaml


@dataclass(frozen=True)
class DiscriminatorRecipe:
    """How a discriminator is trained; the defaults are conf/critic/discriminator.yaml's
    (tests/test_critics_auto.py holds them equal).

    Attributes:
        generators: generator specs whose samples are the generated side (``fake.generators``).
        samples: compositions sampled from each generator (``fake.n``).
        temperature: their sampling temperature.
        midi_dir: also the opening ``length`` steps of every MIDI file in this folder (read in
            the corpus's encoding).
        split: the corpus split the real windows come from (``real.split``).
        windows: real windows cut, held-out share included.
        start: where a real window may start: ``any`` | ``onset`` | ``bar``.
        length: time steps per real window and per sample (``encoding.tokens_for(length)``
            tokens: a chorale's windows start on a step's first token).
        train: steps, batches, optimiser, ``holdout`` (the share of tunes and of samples held
            out for the figures) and the network (its ``vocab_size`` is the encoding's).
    """

    generators: tuple[str, ...] = ("pretrained:note_lstm",)
    samples: int = 4096
    temperature: float = 1.0
    midi_dir: str | None = None
    split: str = "train"
    windows: int = 8192
    start: str = "onset"
    length: int = 32
    train: DiscriminatorTrainConfig = field(default_factory=_shipped_train)

    @classmethod
    def from_node(cls, critic: Mapping[str, Any], length: int) -> DiscriminatorRecipe:
        """From a ``critic`` node of conf/critic/discriminator.yaml's shape (plain containers)."""
        real, fake = critic["real"], critic["fake"]
        train = DiscriminatorTrainConfig(
            **critic["train"],
            holdout=float(critic["holdout"]),
            model=CriticConfig(**critic["model"]),
        )
        return cls(
            generators=tuple(str(g) for g in fake.get("generators") or []),
            samples=int(fake["n"]),
            temperature=float(fake.get("temperature", 1.0)),
            midi_dir=fake.get("midi_dir"),
            split=str(real["split"]),
            windows=int(real["windows"]),
            start=str(real["start"]),
            length=int(length),
            train=train,
        )

    def to_node(self) -> dict[str, Any]:
        """The ``critic`` node :meth:`from_node` reads (for a run folder's ``config.yaml``)."""
        model = asdict(self.train.model)
        model.pop("vocab_size")  # the encoding's
        return {
            "name": "discriminator",
            "real": {"split": self.split, "windows": self.windows, "start": self.start},
            "fake": {
                "generators": list(self.generators),
                "n": self.samples,
                "temperature": self.temperature,
                "midi_dir": self.midi_dir,
            },
            "holdout": self.train.holdout,
            "model": model,
            "train": {key: getattr(self.train, key) for key in TRAIN_KEYS},
        }


@dataclass
class CriticRun:
    """A critic trained into a run folder.

    Attributes:
        kind: ``discriminator`` | ``ensemble`` | ``preference``.
        checkpoint: the critic file written.
        figures: its validation figures (also in its metadata).
        wall_s: seconds the training took.
        data_split: the corpus split it read (:func:`rlmusic.data.split.split_record`; None for
            a preference critic).
    """

    kind: str
    checkpoint: Path
    figures: dict[str, Any]
    wall_s: float
    data_split: dict[str, Any] | None = None

    def result(self) -> dict[str, Any]:
        """``kind``, ``checkpoint``, ``wall_s``, the figures and ``data_split``: metrics.json."""
        return {
            "kind": self.kind,
            "checkpoint": str(self.checkpoint),
            "wall_s": self.wall_s,
            **self.figures,
            "data_split": self.data_split,
        }


@contextmanager
def log_to(path: Path) -> Iterator[None]:
    """Copy rlmusic's INFO log lines into ``path`` for the duration (Hydra or not)."""
    logger = logging.getLogger("rlmusic")
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    handler.setLevel(logging.INFO)
    level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()


Trained = tuple[dict[str, Any], Path, dict[str, Any] | None]  # figures, critic file, data split


def critic_run(out: Path, kind: str, train: Callable[[], Trained]) -> CriticRun:
    """Run ``train`` (which writes the critic into ``out``) with its log in ``out/critic.log``;
    write ``out/metrics.json``."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_to(out / "critic.log"):
        figures, path, data_split = train()
        wall = time.perf_counter() - started
        log.info("%s critic -> %s in %.1f s: %s", kind, path, wall, format_figures(figures))
    run = CriticRun(kind, path, figures, wall, data_split)
    strict = {
        k: None if isinstance(v, float) and not np.isfinite(v) else v
        for k, v in run.result().items()
    }
    (out / "metrics.json").write_text(json.dumps(strict, indent=2))  # NaN -> null: strict JSON
    return run


def split_tunes(corpus: Corpus, split: str) -> list[np.ndarray]:
    """The tunes of ``corpus``'s ``split``; an empty split is an error naming it."""
    tunes = corpus.tunes(split)
    if not tunes:
        raise ValueError(f"the corpus has no tune in its {split!r} split; choose another split")
    return tunes


def generated_windows(
    generators: Sequence[str],
    n: int,
    length: int,
    seed: int,
    encoding: Encoding,
    temperature: float = 1.0,
    midi_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    sopranos: np.ndarray | None = None,
) -> np.ndarray:
    """``n`` sampled compositions of ``length`` time steps of every generator, plus the
    openings of ``midi_dir``'s MIDI files: a critic's generated side, (N, tokens). A
    harmoniser harmonises ``sopranos`` (the real side's, :func:`sample_generators`)."""
    size = encoding.tokens_for(length)
    fake = sample_generators(
        list(generators), n, size, seed, encoding, temperature, device, sopranos=sopranos
    )
    if midi_dir:
        fake = np.concatenate([fake, midi_folder_windows(midi_dir, length, encoding)])
    return fake


def train_corpus_discriminator(
    corpus: Corpus,
    data: Mapping[str, Any],
    recipe: DiscriminatorRecipe,
    out: Path,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> CriticRun:
    """Train a discriminator on ``corpus``'s ``recipe.split`` against the recipe's generators
    and write it into the run folder ``out`` (:func:`critic_run`).

    The tunes split by ``seed`` into fit / held out (no tune on both sides), as do the samples
    (``seed + 1``); ``seed`` also draws the windows, the samples, the weights and the batches,
    so the same arguments give the same critic.

    Args:
        corpus: the prepared corpus, in the encoding of the critic and of the generators.
        data: its data config (``source`` and the split's settings, recorded).
        recipe: what the critic trains on and how.
        out: the run folder (created).
        seed: see above.
        device: where it samples and trains.

    Raises:
        ValueError: an empty split, fewer than two tunes, or a generator of another vocabulary.
    """
    encoding = corpus.encoding
    return critic_run(
        out,
        "discriminator",
        lambda: _discriminator(corpus, data, recipe, encoding, out, seed, device),
    )


def _discriminator(
    corpus: Corpus,
    data: Mapping[str, Any],
    recipe: DiscriminatorRecipe,
    encoding: Encoding,
    out: Path,
    seed: int,
    device: torch.device | str,
) -> Trained:
    r, length = recipe, recipe.length
    size, per_step = encoding.tokens_for(length), encoding.tokens_per_step
    tunes, data_split = split_tunes(corpus, r.split), split_record(corpus, data)
    holdout = r.train.holdout
    fit, held = seeded_split(len(tunes), holdout, seed)  # by tune: no tune on both sides
    if len(held) == 0:
        raise ValueError(f"need >= 2 tunes to hold some out, the corpus split has {len(tunes)}")
    rng = np.random.default_rng(seed)
    bar = encoding.steps_per_bar
    n_held = max(1, round(r.windows * holdout))
    fitted = [tunes[i] for i in fit]
    blocks = encoding.voice_size
    real_fit = cut_windows(fitted, size, r.windows - n_held, rng, r.start, bar, per_step, blocks)
    real_held = cut_windows(
        [tunes[i] for i in held], size, n_held, rng, r.start, bar, per_step, blocks
    )
    sopranos = None
    if encoding.kind == "chorale":  # a harmoniser's side harmonises the fitted chorales' sopranos
        from rlmusic.models.conditions import soprano_windows

        try:
            sopranos = soprano_windows(fitted, length, encoding)
        except ValueError:  # none that long: only a harmoniser needs them, and it says so
            sopranos = None
    fake = generated_windows(
        r.generators,
        r.samples,
        length,
        seed,
        encoding,
        r.temperature,
        r.midi_dir,
        device,
        sopranos,
    )
    fit_f, held_f = seeded_split(len(fake), holdout, seed + 1)
    train_cfg = replace(r.train, model=replace(r.train.model, vocab_size=encoding.vocab_size))
    model, figures = train_discriminator(
        real_fit, fake[fit_f], train_cfg, seed, device, valid=(real_held, fake[held_f])
    )
    trained = {
        "seed": seed,
        "length": length,
        "real": {
            "data": str(data.get("source", "?")),
            "split": r.split,
            "tunes_fit": len(fit),
            "tunes_held_out": len(held),
            "start": r.start,
        },
        "data_split": data_split,
        "fake": {
            "generators": list(r.generators),
            "n_per_generator": r.samples,
            "temperature": r.temperature,
            "midi_dir": r.midi_dir,
        },
        "train": {key: getattr(r.train, key) for key in TRAIN_KEYS},
    }
    path = save_cnn_critic(out / DEFAULT_NAME, model, "discriminator", encoding, figures, trained)
    return figures, path, data_split
