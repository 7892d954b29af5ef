"""``reward.targets``: rule targets that follow the run's music.

A reward's ``constraints`` (:mod:`rlmusic.algos.constraints`) hold rows in bands. The default
reward's bands (tonic starts 32-36%, leaps resolved 92.5-95.5%, notes in motif 42-46%) are RL
Tuner's targets for the folk corpus; on a slow Renaissance voice they paid for a busier,
folk-like line (docs/results/own_corpus.md). ``reward.targets`` says where the bands come from:

* ``published`` -- the reward's ``constraints`` as written;
* ``data`` -- each constrained row's band is the data's own rate, counted as ``rlmusic
  evaluate`` counts it (the table's code) on the ``length``-step openings of the train split
  (the split ``data.split_seed`` fixes, never the run's seed), plus and minus ``margin`` times
  the rate's room (:func:`band`); the rows named in ``also`` (default: onsets per piece, which
  the rules that pay per note push on) get a band the same way, their terms added to the rules
  when missing;
* ``auto`` (the presets) -- ``published`` when ``data.source`` is the corpus the published bands
  were set on (``published_on``), ``data`` otherwise.

:func:`resolve_targets` returns the reward config with its bands and a record of what was used
and why, which the run logs in one line and writes into ``tuned.safetensors``
(``info["targets"]``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from rlmusic.algos.constraints import STATISTIC_OF_TERM
from rlmusic.data.encodings import Encoding
from rlmusic.evaluation.table_rows import row_name, statistic_values, table_for
from rlmusic.rewards.base import RewardError
from rlmusic.rewards.statistics import KeySpec

log = logging.getLogger(__name__)

SOURCES = ("auto", "published", "data")
DEFAULT_MARGIN = 0.1


MIN_ROOM = 0.05  # a share at an edge (all of a folder's few leaps resolved) keeps some room


def band(rate: float, margin: float) -> dict[str, float]:
    """``{at_least, at_most}`` around a data rate: ``margin`` times its room either side.

    A share's room is its distance to the nearer end of [0, 1] (the constraints' unit of
    violation), at least :data:`MIN_ROOM`: a slow folder's openings resolve all of their few
    leaps, and a floor of 99.99% pinned the leap rule's multiplier at its cap for a whole run,
    paying for notes (docs/results/own_corpus.md). A rate above 1 (onsets per piece) is
    measured against itself. An end that would leave the statistic's range is dropped (a rule
    the data never breaks keeps only its ceiling).

    >>> band(0.22, 0.1)
    {'at_least': 0.198, 'at_most': 0.242}
    >>> band(3.0, 0.1)
    {'at_least': 2.7, 'at_most': 3.3}
    >>> band(1.0, 0.1), band(0.0, 0.1)
    ({'at_least': 0.995}, {'at_most': 0.005})
    """
    room = rate if rate > 1.0 else max(min(rate, 1.0 - rate), MIN_ROOM)
    low, high = rate - margin * room, rate + margin * room
    out: dict[str, float] = {}
    if low > 0.0:
        out["at_least"] = round(low, 6)
    if rate > 1.0 or high < 1.0:
        out["at_most"] = round(high, 6)
    return out


def _settings(reward_cfg: Mapping[str, Any]) -> dict[str, Any]:
    spec = dict(reward_cfg.get("targets") or {})
    unknown = set(spec) - {"source", "published_on", "margin", "also"}
    if unknown:
        raise RewardError(
            f"reward.targets: unknown keys {sorted(unknown)}; known: source, published_on, "
            "margin, also"
        )
    source = str(spec.get("source", "published"))
    if source not in SOURCES:
        raise RewardError(f"reward.targets.source={source!r}: give one of {', '.join(SOURCES)}")
    margin = float(spec.get("margin", DEFAULT_MARGIN))
    if not 0.0 < margin < 1.0:
        raise RewardError(f"reward.targets.margin={margin}: give a share of the room in (0, 1)")
    return {
        "source": source,
        "published_on": spec.get("published_on"),
        "margin": margin,
        "also": [str(t) for t in spec.get("also") or []],
    }


def _choose(settings: Mapping[str, Any], data_cfg: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(published | data, why)``."""
    if settings["source"] != "auto":
        return settings["source"], f"reward.targets.source={settings['source']}"
    if data_cfg is None:
        return "published", "no data config to count"
    source, home = str(data_cfg.get("source", "all")), settings["published_on"]
    if home is not None and source == str(home):
        return "published", f"data={source} is the corpus the published bands were set on"
    return "data", f"data={source}, the published bands were set on data={home}"


