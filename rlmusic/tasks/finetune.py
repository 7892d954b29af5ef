"""`rlmusic finetune`: RL fine-tuning of a generator checkpoint against a reward.

The task builds the setup (:func:`rlmusic.algos.setup.build_setup`: start model, task reward,
reference prior, device, seed, length, run folder), checks a resumed run's config against the
saved one, and hands the setup to the configured algorithm's ``train(setup, algo_cfg)``
(``algo=batched | ppo | rl_tuner``). A run folder that holds a run continues it exactly.

First the reward's discriminator terms get their critic (:mod:`rlmusic.critics.auto`): the
default reward's ``checkpoint: auto`` is the shipped critic on the corpus it learnt, else the
one trained on ``data`` against the start model, trained now (``rlmusic train-critic``'s code
path) if no earlier run cached it. Its split is the held-out evaluation's
(``final_eval.data_seed``; null: ``data.seed``), so the critic never saw the tunes the run is
scored on, and runs of other seeds share it. The log names the critic, and the tuned
checkpoint records it (``info["critics"]``) beside the KL reference (``info["reference"]``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rlmusic.algos import get_train
from rlmusic.algos.setup import FinetuneResult, FinetuneSetup, build_setup
from rlmusic.config.resume import check_resumed_config
from rlmusic.critics.auto import CriticChoice, TrainRequest, resolve_auto_critics
from rlmusic.evaluation.objective import final_evaluation
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
    "algo.iterations",
    "algo.total_timesteps",
    "algo.checkpoint_every",
    "algo.sample_every",
    "algo.stats_every",
    "algo.stats_samples",
    "algo.log_interval",
)


def run(cfg: DictConfig, output_dir: Path | None = None) -> FinetuneResult:
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
        _critic_data(cfg),
        str(cfg.checkpoint),
        device=str(cfg.device),
        train=_train_critic,
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
    )
    # potential-shaped critics are valid only at the discount they telescope under
    setup.reward.check_discount(float(cfg.algo.gamma))
    if int(cfg.critic_refresh.every) > 0:
        setup.hooks.append(_critic_refresh(cfg, setup))
    result = train(setup, OmegaConf.to_container(cfg.algo, resolve=True))
    _record_critics(result.tuned, critics)
    result.metrics.update(final_evaluation(cfg, result, setup))  # eval/* when final_eval is on
    print(
        f"metrics: {', '.join(f'{k}={v:.4g}' for k, v in result.metrics.items() if k.startswith('final/'))}"
    )
    return result


def _critic_data(cfg: DictConfig) -> dict[str, Any]:
    """The data an ``auto`` critic follows, split as the held-out evaluation splits it."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    split = cfg.get("final_eval", {}).get("data_seed")
    return {**data, "seed": int(split if split is not None else data.get("seed", 0))}


def _train_critic(request: TrainRequest) -> dict[str, Any]:
    """Train an ``auto`` critic exactly as ``rlmusic train-critic critic=discriminator`` does."""
    from rlmusic.critics.auto import train_critic_config
    from rlmusic.tasks import train_critic

    return train_critic.run(train_critic_config(request), corpus=request.corpus)


def _record_critics(tuned: Path, critics: list[CriticChoice]) -> None:
    """Add the critics the run was rewarded by to the tuned checkpoint's info, as the KL
    reference is (``info["critics"][<term>]``: checkpoint, source, data, validation figures)."""
    from rlmusic.models.checkpoint import load_checkpoint, save_checkpoint

    if not critics:
        return
    model, encoding, info = load_checkpoint(tuned)
    info["critics"] = {choice.term: choice.record() for choice in critics}
    save_checkpoint(tuned, model, encoding, info)


def _critic_refresh(cfg: DictConfig, setup: FinetuneSetup) -> Any:
    """The adversarial refresh hook: the corpus train split against the policy's samples."""
    from rlmusic.critics.refresh import refresh_hook
    from rlmusic.data.prepare import prepare_corpus

    if str(cfg.algo.name) != "batched":
        raise ValueError(
            f"critic_refresh.every > 0 needs algo=batched (algo={cfg.algo.name} trains against a "
            "static critic): set critic_refresh.every=0"
        )
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
