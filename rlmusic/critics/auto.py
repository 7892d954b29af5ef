"""``checkpoint: auto`` for a discriminator term: the realism critic follows the data.

The default reward's realism term (conf/reward/default.yaml) names ``checkpoint: auto``.
:func:`resolve_auto_critics` turns every ``auto`` into a concrete critic, given the run's
``data`` config and its start model:

* **shipped** -- ``pretrained:discriminator`` when ``data`` is the corpus it was trained on:
  its record's ``trained.real.data`` (``all``), read whole (no ``limit``, the default
  ``min_notes``, as scripts/build_discriminator.sh built it) and split as it was (the default
  ``split_seed`` and fractions: another split would hold out tunes it learnt). The start model does not enter
  this choice: realism is the data's, the shipped critic's runs (docs/finetuning.md) start from
  both shipped generators, and a folk model of one's own would otherwise retrain a folk critic.
* **cached** -- otherwise the discriminator trained on this data against this start model, kept
  in ``<data.cache_dir>/critics/<key>/`` (:mod:`rlmusic.critics.auto_cache`: the key digests the
  train split's tokens, the start model's weights, the encoding and
  :class:`~rlmusic.critics.auto_cache.AutoCriticSettings`).
* **trained** -- otherwise one is trained now when the caller asks (``train=True``: ``rlmusic
  finetune`` does) by :func:`rlmusic.critics.training.train_corpus_discriminator`, the code
  ``rlmusic train-critic critic=discriminator`` runs: real windows of the train split against
  the start model's samples, a fixed number of seeded steps; and cached under that key. Without
  ``train`` (``build_reward``: ``rlmusic compare``, scripts) a missing critic is an error that
  says how to get one.

Without a ``data`` config (``build_reward(cfg, encoding)`` alone) there is nothing to follow:
``auto`` is the shipped critic, with a warning naming it. Any other ``checkpoint`` is used as
given. Every choice is logged in one line (:meth:`CriticChoice.describe`) and returned as a
record (:meth:`CriticChoice.record`) for the run's tuned checkpoint.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlmusic.critics.auto_cache import (
    SETTINGS_KEY,
    AutoCriticSettings,
    cache_key,
    complete,
    critics_dir,
    model_identity,
    train_into,
    tunes_identity,
)
from rlmusic.critics.io import DEFAULT_NAME, read_critic_record
from rlmusic.rewards.base import RewardError

log = logging.getLogger(__name__)

AUTO = "auto"
SHIPPED = "pretrained:discriminator"
# the data keys that choose which tunes a corpus holds and which of them are its train split,
# as the shipped critic was built (scripts/build_discriminator.sh: data=all at
# conf/data/all.yaml's defaults)
# the corpus each shipped generator learnt (data.source): a start model on other data is warned of
PRETRAINED_SOURCES = {
    "pretrained:chorale_lstm": "chorales",
    "pretrained:chorale_transformer": "chorales",
    "pretrained:chorale_harmoniser": "chorales",
}
SHIPPED_DATA = {
    "path": None,
    "limit": None,
    "min_notes": 8,
    "split_seed": 0,
    "valid_fraction": 0.05,
    "test_fraction": 0.05,
}


@dataclass
class CriticChoice:
    """Which critic a discriminator term uses, and why.

    Attributes:
        term: the reward.extra name (``realism``).
        checkpoint: the spec the term loads.
        source: ``shipped`` | ``cached`` | ``trained`` | ``given`` (an explicit checkpoint).
        reason: why (for the log line).
        key: the cache key (cached / trained).
        metrics: the critic's validation figures (from its record).
        trained: what it was trained on and against (from its record).
        data: the data it follows (``all``, ``midi_dir:/folder``).
        wall_s: training time (trained only).
    """

    term: str
    checkpoint: str
    source: str
    reason: str = ""
    key: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    trained: dict[str, Any] = field(default_factory=dict)
    data: str | None = None
    wall_s: float | None = None

    def describe(self) -> str:
        """One log line: which critic, why, and how well it tells real from generated."""
        what = {
            "shipped": "the shipped",
            "cached": "cached",
            "trained": f"freshly trained ({self.wall_s:.1f} s)" if self.wall_s else "trained",
            "given": "as given",
        }[self.source]
        figures = ", ".join(
            f"{name} {self.metrics[name]:.3f}"
            for name in ("accuracy", "auc")
            if isinstance(self.metrics.get(name), (int, float))
        )
        against = ", ".join(self.trained.get("fake", {}).get("generators") or []) or "?"
        data = self.data or self.trained.get("real", {}).get("data", "?")
        return (
            f"reward.extra.{self.term}: {what} discriminator {self.checkpoint} (data={data} "
            f"against {against}; validation {figures or 'figures unknown'}){self.reason}"
        )

    def record(self) -> dict[str, Any]:
        """JSON-safe, for the tuned checkpoint's ``info["critics"]``."""
        keep = ("accuracy", "auc", "balanced_accuracy", "n_valid_real", "n_valid_fake", "steps")
        return {
            "checkpoint": self.checkpoint,
            "source": self.source,
            "key": self.key,
            "data": self.data or self.trained.get("real", {}).get("data"),
            "against": self.trained.get("fake", {}).get("generators"),
            "metrics": {k: self.metrics[k] for k in keep if k in self.metrics},
            "wall_s": self.wall_s,
        }


