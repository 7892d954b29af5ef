"""`rlmusic finetune`: RL fine-tuning of a generator checkpoint against a reward.

The task builds the setup (:func:`rlmusic.algos.finetune_setup.build_setup`: start model, task reward,
reference prior, device, seed, length, run folder), checks a resumed run's config against the
saved one, and hands the setup to the configured algorithm's ``train(setup, algo_cfg)``
(``algo=batched | ppo | rl_tuner``). A run folder that holds a run continues it exactly.

First the reward's discriminator terms get their critic (:mod:`rlmusic.critics.auto`): the
default reward's ``checkpoint: auto`` is the shipped critic on the corpus it learnt, else the
one trained on ``data`` against the start model, trained now
(:func:`rlmusic.critics.training.train_corpus_discriminator`, ``rlmusic train-critic``'s code)
if no earlier run cached it. It learns the train split of ``data.split_seed``, which the
run's seed does not move (:mod:`rlmusic.data.split`), so the critic, refreshed or not, never
saw the tunes the run is scored on, and runs of other seeds share it. The log names the critic,
and the setup carries its record (``FinetuneSetup.critics``), so the one write of the tuned
checkpoint records it (``info["critics"]``) beside the KL reference (``info["reference"]``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from rlmusic.algos import get_config_class, get_train, resumable_algo_keys
from rlmusic.algos.data_targets import resolve_targets
from rlmusic.algos.finetune_setup import FinetuneResult, FinetuneSetup, build_setup
from rlmusic.algos.settings import node_schema, read_config
from rlmusic.config import ConfigError, validate_config
from rlmusic.config.preflight import MetricNames, preflight, reward_preset
from rlmusic.config.resume import check_resumed_config
from rlmusic.critics.auto import resolve_auto_critics
from rlmusic.evaluation.checks import REFERENCE_LOGP_METRIC
from rlmusic.evaluation.objective import (
    CRITIC_METRIC,
    EVAL_PREFIX,
    SHORT_NAMES,
    final_evaluation,
    metric_name,
)
from rlmusic.evaluation.table_rows import TABLES
from rlmusic.models.registry import checkpoint_encoding
from rlmusic.runtime import run_folder

log = logging.getLogger(__name__)

# Keys a resumed run may change: budgets, logging and save intervals, where it runs.
RESUMABLE_KEYS = (
    "time_s",
    "n_samples",
    "device",
    "threads",
    "allow_config_change",
    "objective",
    "objective_direction",
    "final_eval",
    "data.workers",
    "data.timeout_s",
    "data.cache_dir",
    *resumable_algo_keys(),  # the algo keys each config class marks resumable
)

# What every algorithm reports as final/<name> besides final/reward/<term>
# (rlmusic.algos.outputs.policy_statistics; tests/test_finetune_contract.py holds them equal)
FINAL_STATISTICS = (
    "reward/total",
    "kl/prior_per_token",
    "policy/log_prior_per_token",
    "policy/entropy",
    "policy/distinct_share",
    "policy/onsets_per_piece",
)
# The namespaces of what an algorithm logs per iteration (its last values stay in the result):
# names the algorithm and its hooks decide (losses/td, constraint/tonic/multiplier, ...)
LOGGED_NAMESPACES = (
    "kl/",
    "policy/",
    "losses/",
    "charts/",
    "rollout/",
    "replay/",
    "constraint/",
    "critic/",
)


def task_reward_terms(reward: Any) -> list[str]:
    """The terms of the task reward :func:`~rlmusic.algos.finetune_setup.build_setup` builds from a
    ``reward`` node: the rules, then the extra terms (the prior is the KL reference, no term)."""
    return [str(r) for r in reward.get("rules") or []] + [str(k) for k in reward.get("extra") or {}]


def eval_metric_names() -> frozenset[str]:
    """Every ``eval/*`` metric of the end-of-run evaluation (:mod:`rlmusic.evaluation.objective`):
    every statistics table (RL Tuner's with its variants; the voice-leading table), the realism rows, the start model's log p and the critic
    test."""
    rows = {
        metric_name(row)
        for table in TABLES.values()  # every kind of music's table: the checkpoint decides
        for row in table.statistic
    }
    realism = {EVAL_PREFIX + short for short in SHORT_NAMES.values()}
    return frozenset(rows | realism | {REFERENCE_LOGP_METRIC, CRITIC_METRIC})


def metric_names(cfg: Any) -> MetricNames:
    """The metrics a run of ``cfg`` returns, as ``objective=`` may name them: ``final/*`` (every
    algorithm, :data:`FINAL_STATISTICS` and ``final/reward/<term>`` of the configured terms),
    ``eval/*`` (the end-of-run evaluation, on whenever the objective is one), and the last
    logged ``reward/<term>`` and :data:`LOGGED_NAMESPACES` values."""
    rewards = {"reward/total", *(f"reward/{term}" for term in task_reward_terms(cfg["reward"]))}
    final = {f"final/{name}" for name in (*FINAL_STATISTICS, *rewards)}
    # rl_tuner logs the reward it learns from and its terms: the task's and the prior's
    logged = rewards | {"reward/learning", "reward/prior"}
    return MetricNames(
        frozenset(final | eval_metric_names() | logged),
        dict.fromkeys(LOGGED_NAMESPACES),
    )


def _tokens_per_step(spec: str) -> int:
    """Tokens per time step of the start checkpoint's encoding (1 for a melody, 4 for a
    chorale); 1 when it cannot be read here (the setup reports that checkpoint's error)."""
    from rlmusic.models.checkpoint import CheckpointError
    from rlmusic.models.registry import checkpoint_encoding

    try:
        return int(checkpoint_encoding(spec).tokens_per_step)
    except (CheckpointError, OSError, ValueError, KeyError):
        return 1


def log_reward_choice(algo: str) -> str | None:
    """Say at start which ``reward=`` preset runs, and who chose it: a user who changes
    ``algo=`` may get another reward than the default (an algorithm's group picks the one its
    settings were measured on). Returns the line (None outside Hydra's main)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    preset = reward_preset()
    given = any(o.lstrip("+~").split("=")[0] == "reward" for o in hydra_cfg.overrides.task)
    experiment = hydra_cfg.runtime.choices.get("experiment")
    if given:
        why = "given on the command line"
    elif experiment:
        why = f"experiment={experiment}'s"
    elif preset == "default":
        why = "the default"
    else:
        why = (
            f"chosen by conf/algo/{algo}.yaml: its settings meet the music checks on it and "
            "not on the banded default (docs/results/finetuning.md); reward=default gives the "
            "default's bands"
        )
    line = f"reward={preset} ({why})"
    log.info(line)
    return line


# the reward keys a learner may run at its own values (reward.by_algo.<algo>)
LEARNER_KEYS = ("c", "constraints", "constraint_max")


def learner_reward(reward_cfg: dict[str, Any], algo: str) -> dict[str, Any]:
    """``reward_cfg`` with the keys ``reward.by_algo[algo]`` gives that learner in place of its
    own: the scale and the bands at which that learner's settings (its KL weight, its noisier
    final policy) meet the checks. Each key replaces the reward's whole value; the log says
    which."""
    own = dict((reward_cfg.get("by_algo") or {}).get(algo) or {})
    if not own:
        return reward_cfg
    unknown = sorted(set(own) - set(LEARNER_KEYS))
    if unknown:
        raise ConfigError(
            f"reward.by_algo.{algo}: {', '.join(unknown)} cannot differ by learner; these can: "
            f"{', '.join(LEARNER_KEYS)}"
        )
    if "c" in own and not float(own["c"]) > 0:
        raise ConfigError(f"reward.by_algo.{algo}.c must be > 0, got {own['c']}")
    log.info(
        "reward for algo=%s (reward.by_algo.%s): %s",
        algo,
        algo,
        "; ".join(f"{key} {own[key]} instead of {reward_cfg.get(key)}" for key in sorted(own)),
    )
    return {**reward_cfg, **own}


def check_algo(cfg: DictConfig) -> DictConfig:
    """``cfg`` with its ``algo`` node checked against the algorithm's own config class
    (:data:`rlmusic.algos.CONFIGS`): its keys and types, then its values (the class's checks,
    with the run's ``length`` in tokens of the checkpoint's encoding).

    Raises:
        ConfigError: an unknown algorithm, key or value, named.
    """
    try:
        cls = get_config_class(str(OmegaConf.select(cfg, "algo.name")))
        cfg = validate_config("finetune", cfg, {"algo": node_schema(cls)})
        tokens = _tokens_per_step(str(cfg.checkpoint)) * int(cfg.length)  # what trainers act over
        read_config(cls, OmegaConf.to_container(cfg.algo, resolve=True), length=tokens)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"rlmusic finetune: {exc}") from None
    return cfg


def run(cfg: DictConfig, output_dir: Path | None = None) -> FinetuneResult:
    preflight("finetune", cfg, metric_names(cfg))  # a mistake fails here, before any work
    cfg = check_algo(cfg)
    log_reward_choice(str(cfg.algo.name))
    run_dir = run_folder(output_dir, fallback="outputs/finetune")
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    train = get_train(str(cfg.algo.name))  # an unknown algorithm fails before any loading
    check_resumed_config(
        run_dir, cfg, RESUMABLE_KEYS, allow_change=bool(cfg.get("allow_config_change", False))
    )
    reward_cfg, critics = resolve_auto_critics(
        OmegaConf.to_container(cfg.reward, resolve=True),
        OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else None,
        str(cfg.checkpoint),
        device=str(cfg.device),
        train=True,
    )
    reward_cfg = learner_reward(reward_cfg, str(cfg.algo.name))
    reward_cfg, targets = resolve_targets(
        reward_cfg,
        OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else None,
        lambda: checkpoint_encoding(str(cfg.checkpoint)),  # read only when the data counts
        int(cfg.length),
    )
    setup = build_setup(
        checkpoint=str(cfg.checkpoint),
        reward_cfg=reward_cfg,
        run_dir=run_dir,
        seed=int(cfg.seed),
        device=str(cfg.device),
        length=int(cfg.length),
        n_samples=int(cfg.n_samples),
        time_s=cfg.get("time_s"),
        critics={choice.term: choice.record() for choice in critics},
        conditions=harmonisation_conditions(cfg),
    )
    setup.targets = targets
    # potential-shaped critics are valid only at the discount they telescope under
    setup.reward.check_discount(float(cfg.algo.gamma))
    if int(cfg.critic_refresh.every) > 0:
        setup.hooks.append(_critic_refresh(cfg, setup))
    result = train(setup, OmegaConf.to_container(cfg.algo, resolve=True))
    result.metrics.update(final_evaluation(cfg, result, setup))  # eval/* when final_eval is on
    print(
        f"metrics: {', '.join(f'{k}={v:.4g}' for k, v in result.metrics.items() if k.startswith('final/'))}"
    )
    return result


def harmonisation_conditions(cfg: DictConfig) -> Any:
    """A harmoniser checkpoint's rollouts: the sopranos of the train split of ``data`` (every
    ``length``-step window from a bar line); None for a generator."""
    from rlmusic.models.registry import checkpoint_conditioning

    if not checkpoint_conditioning(str(cfg.checkpoint)):
        return None
    from rlmusic.data.prepare import prepare_corpus
    from rlmusic.models.conditions import SopranoConditions, soprano_windows

    if not cfg.get("encoding") or cfg.encoding.get("kind") != "chorale":
        raise ConfigError(
            f"rlmusic finetune: checkpoint={cfg.checkpoint} is a harmoniser: its sopranos come "
            "from data=chorales (the train split)"
        )
    from rlmusic.data.encodings import encoding_from_cfg

    encoding = encoding_from_cfg(cfg.encoding)
    corpus = prepare_corpus(cfg.data, encoding, progress=False)
    sopranos = soprano_windows(corpus.tunes("train"), int(cfg.length), encoding)
    log.info(
        "harmonising %d sopranos of %d steps: the train split of %s, from every bar line",
        len(sopranos),
        int(cfg.length),
        cfg.data.get("source", "the data"),
    )
    node = cfg.get("sopranos") or {}
    if node.get("melodies"):
        melodies = melody_sopranos(str(node.melodies), int(cfg.length), encoding, cfg.seed)
        share = float(node.get("melody_share", 0.5))
        if not 0.0 < share < 1.0:
            raise ConfigError(f"rlmusic finetune: sopranos.melody_share={share} must be in (0, 1)")
        # as many melodies as make their share of the pool, drawn once by the split's own seed
        wanted = min(len(melodies), round(len(sopranos) * share / (1.0 - share)))
        picked = np.random.default_rng(0).choice(len(melodies), size=wanted, replace=False)
        log.info(
            "  and %d melodies of the train split of data=%s (%.0f%% of the pool; %d windows fit "
            "the soprano range)",
            wanted, node.melodies, 100 * wanted / (wanted + len(sopranos)), len(melodies),
        )  # fmt: skip
        sopranos = np.concatenate([sopranos, melodies[np.sort(picked)]])
    return SopranoConditions(sopranos, encoding)


def melody_sopranos(source: str, steps: int, encoding: Any, seed: int) -> np.ndarray:
    """The train split of the melody corpus ``data=<source>`` as sopranos of ``steps`` steps
    (:func:`rlmusic.models.conditions.melody_soprano_windows`, Bach's soprano range)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from rlmusic.data.prepare import prepare_corpus
    from rlmusic.models.conditions import melody_soprano_windows
    from rlmusic.rewards.harmony import VOICE_RANGES

    overrides = [f"data={source}"]
    if GlobalHydra.instance().is_initialized():  # inside the CLI's Hydra app
        data_cfg = compose("prepare_data", overrides=overrides)
    else:
        with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
            data_cfg = compose("prepare_data", overrides=overrides)
    from rlmusic.data.encodings import encoding_from_cfg

    melody_encoding = encoding_from_cfg(data_cfg.encoding)
    if melody_encoding.kind != "melody":
        raise ConfigError(f"rlmusic finetune: sopranos.melodies={source} is not a melody corpus")
    corpus = prepare_corpus(data_cfg.data, melody_encoding, progress=False)
    soprano_range = (int(VOICE_RANGES[0][0]), int(VOICE_RANGES[0][1]))
    return melody_soprano_windows(
        list(corpus.tunes("train")), steps, melody_encoding, encoding, soprano_range
    )


def _critic_refresh(cfg: DictConfig, setup: FinetuneSetup) -> Any:
    """The adversarial refresh hook: the corpus train split against the policy's samples."""
    from rlmusic.critics.refresh import refresh_hook
    from rlmusic.data.prepare import prepare_corpus

    corpus = prepare_corpus(cfg.data, setup.encoding, progress=False)
    refresh = cfg.critic_refresh
    return refresh_hook(
        setup.reward,
        corpus.tunes("train"),
        setup.length,
        every=int(refresh.every),
        steps=int(refresh.steps),
        samples=int(refresh.samples),
        seed=setup.seed,
    )
