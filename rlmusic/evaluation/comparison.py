"""Compare columns of compositions: every metric with a seeded bootstrap 95% interval.

Per column (a generator's seeded samples, a MIDI folder, held-out melodies), in sections:

* **RL Tuner statistics** — :class:`rlmusic.rewards.statistics.CompositionStats`' table rows,
  counted as the original counted them, and onsets per composition; for four-part pieces the
  **voice leading** table instead (:mod:`rlmusic.rewards.harmony_statistics`), the encoding's
  kind picking it (:func:`rlmusic.evaluation.table_rows.table_for`);
* **reward** — the mean per composition of every weighted term of the reward composite
  (``build_reward(cfg.reward).score``: each term's share summed over the piece) and the total;
* **prior** — ``log p`` per onset and per token under the prior, and KL(model || prior) per
  token (``mean(log pi - log p_prior)`` over the model's own samples: generators only);
* **diversity** — :mod:`rlmusic.evaluation.diversity`;
* **realism vs held-out** — L1 distances of the interval, pitch-class and duration histograms
  (:mod:`rlmusic.evaluation.realism`), Yang & Lerch's overlap areas
  (:mod:`rlmusic.evaluation.overlap`) and the two-sample critic test
  (:mod:`rlmusic.evaluation.two_sample_critic`).

Intervals resample compositions (:mod:`rlmusic.evaluation.bootstrap`) with one seed for every
column, so columns of equal size are resampled alike. Two columns' values of a metric are
*separated* when their intervals do not overlap.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.harmonisation import harmoniser_reading
from rlmusic.evaluation.bootstrap import (
    Interval,
    bootstrap_weights,
    estimate,
    evaluate,
    interval,
    mean_of,
    ratio_of_sums,
)
from rlmusic.evaluation.columns import Column
from rlmusic.evaluation.diversity import (
    distinct_ngram_terms,
    distinct_share_terms,
    pitch_class_entropies,
)
from rlmusic.evaluation.model_eval import prior_log_probs
from rlmusic.evaluation.overlap import overlap_statistic, piece_features
from rlmusic.evaluation.progress import stage
from rlmusic.evaluation.realism import HISTOGRAMS, histogram_l1, normalised, per_piece_counts
from rlmusic.evaluation.table_rows import table_for, table_intervals
from rlmusic.evaluation.two_sample_critic import CriticTest, CriticTestConfig
from rlmusic.rewards.statistics import KeySpec

log = logging.getLogger(__name__)

TABLE, REWARD, PRIOR, DIVERSITY, REALISM = (
    "RL Tuner statistics",
    "reward (per composition)",
    "prior",
    "diversity",
    "realism vs held-out",
)
Metrics = dict[str, dict[str, Interval]]  # section -> metric -> interval


@dataclass
class CompareSettings:
    """How the metrics are measured (``compare.yaml``'s ``bootstrap``, ``diversity``,
    ``overlap`` and ``critic`` nodes)."""

    seed: int = 0
    resamples: int = 1000
    confidence: float = 0.95
    ngram: int = 4
    overlap_distances: int = 2000
    critic: CriticTestConfig | None = field(default_factory=CriticTestConfig)  # None: skip
    key: KeySpec = field(default_factory=KeySpec)


@dataclass
class ColumnResult:
    """One column's numbers: ``metrics[section][metric]``, its pooled histograms, timings."""

    name: str
    spec: str
    kind: str
    n: int
    metrics: Metrics
    histograms: dict[str, np.ndarray]
    seconds: dict[str, float]


def _per_composition(values: np.ndarray, weights: np.ndarray, confidence: float) -> Interval:
    return estimate(mean_of(values), weights, confidence)


def reward_metrics(
    tokens: np.ndarray, reward, weights: np.ndarray, confidence: float
) -> dict[str, Interval]:
    """Mean per composition of each weighted reward term (its share summed over the piece)
    and of the total."""
    total, shares = reward.score(tokens)
    out = {name: _per_composition(v.sum(axis=1), weights, confidence) for name, v in shares.items()}
    out["total"] = _per_composition(total.sum(axis=1), weights, confidence)
    return out


def prior_metrics(
    column: Column,
    prior,
    encoding: MelodyEncoding,
    weights: np.ndarray,
    confidence: float,
    harmonising: bool = False,
) -> dict[str, Interval]:
    """``log p`` per onset (a ratio of sums over the onsets) and per token under the prior;
    KL(model || prior) per token when the column's own ``log pi`` is known. ``harmonising``:
    the prior is a harmoniser; it reads each piece's soprano first, and every figure averages
    over the alto, tenor and bass (the voices it chose; a real piece's given his soprano)."""
    prefix, chosen = harmoniser_reading(column.tokens, encoding, harmonising)
    log_p = prior_log_probs(prior, column.tokens, prefix=prefix)  # (N, T)
    onsets = encoding.is_onset(column.tokens) & chosen
    out = {
        "log p per onset": estimate(
            ratio_of_sums((log_p * onsets).sum(1), onsets.sum(1)), weights, confidence
        ),
        "log p per token": _per_composition(
            (log_p * chosen).sum(1) / chosen.sum(1), weights, confidence
        ),
    }
    if column.log_probs is not None:
        kl = ((column.log_probs - log_p) * chosen).sum(1) / chosen.sum(1)
        out["KL(model || prior) per token"] = _per_composition(kl, weights, confidence)
    return out