def shipped_fits(data: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``data`` is the corpus the shipped discriminator was trained on, and why not."""
    record = read_critic_record(SHIPPED, "discriminator")
    corpus = str(record.get("trained", {}).get("real", {}).get("data"))
    source = str(data.get("source", "all"))
    if source != corpus:
        return False, f"data={source}, the shipped critic learnt data={corpus}"
    for key, value in SHIPPED_DATA.items():
        if data.get(key, value) != value:
            return False, f"data.{key}={data.get(key)}, the shipped critic read {key}={value}"
    return True, ""


# ---- resolution --------------------------------------------------------------------------------
def _choice_from(term: str, checkpoint: str, source: str, **extra: Any) -> CriticChoice:
    record = read_critic_record(checkpoint, "discriminator")
    return CriticChoice(
        term,
        checkpoint,
        source,
        metrics=dict(record.get("metrics") or {}),
        trained=dict(record.get("trained") or {}),
        **extra,
    )


def describe_data(data: Mapping[str, Any]) -> str:
    """``all``, ``essen``, ``midi_dir:/folder``."""
    source = str(data.get("source", "all"))
    return f"{source}:{data.get('path')}" if data.get("path") else source


def resolve_discriminator(
    term: str,
    data: Mapping[str, Any],
    start: str | None,
    settings: AutoCriticSettings | None = None,
    device: str = "cpu",
    train: bool = False,
) -> CriticChoice:
    """The critic ``checkpoint: auto`` means for ``data`` and the start model ``start``.

    Args:
        term: the reward.extra name (for messages and the record).
        data: the data config (``source``, ``path``, ``split_seed`` (the split), ``cache_dir``,
            ...).
        start: the start model's spec: the generated side of a trained critic (the corpus is
            read in its encoding); needed unless the shipped critic fits.
        settings: how a critic trains (None: :class:`AutoCriticSettings`'s defaults).
        device: where it trains (``auto``, ``cpu``, ``cuda``, ...).
        train: train a missing critic (and cache it); False makes a missing one an error.

    Raises:
        RewardError: no start model to train against, or no critic for this data and start
            model yet and ``train`` is False.
    """
    fits, why = shipped_fits(data)
    if fits:
        return _choice_from(
            term, SHIPPED, "shipped", reason=" -- it learnt this data", data=describe_data(data)
        )
    from rlmusic.data.prepare import prepare_corpus
    from rlmusic.models import load_generator
    from rlmusic.runtime import resolve_device

    if start is None:
        raise RewardError(
            f"reward.extra.{term}.checkpoint=auto on data={describe_data(data)} needs the start "
            "model (the generated side of a critic trained on the data); give start_checkpoint"
        )
    learnt = PRETRAINED_SOURCES.get(start, "all")
    if start.startswith("pretrained:") and str(data.get("source")) != learnt:
        log.warning(
            "the start model %s learnt the shipped corpus, not data=%s: for music like your "
            "data, pretrain on it first (rlmusic pretrain data=... , then checkpoint=<that run>)",
            start, describe_data(data),
        )  # fmt: skip
    settings = settings or AutoCriticSettings()
    generator, encoding = load_generator(start)
    corpus = prepare_corpus(data, encoding, progress=False)
    tunes = corpus.tunes("train")
    if not tunes:
        raise RewardError(f"reward.extra.{term}: the data's train split is empty")
    key = cache_key(tunes_identity(tunes), model_identity(generator), encoding, settings)
    folder = critics_dir(data) / key
    reason, where = f" -- {why}", describe_data(data)
    if complete(folder):
        return _choice_from(
            term, str(folder / DEFAULT_NAME), "cached", reason=reason, key=key, data=where
        )
    if not train:
        raise RewardError(
            f"reward.extra.{term}.checkpoint=auto: no discriminator trained on data={where} "
            f"against {start} yet ({why}). "
            f"`rlmusic finetune checkpoint={start}` with this data trains and caches one "
            f"({folder}); or name a critic: reward.extra.{term}.checkpoint=<file or "
            "train-critic run folder>"
        )
    log.info(
        "reward.extra.%s: training a discriminator on %d train tunes of data=%s against %s "
        "(%d steps; cached as %s)",
        term, len(tunes), where, start, settings.steps, folder,
    )  # fmt: skip
    wall = train_into(folder, corpus, data, start, settings, resolve_device(device))
    return _choice_from(
        term, str(folder / DEFAULT_NAME), "trained", reason=reason, key=key, data=where, wall_s=wall
    )


def resolve_auto_critics(
    reward_cfg: Mapping[str, Any],
    data: Mapping[str, Any] | None,
    start: str | None,
    device: str = "cpu",
    train: bool = False,
) -> tuple[dict[str, Any], list[CriticChoice]]:
    """Every discriminator term of ``reward_cfg.extra``, its checkpoint made concrete
    (:func:`resolve_discriminator`; ``train``: train and cache a missing ``auto`` critic).

    Returns:
        A copy of ``reward_cfg`` whose ``auto`` checkpoints are paths or specs (and without the
        terms' ``auto`` settings), and one :class:`CriticChoice` per discriminator term, each
        logged.
    """
    cfg = copy.deepcopy(dict(reward_cfg))
    choices = []
    for name, spec in (cfg.get("extra") or {}).items():
        if not isinstance(spec, dict) or spec.get("name") != "discriminator":
            continue
        settings = spec.pop(SETTINGS_KEY, None)
        checkpoint = spec.get("checkpoint")
        if checkpoint != AUTO:
            if settings is not None:
                log.warning(
                    "reward.extra.%s.%s is ignored: the checkpoint is given (%s)",
                    name, SETTINGS_KEY, checkpoint,
                )  # fmt: skip
            if checkpoint:  # a missing or foreign file fails here, by name
                choice = _choice_from(name, str(checkpoint), "given")
                log.info("%s", choice.describe())
                choices.append(choice)
            continue
        if data is None:
            choice = _choice_from(name, SHIPPED, "shipped", reason=" -- no data config given")
            log.warning(
                "%s: checkpoint=auto follows the data, and none was given here; pass data "
                "(build_reward(..., data=cfg.data)) or name a critic",
                choice.describe(),
            )
        else:
            choice = resolve_discriminator(
                name,
                data,
                start,
                AutoCriticSettings.from_spec(settings),
                device,
                train,
            )
            log.info("%s", choice.describe())
        spec["checkpoint"] = choice.checkpoint
        choices.append(choice)
    return cfg, choices
