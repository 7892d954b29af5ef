"""`rlmusic compare`: models side by side, every metric with a bootstrap interval, in a report.

``rlmusic compare models.supervised=pretrained:note_lstm models.tuned=outputs/finetune/x
models.real=heldout n=1000 length=32 seed=0 out=DIR`` measures each column on the same seed
and length (:mod:`rlmusic.evaluation.comparison`; specs: :mod:`rlmusic.evaluation.columns`)
against the openings of the corpus test split (``data.split_seed``'s: ``seed`` draws the pieces,
never which tunes are held out, nor which of them are the reference and which the ``heldout``
column or the critic test's sides), and writes into ``DIR`` (default: the Hydra run folder):

* ``metrics.json`` (its ``settings.data_split``: the held-out split,
  :func:`rlmusic.data.split.split_record`), ``report.md`` and a self-contained ``report.html``
  (:mod:`...report`);
* ``img/`` (the charts), ``samples/`` (MIDI of the ``k`` shown pieces per column),
  ``audio/`` (their WAV files, unless ``audio=false``) and ``tokens.npz`` (every column's
  compositions).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlmusic.config.preflight import reward_preset
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.io import save_midi
from rlmusic.evaluation import audio, plots
from rlmusic.evaluation.bootstrap import Interval
from rlmusic.evaluation.columns import (
    GENERATOR,
    HELDOUT,
    Column,
    load_column,
    soprano_conditions,
    spec_kind,
    split_heldout,
)
from rlmusic.evaluation.comparison import (
    REALISM,
    ColumnResult,
    CompareSettings,
    measure_column,
    separated_pairs,
)
from rlmusic.evaluation.critic_test_cache import CriticTestCache
from rlmusic.evaluation.objective import held_out
from rlmusic.evaluation.progress import stage
from rlmusic.evaluation.realism import BIN_LABELS, HISTOGRAMS, normalised
from rlmusic.evaluation.report import Report, Sample, write_report
from rlmusic.evaluation.two_sample_critic import POWER, SANITY, CriticTest, CriticTestConfig
from rlmusic.models.conditions import Conditions
from rlmusic.models.registry import judging_prior, load_generator
from rlmusic.models.sampling import sample_seeded
from rlmusic.rewards.build import build_reward
from rlmusic.rewards.statistics import KeySpec
from rlmusic.runtime import resolve_device, run_folder

log = logging.getLogger(__name__)


@dataclass
class CompareResult:
    """What the task returns: ``metrics["<model>/<metric>"]`` (point values), the columns'
    results and the files written."""

    metrics: dict[str, float]
    results: list[ColumnResult]
    paths: dict[str, Path] = field(default_factory=dict)


def slug(name: str) -> str:
    """A file-name-safe form of a model name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"


def settings_from(cfg: DictConfig) -> CompareSettings:
    critic = OmegaConf.to_container(cfg.critic, resolve=True) if cfg.get("critic") else None
    enabled = bool(critic.pop("enabled", True)) if critic else False
    return CompareSettings(
        seed=int(cfg.seed),
        resamples=int(cfg.bootstrap.resamples),
        confidence=float(cfg.bootstrap.confidence),
        ngram=int(cfg.diversity.ngram),
        overlap_distances=int(cfg.overlap.distances),
        critic=CriticTestConfig(**critic) if enabled else None,
        key=KeySpec(int(cfg.reward.tonic), str(cfg.reward.mode))
        if cfg.get("reward")
        else KeySpec(),
    )


