"""`rlmusic train-critic critic=discriminator|ensemble|preference`: train a learned critic.

``run(cfg)`` trains (or, for the ensemble, assembles and scores) the critic ``cfg.critic``
names and writes into the run folder:

* ``critic.safetensors`` -- the critic, its validation figures and what it was trained
  against in the metadata (``reward.extra`` terms take the file or the folder as
  ``checkpoint=``),
* ``metrics.json`` -- the validation figures, ``critic.log`` -- the training log,
  ``config.yaml`` -- the resolved config.

* **discriminator**: real windows of ``length`` steps from the corpus's ``critic.real.split``
  (tunes split by a seeded hash into fit / held out), against compositions sampled from
  ``critic.fake.generators`` (and the MIDI files in ``critic.fake.midi_dir``); figures:
  held-out accuracy and AUC.
* **ensemble**: the members' weights saved together; figures: per-token NLL on real windows
  of ``critic.valid.split``, disagreement, and the AUC of real vs sampled windows.
* **preference**: a Bradley-Terry model over ``critic.preferences``; figure: held-out pairwise
  accuracy.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlmusic.critics import (
    CriticConfig,
    DiscriminatorTrainConfig,
    PreferenceTrainConfig,
    build_ensemble,
    cut_windows,
    evaluate_ensemble,
    load_preferences,
    midi_folder_windows,
    pairs_from_preferences,
    sample_generators,
    save_cnn_critic,
    save_ensemble,
    train_discriminator,
    train_preference,
)
from rlmusic.critics.io import DEFAULT_NAME
from rlmusic.critics.stats import format_figures, seeded_split
from rlmusic.data.corpus import Corpus
from rlmusic.data.encoding import MelodyEncoding, encoding_from_cfg
from rlmusic.runtime import resolve_device, run_folder

log = logging.getLogger(__name__)

KINDS = ("discriminator", "ensemble", "preference")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
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


def _corpus(cfg: DictConfig, encoding: MelodyEncoding, corpus: Corpus | None) -> Corpus:
    if corpus is None:
        from rlmusic.data.prepare import prepare_corpus

        corpus = prepare_corpus(cfg.data, encoding, progress=bool(cfg.get("progress", True)))
    if corpus.encoding != encoding:
        raise ValueError(
            f"the corpus is encoded with {corpus.encoding}, the config asks {encoding}"
        )
    return corpus


def _tunes(corpus: Corpus, split: str) -> list[np.ndarray]:
    tunes = corpus.tunes(split)
    if not tunes:
        raise ValueError(f"the corpus has no tune in its {split!r} split; choose another split")
    return tunes


def _fakes(c: DictConfig, length: int, seed: int, encoding, device) -> np.ndarray:
    """Sampled compositions of every generator, plus the MIDI folder's openings."""
    fake = sample_generators(
        list(c.fake.generators or []),
        int(c.fake.n),
        length,
        seed,
        encoding,
        float(c.fake.get("temperature", 1.0)),
        device,
    )
    if c.fake.get("midi_dir"):
        fake = np.concatenate([fake, midi_folder_windows(c.fake.midi_dir, length, encoding)])
    return fake


def _discriminator(cfg, encoding, device, corpus, out: Path) -> tuple[dict, Path]:
    c, seed, length = cfg.critic, int(cfg.seed), int(cfg.length)
    tunes = _tunes(_corpus(cfg, encoding, corpus), str(c.real.split))
    holdout = float(c.holdout)
    fit, held = seeded_split(len(tunes), holdout, seed)  # by tune: no tune on both sides
    if len(held) == 0:
        raise ValueError(f"need >= 2 tunes to hold some out, the corpus split has {len(tunes)}")
    rng = np.random.default_rng(seed)
    windows, start, bar = int(c.real.windows), str(c.real.start), encoding.steps_per_bar
    n_held = max(1, round(windows * holdout))
    real_fit = cut_windows([tunes[i] for i in fit], length, windows - n_held, rng, start, bar)
    real_held = cut_windows([tunes[i] for i in held], length, n_held, rng, start, bar)
    fake = _fakes(c, length, seed, encoding, device)
    fit_f, held_f = seeded_split(len(fake), holdout, seed + 1)
    train_cfg = DiscriminatorTrainConfig(
        **_plain(c.train),
        holdout=holdout,
        model=CriticConfig(**_plain(c.model), vocab_size=encoding.vocab_size),
    )
    model, figures = train_discriminator(
        real_fit, fake[fit_f], train_cfg, seed, device, valid=(real_held, fake[held_f])
    )
    trained = {
        "seed": seed,
        "length": length,
        "real": {
            "data": str(cfg.data.get("source", "?")),
            "split": str(c.real.split),
            "tunes_fit": len(fit),
            "tunes_held_out": len(held),
            "start": start,
        },
        "fake": {
            "generators": list(c.fake.generators or []),
            "n_per_generator": int(c.fake.n),
            "temperature": float(c.fake.get("temperature", 1.0)),
            "midi_dir": c.fake.get("midi_dir"),
        },
        "train": _plain(c.train),
    }
    path = save_cnn_critic(out / DEFAULT_NAME, model, "discriminator", encoding, figures, trained)
    return figures, path