def data_rates(
    tunes: Sequence[np.ndarray], encoding: Encoding, key: KeySpec, steps: int
) -> tuple[dict[Any, float], int]:
    """Every constrainable statistic of the ``steps``-step openings of ``tunes`` (those at least
    that long), counted by the evaluation's table; and how many openings were counted."""
    tokens = encoding.tokens_for(steps)
    openings = [np.asarray(t[:tokens]) for t in tunes if len(t) >= tokens]
    if not openings:
        raise RewardError(
            f"reward.targets: no train tune is {steps} steps long, so the data has no rate to "
            "target: shorten length= or set reward.targets.source=published"
        )
    stats = table_for(encoding).count(openings, encoding, key)
    return statistic_values(stats), len(openings)


def resolve_targets(
    reward_cfg: Mapping[str, Any],
    data_cfg: Mapping[str, Any] | None,
    encoding: Encoding | Callable[[], Encoding],
    steps: int,
    train_tunes: Sequence[np.ndarray] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reward config with its constraints' bands from where ``reward.targets`` says, and a
    record of them (JSON-safe).

    Args:
        reward_cfg: a plain ``reward`` node.
        data_cfg: the run's ``data`` node (None: published).
        encoding: the start model's encoding (the table that counts), or a function that reads
            it (called only when the data is counted).
        steps: the run's ``length`` in time steps (openings of that many steps are counted).
        train_tunes: the train split's tunes (None: prepared from ``data_cfg``; tests pass
            their own).

    Raises:
        RewardError: a bad ``reward.targets`` value, a term in ``also`` with no statistic, or
            a data with no opening long enough.
    """
    reward_cfg = dict(reward_cfg)
    settings = _settings(reward_cfg)
    choice, why = _choose(settings, data_cfg)
    constraints = dict(reward_cfg.get("constraints") or {})
    if choice == "published":
        record = {"source": "published", "why": why, "constraints": constraints}
        if constraints:
            log.info("rule targets: the reward's published bands (%s)", why)
        return reward_cfg, record
    terms = list(constraints) + [t for t in settings["also"] if t not in constraints]
    for term in terms:
        if term not in STATISTIC_OF_TERM:
            raise RewardError(
                f"reward.targets.also: {term!r} has no statistic to band; known: "
                f"{', '.join(sorted(STATISTIC_OF_TERM))}"
            )
    if callable(encoding):
        encoding = encoding()
    if train_tunes is None:
        from rlmusic.data.sources import encoding_mismatch

        source = str((data_cfg or {}).get("source", "all"))
        mismatch = encoding_mismatch(source, getattr(encoding, "kind", "melody"))
        if mismatch:  # e.g. a chorale model run beside the default melody corpus
            log.warning("rule targets: the reward's published bands: %s", mismatch)
            why = f"{why}, but {mismatch.split(':')[0]}"
            return reward_cfg, {"source": "published", "why": why, "constraints": constraints}
        from rlmusic.data.prepare import prepare_corpus

        train_tunes = prepare_corpus(data_cfg or {}, encoding, progress=False).tunes("train")
    key = KeySpec(int(reward_cfg.get("tonic", 0)), str(reward_cfg.get("mode", "major")))
    values, counted = data_rates(train_tunes, encoding, key, steps)
    rates, bands = {}, {}
    for term in terms:
        statistic = STATISTIC_OF_TERM[term][0]
        rate = values.get(statistic, float("nan"))
        if not math.isfinite(rate):  # e.g. no leap in any opening: nothing to aim at
            log.warning(
                "rule targets: the data has no %s rate; %s is not held", row_name(statistic), term
            )
            continue
        rates[term], bands[term] = float(rate), band(float(rate), settings["margin"])
    rules = list(reward_cfg.get("rules") or [])
    added = [t for t in bands if t not in rules]
    reward_cfg["rules"] = rules + added
    reward_cfg["constraints"] = bands
    record = {
        "source": "data",
        "why": why,
        "split": "train",
        "openings": counted,
        "steps": int(steps),
        "margin": settings["margin"],
        "rates": rates,
        "constraints": bands,
        "added_terms": added,
    }
    log.info(
        "rule targets from the data (%s; %d train openings of %d steps, margin %g): %s%s",
        why,
        counted,
        steps,
        settings["margin"],
        ", ".join(
            f"{row_name(STATISTIC_OF_TERM[t][0])} {rates[t]:.4g} -> "
            + " .. ".join(f"{bands[t][k]:.4g}" for k in ("at_least", "at_most") if k in bands[t])
            for t in bands
        ),
        f" (terms added: {', '.join(added)})" if added else "",
    )
    return reward_cfg, record