def shown_samples(
    columns: list[Column],
    encoding: MelodyEncoding,
    out: Path,
    k: int,
    renderer: audio.Renderer | None,
    cfg,
) -> dict[str, list[Sample]]:
    """The first ``k`` pieces of each column: MIDI, WAV (unless ``renderer`` is None), roll."""
    (out / "samples").mkdir(parents=True, exist_ok=True)
    shown: dict[str, list[Sample]] = {}
    for index, column in enumerate(columns):
        shown[column.name] = []
        for i, tokens in enumerate(column.tokens[:k]):
            sample_id = f"{slug(column.name)}_{i:03d}"
            save_midi(tokens, out / "samples" / f"{sample_id}.mid", encoding, qpm=float(cfg.qpm))
            wav = None
            if renderer is not None:
                wav = f"audio/{sample_id}.wav"
                renderer.render_wav(tokens, out / wav, encoding, float(cfg.qpm))
            roll = plots.piano_roll(tokens, encoding, plots.colour(index))
            shown[column.name].append(Sample(sample_id, f"samples/{sample_id}.mid", wav, roll))
    return shown


def charts(
    results: list[ColumnResult], reference_histograms: dict[str, np.ndarray]
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(section -> bar chart PNG, histogram name -> overlay PNG)."""
    names = [r.name for r in results]
    sections: dict[str, dict[str, dict]] = {}
    for r in results:
        for section, metrics in r.metrics.items():
            for metric, interval in metrics.items():
                sections.setdefault(section, {}).setdefault(metric, {})[r.name] = interval
    bars = {section: plots.interval_bars(rows, names) for section, rows in sections.items()}
    hists = {
        name: plots.histogram_overlays(
            name,
            BIN_LABELS[name],
            {r.name: r.histograms[name] for r in results},
            reference_histograms[name],
            names,
        )  # fmt: skip
        for name in HISTOGRAMS
    }
    return bars, hists


def critic_checks(
    critic: CriticTest | None,
    columns: list[Column],
    results: list[ColumnResult],
    prior,
    prior_spec: str,
    length: int,
    seed: int,
    conditions: Conditions | None = None,
) -> dict[str, Interval]:
    """The critic test's own rows: its sanity (real against real, ~0.5 when sound) and its
    power (the prior, the supervised model, against real: what a tuned model is judged
    beside). A column that is the prior lends its figure (the same pieces, the same critic).
    ``length`` counts tokens here (the pieces the critic reads); ``conditions``: a harmoniser
    prior's sopranos."""
    if critic is None:
        return {}
    rows = {SANITY: critic.sanity()[0]}
    for column, result in zip(columns, results):
        if column.spec == prior_spec and "critic accuracy" in result.metrics.get(REALISM, {}):
            rows[POWER] = result.metrics[REALISM]["critic accuracy"]
            break
    else:
        with stage(f"sampling the prior: {critic.cfg.samples} pieces"):
            pieces = sample_seeded(
                prior, critic.cfg.samples, length, seed + 1, conditions=conditions
            )[0]
        rows[POWER] = critic.accuracy(pieces, "prior")[0]
    for name, row in rows.items():
        log.info("%s: %.3f (%.3f-%.3f)", name, row.value, row.low, row.high)
    return rows


def run(cfg: DictConfig) -> CompareResult:
    """Compare ``cfg.models`` per ``cfg`` (conf/compare.yaml) and write the report."""
    started = time.perf_counter()
    models = {str(k): str(v) for k, v in (cfg.get("models") or {}).items()}
    if not models:
        raise ValueError("no models to compare: give models.NAME=SPEC (at least one)")
    n, seed = int(cfg.n), int(cfg.seed)
    # prior: null judges every column under the first model's own supervised model
    generators = [s for s in models.values() if spec_kind(s)[0] == GENERATOR]
    if not cfg.get("prior") and not generators:
        raise ValueError("prior=null needs a generator among the models: give prior=SPEC")
    prior_spec = str(cfg.prior) if cfg.get("prior") else judging_prior(generators[0])
    log.info("prior (judges log p and KL): %s", prior_spec)
    prior, encoding = load_generator(prior_spec)
    # length: null is the encoding's own piece (32 steps for a melody, 64 for a chorale)
    length = int(cfg.length) if cfg.get("length") else int(encoding.melody_length)
    if n < 2 or length < 2:
        raise ValueError(f"need n >= 2 and length >= 2, got n={n}, length={length}")
    renderer = audio.from_cfg(cfg) if cfg.audio else None
    out = run_folder(cfg.get("out"), fallback="outputs/compare")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    # the prior and the reward score numpy tokens on the CPU (a second or so for 1,000 pieces)
    wants_heldout = any(spec_kind(spec)[0] == HELDOUT for spec in models.values())
    with stage("held-out tunes (the corpus's test split)"):
        held = held_out(cfg, encoding)
    size = encoding.tokens_for(length)  # tokens a piece: length counts time steps
    reference, pool = split_heldout(held.openings(size), held.split_seed, n if wants_heldout else 0)
    log.info("held-out melodies: %d as the reference, %d as a column", len(reference), len(pool))
    # a preset's prior "start" (the model a run starts from) is the comparison's prior here
    with stage("the reward"):
        reward = (
            build_reward(
                cfg.reward,
                encoding,
                start_checkpoint=prior_spec,
                # an auto critic follows the data for a kind the shipped critic does not read
                # (the one `rlmusic finetune` trained and cached); melodies keep the shipped one
                data=cfg.data if encoding.kind != "melody" else None,
            )
            if cfg.get("reward")
            else None
        )
    settings = settings_from(cfg)
    critic_samples = settings.critic.samples if settings.critic else 0
    # harmonisers harmonise the reference openings' sopranos: every column the same ones
    conditions = soprano_conditions([*generators, prior_spec], reference, encoding, "compare")
    columns = []
    for name, spec in models.items():
        with stage(f"column {name}: its pieces"):
            columns.append(
                load_column(
                    name,
                    spec,
                    n,
                    length,
                    seed,
                    encoding,
                    pool,
                    device,
                    critic_samples,
                    conditions,
                )  # fmt: skip
            )
    critic = None
    if settings.critic is not None:
        cache = CriticTestCache.under(cfg.data.get("cache_dir")) if settings.critic.cache else None
        critic = CriticTest(
            held.tunes, encoding.vocab_size, size, settings.critic, seed, settings.resamples,
            settings.confidence, split_seed=held.split_seed, encoding=encoding, cache=cache,
            progress=True,
        )  # fmt: skip
    results = [
        measure_column(
            c,
            encoding,
            settings,
            reward,
            prior,
            reference,
            critic,
            progress=True,
            harmonising=conditions is not None,
        )  # fmt: skip
        for c in columns
    ]
    critic_rows = critic_checks(critic, columns, results, prior, prior_spec, size, seed, conditions)
    np.savez_compressed(out / "tokens.npz", **{c.name: c.tokens for c in columns})
    reference_histograms = {k: normalised(f(reference, encoding)) for k, f in HISTOGRAMS.items()}
    with stage("charts, piano rolls and audio"):
        bars, hists = charts(results, reference_histograms)
        shown = shown_samples(columns, encoding, out, int(cfg.k), renderer, cfg)
    report = Report(
        results=results,
        critic_checks=critic_rows,
        separated=separated_pairs(results),
        settings={
            "n": n,
            "length": length,
            "seed": seed,
            "prior": prior_spec,
            "reward": reward_preset() if reward is not None else None,
            "resamples": settings.resamples,
            "confidence": settings.confidence,
            "ngram": settings.ngram,
            # the critic's size as it ran (null sizes filled by the kind), or None: no test
            "critic": critic.cfg.settings() if critic is not None else None,
            "models": models,
            "data_split": held.record,
        },  # fmt: skip
        reference_n=len(reference),
        reference_histograms=reference_histograms,
        synth=renderer.describe(encoding) if renderer else None,
        bar_charts=bars,
        histogram_charts=hists,
        samples=shown,
    )
    report.seconds = time.perf_counter() - started
    paths = write_report(report, out)
    print(f"report: {paths['html']}")
    metrics = {
        f"{r.name}/{metric}": interval.value
        for r in results
        for rows in r.metrics.values()
        for metric, interval in rows.items()
    }
    metrics.update({f"critic/{name}": row.value for name, row in critic_rows.items()})
    return CompareResult(metrics, results, paths)
