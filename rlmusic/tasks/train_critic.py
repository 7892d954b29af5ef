"""`rlmusic train-critic critic=discriminator|ensemble|preference`: train a learned critic.

``run(cfg)`` trains (or, for the ensemble, assembles and scores) the critic ``cfg.critic``
names and writes into the run folder:

* ``critic.safetensors`` -- the critic, its validation figures and what it was trained
  against in the metadata (``reward.extra`` terms take the file or the folder as
  ``checkpoint=``),
* ``metrics.json`` -- the validation figures (and ``data_split``: the corpus split the real
  windows came from, :func:`rlmusic.data.split.split_record`; also in the critic's metadata),
  ``critic.log`` -- the training log, ``config.yaml`` -- the resolved config.

* **discriminator**: real windows of ``length`` time steps (``encoding.tokens_for(length)``
  tokens, starting on a step) from the corpus's ``critic.real.split``
  (``data.split_seed``'s; those tunes split by ``seed`` into fit / held out), against compositions sampled from
  ``critic.fake.generators`` (and the MIDI files in ``critic.fake.midi_dir``); figures:
  held-out accuracy and AUC. ``critic`` becomes a
  :class:`~rlmusic.critics.training.DiscriminatorRecipe` trained by
  :func:`~rlmusic.critics.training.train_corpus_discriminator`, which also trains the default
  reward's ``checkpoint: auto`` critics (:mod:`rlmusic.critics.auto`).
* **ensemble**: the members' weights saved together; figures: per-token NLL on real windows
  of ``critic.valid.split``, disagreement, and the AUC of real vs sampled windows.
* **preference**: a Bradley-Terry model over ``critic.preferences``; figure: held-out pairwise
  accuracy.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlmusic.critics import (
    CriticConfig,
    PreferenceTrainConfig,
    build_ensemble,
    cut_windows,
    evaluate_ensemble,
    load_preferences,
    pairs_from_preferences,
    save_cnn_critic,
    save_ensemble,
    train_preference,
)
from rlmusic.critics.io import DEFAULT_NAME
from rlmusic.critics.stats import format_figures
from rlmusic.critics.training import (
    CriticRun,
    DiscriminatorRecipe,
    critic_run,
    generated_windows,
    log_to,
    split_tunes,
    train_corpus_discriminator,
)
from rlmusic.data.corpus import Corpus
from rlmusic.data.encodings import Encoding, encoding_from_cfg
from rlmusic.data.split import split_record
from rlmusic.runtime import resolve_device, run_folder

log = logging.getLogger(__name__)

KINDS = ("discriminator", "ensemble", "preference")


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _corpus(cfg: DictConfig, encoding: Encoding, corpus: Corpus | None) -> Corpus:
    if corpus is None:
        from rlmusic.data.prepare import prepare_corpus

        corpus = prepare_corpus(cfg.data, encoding, progress=bool(cfg.get("progress", True)))
    if corpus.encoding != encoding:
        raise ValueError(
            f"the corpus is encoded with {corpus.encoding}, the config asks {encoding}"
        )
    return corpus


def _discriminator(cfg, encoding, device, corpus, out: Path) -> CriticRun:
    """:func:`~rlmusic.critics.training.train_corpus_discriminator` as ``cfg.critic`` says (the
    code an ``auto`` critic trains by, :mod:`rlmusic.critics.auto_cache`)."""
    recipe = DiscriminatorRecipe.from_node(_plain(cfg.critic), int(cfg.length))
    with log_to(out / "critic.log"):  # a corpus parsed now logs its warnings there too
        corpus = _corpus(cfg, encoding, corpus)
    data = _plain(cfg.data)
    return train_corpus_discriminator(corpus, data, recipe, out, int(cfg.seed), device)


def _ensemble(cfg, encoding, device, corpus, out: Path) -> CriticRun:
    return critic_run(out, "ensemble", lambda: _train_ensemble(cfg, encoding, device, corpus, out))


def _train_ensemble(cfg, encoding, device, corpus, out: Path) -> tuple[dict, Path, dict]:
    c, seed, length = cfg.critic, int(cfg.seed), int(cfg.length)
    critic = build_ensemble(list(c.members), device)
    if critic.encoding.vocab_size != encoding.vocab_size:
        raise ValueError(f"the members' encoding {critic.encoding} is not the config's {encoding}")
    corpus = _corpus(cfg, encoding, corpus)
    tunes, data_split = split_tunes(corpus, str(c.valid.split)), split_record(corpus, cfg.data)
    rng = np.random.default_rng(seed)
    real = cut_windows(
        tunes,
        encoding.tokens_for(length),
        int(c.valid.windows),
        rng,
        str(c.valid.start),
        encoding.steps_per_bar,
        encoding.tokens_per_step,
        encoding.voice_size,
    )
    fake = None
    if int(c.fake.n) > 0:
        fake = generated_windows(
            list(c.fake.generators or []),
            int(c.fake.n),
            length,
            seed,
            encoding,
            float(c.fake.get("temperature", 1.0)),
            c.fake.get("midi_dir"),
            device,
        )
    figures = evaluate_ensemble(critic, real, fake)
    figures["seed"] = seed
    log.info("ensemble: %s", format_figures(figures))
    trained = {
        "seed": seed,
        "length": length,
        "members": critic.names,
        "valid": {"data": str(cfg.data.get("source", "?")), "split": str(c.valid.split)},
        "fake": {"generators": list(c.fake.generators or []), "n_per_generator": int(c.fake.n)},
        "data_split": data_split,
    }
    return figures, save_ensemble(out / DEFAULT_NAME, critic, figures, trained), data_split


def _preference(cfg, encoding, device, corpus, out: Path) -> CriticRun:
    return critic_run(out, "preference", lambda: _train_preference(cfg, encoding, device, out))


def _train_preference(cfg, encoding, device, out: Path) -> tuple[dict, Path, None]:
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
    return figures, path, None  # no corpus: no split


def run(cfg: DictConfig, corpus: Corpus | None = None) -> dict[str, Any]:
    """Train per ``cfg`` (conf/train_critic.yaml); ``corpus`` replaces ``cfg.data`` (tests).

    Returns:
        The validation figures, plus ``kind``, ``checkpoint`` (the file written), ``wall_s``
        and ``data_split`` (the corpus split it read; None for a preference critic).
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
    build = {"discriminator": _discriminator, "ensemble": _ensemble, "preference": _preference}
    trained = build[kind](cfg, encoding, device, corpus, out)
    figures = trained.figures
    shown = {k: v for k, v in figures.items() if k in ("accuracy", "auc", "nll", "n_valid")}
    print(
        f"{kind} critic -> {trained.checkpoint} ({trained.wall_s:.1f} s): {format_figures(shown)}"
    )
    return trained.result()