def _ensemble(cfg, encoding, device, corpus, out: Path) -> tuple[dict, Path]:
    c, seed, length = cfg.critic, int(cfg.seed), int(cfg.length)
    critic = build_ensemble(list(c.members), device)
    if critic.encoding.vocab_size != encoding.vocab_size:
        raise ValueError(f"the members' encoding {critic.encoding} is not the config's {encoding}")
    tunes = _tunes(_corpus(cfg, encoding, corpus), str(c.valid.split))
    rng = np.random.default_rng(seed)
    real = cut_windows(
        tunes, length, int(c.valid.windows), rng, str(c.valid.start), encoding.steps_per_bar
    )
    fake = _fakes(c, length, seed, encoding, device) if int(c.fake.n) > 0 else None
    figures = evaluate_ensemble(critic, real, fake)
    figures["seed"] = seed
    log.info("ensemble: %s", format_figures(figures))
    trained = {
        "seed": seed,
        "length": length,
        "members": critic.names,
        "valid": {"data": str(cfg.data.get("source", "?")), "split": str(c.valid.split)},
        "fake": {"generators": list(c.fake.generators or []), "n_per_generator": int(c.fake.n)},
    }
    return figures, save_ensemble(out / DEFAULT_NAME, critic, figures, trained)


def _preference(cfg, encoding, device, corpus, out: Path) -> tuple[dict, Path]:
    c, seed = cfg.critic, int(cfg.seed)
    if not c.get("preferences"):
        raise ValueError("critic=preference needs critic.preferences=<JSON or JSON Lines file>")
    preferences = load_preferences(c.preferences, c.get("samples_dir"), bool(c.skip_bad))
    max_length = int(c.max_length) if c.get("max_length") else None
    samples, pairs, outcome = pairs_from_preferences(preferences, encoding, max_length)
    train_cfg = PreferenceTrainConfig(
        **_plain(c.train),
        holdout=float(c.holdout),
        model=CriticConfig(**_plain(c.model), vocab_size=encoding.vocab_size),
    )
    model, figures = train_preference(samples, pairs, outcome, train_cfg, seed, device)
    trained = {
        "seed": seed,
        "preferences": str(c.preferences),
        "samples_dir": c.get("samples_dir"),
        "pairs": len(pairs),
        "samples": len(samples),
        "max_length": max_length,
        "train": _plain(c.train),
    }
    path = save_cnn_critic(out / DEFAULT_NAME, model, "preference", encoding, figures, trained)
    return figures, path


def run(cfg: DictConfig, corpus: Corpus | None = None) -> dict[str, Any]:
    """Train per ``cfg`` (conf/train_critic.yaml); ``corpus`` replaces ``cfg.data`` (tests).

    Returns:
        The validation figures, plus ``kind``, ``checkpoint`` (the file written) and
        ``wall_s``.
    """
    kind = str(cfg.critic.name)
    if kind not in KINDS:
        raise ValueError(f"unknown critic {kind!r}; known: {', '.join(KINDS)}")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    encoding = encoding_from_cfg(cfg.encoding)
    out = run_folder(cfg.get("out"), fallback=Path("outputs/train_critic") / kind)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    started = time.perf_counter()
    with _log_to(out / "critic.log"):
        build = {"discriminator": _discriminator, "ensemble": _ensemble, "preference": _preference}
        figures, path = build[kind](cfg, encoding, device, corpus, out)
        wall = time.perf_counter() - started
        log.info("%s critic -> %s in %.1f s: %s", kind, path, wall, format_figures(figures))
    result = {"kind": kind, "checkpoint": str(path), "wall_s": wall, **figures}
    strict = {
        k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in result.items()
    }
    (out / "metrics.json").write_text(json.dumps(strict, indent=2))  # NaN -> null: strict JSON
    shown = {k: v for k, v in figures.items() if k in ("accuracy", "auc", "nll", "n_valid")}
    print(f"{kind} critic -> {path} ({wall:.1f} s): {format_figures(shown)}")
    return result