def diversity_metrics(
    tokens: np.ndarray, encoding: MelodyEncoding, ngram: int, weights: np.ndarray, confidence: float
) -> dict[str, Interval]:
    """Distinct share, distinct n-grams of onset pitches, mean pitch-class entropy (bits)."""
    entropies = pitch_class_entropies(tokens, encoding)
    has_onsets = ~np.isnan(entropies)
    return {
        "distinct share": estimate(
            mean_of(distinct_share_terms(tokens)), weights, confidence, (0.0, 1.0)
        ),
        f"distinct {ngram}-grams": estimate(
            ratio_of_sums(*distinct_ngram_terms(tokens, encoding, ngram)),
            weights,
            confidence,
            (0.0, 1.0),
        ),
        "pitch-class entropy (bits)": estimate(
            ratio_of_sums(np.where(has_onsets, entropies, 0.0), has_onsets), weights, confidence
        ),
    }


def realism_metrics(
    tokens: np.ndarray,
    reference: np.ndarray,
    encoding: MelodyEncoding,
    settings: CompareSettings,
    weights: np.ndarray,
) -> dict[str, Interval]:
    """Histogram L1s and overlap areas (one per feature and their mean)."""
    c = settings.confidence
    out = {
        f"{name} L1": estimate(
            histogram_l1(per_piece_counts(tokens, encoding, counter), counter(reference, encoding)),
            weights,
            c,
            bounds=(0.0, 2.0),
        )
        for name, counter in HISTOGRAMS.items()
    }
    ours, theirs = piece_features(tokens, encoding), piece_features(reference, encoding)
    areas = {}
    for i, name in enumerate(ours):
        rng = np.random.default_rng([settings.seed, i])  # the same real pairs for every column
        statistic = overlap_statistic(ours[name], theirs[name], rng, settings.overlap_distances)
        areas[name] = evaluate(statistic, weights)
        out[f"overlap: {name}"] = interval(*areas[name], c, bounds=(0.0, 1.0))
    out["overlap area (mean)"] = interval(
        float(np.mean([value for value, _ in areas.values()])),
        np.mean([resampled for _, resampled in areas.values()], axis=0),
        c,
        bounds=(0.0, 1.0),
    )
    return out


def measure_column(
    column: Column,
    encoding: MelodyEncoding,
    settings: CompareSettings,
    reward=None,
    prior=None,
    reference: np.ndarray | None = None,
    critic: CriticTest | None = None,
    progress: bool = False,
    harmonising: bool = False,
) -> ColumnResult:
    """Every metric of one column (a section is left out when its input is None; the critic
    test scores ``column.critic_tokens``, and is left out for a column without them).
    ``progress``: say on stderr what it measures and for how long (:mod:`...progress`)."""
    tokens = column.tokens
    weights = bootstrap_weights(len(tokens), settings.resamples, settings.seed)
    c = settings.confidence
    seconds: dict[str, float] = {"load": column.seconds}
    metrics: Metrics = {}

    def timed(section: str, compute) -> None:
        started = time.perf_counter()
        metrics[section] = compute()
        seconds[section] = time.perf_counter() - started

    table = table_for(encoding)
    with stage(f"column {column.name}: statistics, reward, prior, realism", enabled=progress):
        timed(
            table.section,
            lambda: table_intervals(table.per_piece(tokens, encoding, settings.key), weights, c),
        )
        if reward is not None:
            timed(REWARD, lambda: reward_metrics(tokens, reward, weights, c))
        if prior is not None:
            timed(PRIOR, lambda: prior_metrics(column, prior, encoding, weights, c, harmonising))
        timed(DIVERSITY, lambda: diversity_metrics(tokens, encoding, settings.ngram, weights, c))
        if reference is not None and len(reference) >= 2:
            timed(REALISM, lambda: realism_metrics(tokens, reference, encoding, settings, weights))
    if critic is not None and column.critic_tokens is not None:
        started = time.perf_counter()
        accuracy = critic.accuracy(column.critic_tokens, column.name)[0]
        metrics.setdefault(REALISM, {})["critic accuracy"] = accuracy
        seconds["critic"] = time.perf_counter() - started
    histograms = {
        name: normalised(counter(tokens, encoding)) for name, counter in HISTOGRAMS.items()
    }
    log.info("%s: measured in %.1f s", column.name, sum(seconds.values()) - column.seconds)
    return ColumnResult(
        column.name, column.spec, column.kind, len(tokens), metrics, histograms, seconds
    )


def separated_pairs(results: list[ColumnResult]) -> list[dict[str, str]]:
    """Every (section, metric, column a, column b) whose two intervals do not overlap."""
    found = []
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            for section, rows in a.metrics.items():
                for metric, mine in rows.items():
                    other = b.metrics.get(section, {}).get(metric)
                    if other is not None and not mine.overlaps(other):
                        found.append(
                            {"section": section, "metric": metric, "a": a.name, "b": b.name}
                        )
    return found
