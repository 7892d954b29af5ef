"""A two-sample critic test: can a fresh discriminator tell a model's pieces from real ones?

A fresh :class:`rlmusic.critics.CausalCNN` discriminator
(:func:`rlmusic.critics.train_discriminator`) is trained on a seeded share of a model's pieces
against real windows, and scored on the rest of both (whole pieces: the last position's logit).
The figure is its **held-out balanced accuracy**: the mean of the share of real windows called
real and the share of the model's pieces caught. 0.5: the critic cannot tell them apart (the
two-sample test passed); 1.0: every piece gives itself away.

The real side is every note-onset window of the held-out tunes (the test split, which no
shipped model trained on), not only their openings: hundreds of openings gave the test too
little power to separate a tuned model from the supervised one. The tunes are split **by
tune**, keyed by the data's split seed (``split_seed``, not the run's seed: every seed tests
against the same tunes on the same sides), into

* a reference half, itself split by tune into windows the critic fits and windows it is scored
  on, so no tune is both learned and scored;
* a sanity half, which plays "the model" in the sanity row: real against real, where a critic
  that finds a difference is fooling itself (expect 0.5 within the interval).

The run's ``seed`` draws the rest: which windows of those tunes, the critic's weights and
batches, the model's pieces' split, the bootstrap. The interval resamples what the critic is
scored on: real windows in whole tunes (windows of one tune are not independent), the model's
pieces one by one. It shows the test set's uncertainty, not the spread of retraining.

The critic's size left null in the config is the encoding kind's own
(:meth:`CriticTestConfig.for_kind`). Given a :class:`CriticTestCache`, a figure whose rows,
settings, seeds and code were measured before is read back instead of trained again (the sanity
row and a shipped model's row at every comparison of a corpus).

Lengths count tokens, the pieces' own; given the ``encoding``, a real window starts on a time
step's first token (a chorale's soprano) and its onset is every voice striking, as in
:func:`rlmusic.critics.data.window_offsets`, and the critic's vocabulary is the encoding's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlmusic.critics import CriticConfig, DiscriminatorTrainConfig, train_discriminator
from rlmusic.critics.data import cut_windows, window_offsets
from rlmusic.critics.discriminator import score_all
from rlmusic.critics.stats import binary_auc, seeded_split
from rlmusic.data.encodings import Encoding
from rlmusic.evaluation.bootstrap import Interval, bootstrap_weights, interval
from rlmusic.evaluation.critic_test_cache import CriticTestCache, cache_key, code_version, digest
from rlmusic.evaluation.progress import critic_bar
from rlmusic.evaluation.two_sample_critic_config import CriticTestConfig

log = logging.getLogger(__name__)

SANITY = "critic sanity: held-out vs held-out"
POWER = "critic power: prior vs held-out"


def discriminator_config(
    cfg: CriticTestConfig, vocab_size: int, log_every: int = 0
) -> DiscriminatorTrainConfig:
    """The fresh critic's model and training budget from the test's config, its sizes filled
    (:meth:`CriticTestConfig.for_kind`); ``log_every``: steps between its step lines, which a
    progress bar reads (0: none)."""
    model = CriticConfig(
        vocab_size=vocab_size,
        embed_dim=cfg.embed_dim,
        channels=cfg.channels,
        dilations=list(cfg.dilations),
    )
    return DiscriminatorTrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        holdout=cfg.holdout,
        log_every=log_every,
        model=model,
    )


@dataclass
class Side:
    """One side of a test: rows the critic fits, rows it is scored on, and the group (tune or
    piece) of each scored row, which the bootstrap resamples whole."""

    fit: np.ndarray  # (F, T) int64
    held: np.ndarray  # (H, T) int64
    groups: np.ndarray  # (H,) int: group index per held row, 0..G-1

    @classmethod
    def of_pieces(cls, pieces: np.ndarray, holdout: float, seed: int) -> Side:
        """Independent pieces (a model's samples): a seeded share held out, one group each."""
        pieces = np.asarray(pieces, np.int64)
        fit, held = seeded_split(len(pieces), holdout, seed)
        return cls(pieces[fit], pieces[held], np.arange(len(held)))

    @classmethod
    def of_tunes(
        cls,
        tunes: Sequence[np.ndarray],
        length: int,
        windows: int,
        holdout: float,
        seed: int,
        start: str = "onset",
        steps_per_bar: int = 16,
        split_seed: int | None = None,
        tokens_per_step: int = 1,
        voice_size: int = 0,
    ) -> Side:
        """Real tunes: split by tune (keyed by ``split_seed``; None: ``seed``), then up to
        ``windows`` note-onset windows of ``length`` tokens (whole steps of ``tokens_per_step``)
        cut from each share (``seed``)."""
        fit_ids, held_ids = seeded_split(
            len(tunes), holdout, seed if split_seed is None else split_seed
        )
        rng = np.random.default_rng(seed)
        fit = cut_windows(
            [tunes[i] for i in fit_ids], length, windows, rng, start, steps_per_bar,
            tokens_per_step, voice_size,
        )  # fmt: skip
        held, groups = [], []
        for g, i in enumerate(held_ids):  # windows per held tune, remembering whose they are
            tune = np.asarray(tunes[i], np.int64)
            offsets = window_offsets(
                tune, length, start, steps_per_bar, tokens_per_step, voice_size
            )
            rows = [tune[o : o + length] for o in offsets]
            held.extend(rows)
            groups.extend([g] * len(rows))
        held_rows, group_ids = np.asarray(held, np.int64), np.asarray(groups)
        if len(held_rows) > windows:  # a seeded choice, groups kept alongside
            keep = np.sort(rng.choice(len(held_rows), windows, replace=False))
            held_rows, group_ids = held_rows[keep], group_ids[keep]
        _, group_ids = np.unique(group_ids, return_inverse=True)
        return cls(fit, held_rows, group_ids)


def _grouped_share(correct: np.ndarray, groups: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per resample (rows of ``weights`` over groups): the share of rows correct, each row
    weighted by how often its group was drawn."""
    per_row = weights[:, groups]  # (B, H)
    return (per_row @ correct) / np.maximum(per_row.sum(axis=1), 1e-12)


def split_real_tunes(
    tunes: Sequence[np.ndarray], length: int, split_seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(reference, sanity)``: the tunes at least ``length`` steps long, halved by a
    permutation seeded with the data's split seed (the same halves for every run seed)."""
    usable = [np.asarray(t, np.int64) for t in tunes if len(t) >= length]
    if len(usable) < 4:
        raise ValueError(
            f"the critic test needs >= 4 held-out tunes of >= {length} steps, got {len(usable)}"
        )
    order = np.random.default_rng(split_seed).permutation(len(usable))
    half = len(usable) // 2
    return [usable[i] for i in order[:half]], [usable[i] for i in order[half:]]


class CriticTest:
    """A two-sample critic test against held-out real tunes, built once and applied per model.

    Args:
        tunes: whole held-out tunes (token arrays), e.g. the corpus test split.
        vocab_size: the encoding's vocabulary.
        length: tokens per piece (the models' pieces must have this length:
            ``encoding.tokens_for(steps)``).
        cfg: the critic's size and budget.
        seed: the windows, the critic's weights and batches, the pieces' split, the bootstrap.
        resamples: bootstrap resamples behind each interval.
        confidence: the intervals' level.
        split_seed: how the tunes are divided (reference / sanity halves, fit / scored tunes):
            the data's ``split_seed``, so the run's ``seed`` never moves a tune between sides.
        encoding: the pieces' encoding: its bar and tokens per step place the real windows
            (None: one token a step, ``steps_per_bar``); its vocabulary must be ``vocab_size``.
        cache: where figures computed before are kept (:mod:`...critic_test_cache`): a figure
            whose rows, settings and code are unchanged is read, not trained again. None: none.
        progress: a bar on stderr over each critic's training steps.

    Raises:
        ValueError: fewer than 4 usable tunes, an encoding of another vocabulary, or a
            ``length`` that is not whole steps of it.
    """

    def __init__(
        self,
        tunes: Sequence[np.ndarray],
        vocab_size: int,
        length: int,
        cfg: CriticTestConfig | None = None,
        seed: int = 0,
        resamples: int = 1000,
        confidence: float = 0.95,
        steps_per_bar: int = 16,
        split_seed: int = 0,
        encoding: Encoding | None = None,
        cache: CriticTestCache | None = None,
        progress: bool = False,
    ) -> None:
        per_step = 1
        if encoding is not None:
            if encoding.vocab_size != vocab_size:
                raise ValueError(
                    f"the critic test's vocab_size {vocab_size} is not its {encoding.kind} "
                    f"encoding's {encoding.vocab_size}"
                )
            steps_per_bar, per_step = encoding.steps_per_bar, encoding.tokens_per_step
            if length % per_step:
                raise ValueError(
                    f"the critic test's pieces of {length} tokens are not whole {encoding.kind} "
                    f"steps ({per_step} tokens each)"
                )
        self.tokens_per_step = per_step
        self.voice_size = encoding.voice_size if encoding is not None else 0
        self.cfg = (cfg or CriticTestConfig()).for_kind(
            encoding.kind if encoding is not None else "melody"
        )
        self.vocab_size, self.length, self.seed = vocab_size, length, seed
        self.resamples, self.confidence = resamples, confidence
        self.cache, self.progress = cache, progress
        self._code: str | None = None  # code_version(), read once when the cache is first asked
        reference, sanity = split_real_tunes(tunes, length, split_seed)
        c = self.cfg
        self.real = Side.of_tunes(
            reference, length, c.real_windows, c.holdout, seed, c.window_start, steps_per_bar,
            split_seed, per_step, self.voice_size,
        )  # fmt: skip
        self.sanity_side = Side.of_tunes(
            sanity, length, c.real_windows, c.holdout, seed + 1, c.window_start, steps_per_bar,
            split_seed + 1, per_step, self.voice_size,
        )  # fmt: skip
        log.info(
            "critic test: %d + %d real windows (fit + scored, %d tunes), sanity %d + %d (%d tunes)",
            len(self.real.fit), len(self.real.held), len(reference),
            len(self.sanity_side.fit), len(self.sanity_side.held), len(sanity),
        )  # fmt: skip

    def accuracy(self, pieces: np.ndarray, name: str = "model") -> tuple[Interval, dict]:
        """The held-out balanced accuracy on a model's ``pieces`` (N, length), its interval
        and the critic's training figures (``name``: the model, for the progress bar and log).

        Raises:
            ValueError: fewer than 4 pieces, or pieces of another length (in tokens).
        """
        pieces = np.asarray(pieces, np.int64)
        if pieces.ndim != 2 or len(pieces) < 4 or pieces.shape[1] != self.length:
            raise ValueError(
                f"the critic test needs >= 4 pieces of {self.length // self.tokens_per_step} "
                f"steps ({self.length} tokens), got shape "
                f"{pieces.shape}"
            )
        return self._cached(Side.of_pieces(pieces, self.cfg.holdout, self.seed + 2), name)

    def sanity(self) -> tuple[Interval, dict]:
        """Real against real (the sanity half as "the model"): near 0.5 when the test is sound."""
        return self._cached(self.sanity_side, "held-out (sanity)")

    def key(self, fake: Side) -> str:
        """The cache key of a test against ``fake``: the rows of both sides, the settings, the
        seeds and the code (:mod:`rlmusic.evaluation.critic_test_cache`)."""
        if self._code is None:
            self._code = code_version()
        return cache_key(
            {
                "code": self._code,
                "settings": self.cfg.settings(),
                "vocab_size": self.vocab_size,
                "length": self.length,
                "seed": self.seed,
                "resamples": self.resamples,
                "confidence": self.confidence,
                "real": digest(self.real.fit, self.real.held, self.real.groups),
                "fake": digest(fake.fit, fake.held, fake.groups),
            }
        )

    def _cached(self, fake: Side, name: str) -> tuple[Interval, dict]:
        if self.cache is None:
            return self._test(fake, name)
        key = self.key(fake)
        hit = self.cache.get(key)
        if hit is not None:
            log.info("critic test, %s: %.3f, from the cache (%s)", name, hit[0].value, key)
            return hit
        result = self._test(fake, name)
        about = {"name": name, "fit": [len(self.real.fit), len(fake.fit)]}
        about["held"] = [len(self.real.held), len(fake.held)]
        self.cache.put(key, result[0], result[1], about)
        return result

    def _test(self, fake: Side, name: str = "model") -> tuple[Interval, dict]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a small CNN: handing work between threads costs more
        steps = self.cfg.steps
        nothing = np.zeros((0, self.length), np.int64)  # held-out rows: scored once, below
        try:
            with critic_bar(f"critic test: {name}", steps, self.progress):
                model, figures = train_discriminator(
                    self.real.fit,
                    fake.fit,
                    discriminator_config(
                        self.cfg, self.vocab_size, max(1, steps // 50) if self.progress else 0
                    ),
                    seed=self.seed,
                    valid=(nothing, nothing),
                )
            real_logits = score_all(model, torch.as_tensor(self.real.held))[:, -1].numpy()
            fake_logits = score_all(model, torch.as_tensor(fake.held))[:, -1].numpy()
        finally:
            torch.set_num_threads(threads)
        real_ok = (real_logits > 0).astype(np.float64)  # real windows called real
        fake_ok = (fake_logits <= 0).astype(np.float64)  # the model's pieces caught
        value = 0.5 * (real_ok.mean() + fake_ok.mean())
        w_real = bootstrap_weights(int(self.real.groups.max()) + 1, self.resamples, self.seed)
        w_fake = bootstrap_weights(int(fake.groups.max()) + 1, self.resamples, self.seed + 1)
        resampled = 0.5 * (
            _grouped_share(real_ok, self.real.groups, w_real)
            + _grouped_share(fake_ok, fake.groups, w_fake)
        )
        figures.update(
            accuracy_real=float(real_ok.mean()),
            accuracy_fake=float(fake_ok.mean()),
            balanced_accuracy=float(value),
            auc=binary_auc(
                np.concatenate([real_logits, fake_logits]),
                np.concatenate([np.ones(len(real_logits)), np.zeros(len(fake_logits))]),
            ),
            n_valid_real=len(real_logits),
            n_valid_fake=len(fake_logits),
        )
        log.info(
            "critic test, %s: %.3f (real called real %.3f, pieces caught %.3f, auc %.3f; %d "
            "steps in %.1f s)", name, value, figures["accuracy_real"], figures["accuracy_fake"],
            figures["auc"], figures["steps"], figures["time_s"],
        )  # fmt: skip
        return interval(float(value), resampled, self.confidence, (0.0, 1.0)), figures
