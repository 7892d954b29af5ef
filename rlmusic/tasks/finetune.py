"""`rlmusic finetune`: RL fine-tuning of a generator checkpoint against a reward.

The task builds the setup (:func:`rlmusic.algos.setup.build_setup`: start model, task reward,
reference prior, device, seed, length, run folder), checks a resumed run's config against the
saved one, and hands the setup to the configured algorithm's ``train(setup, algo_cfg)``
(``algo=batched | ppo | rl_tuner``). A run folder that holds a run continues it exactly.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from rlmusic.algos import get_train
from rlmusic.algos.setup import FinetuneResult, build_setup
from rlmusic.config.resume import check_resumed_config
from rlmusic.runtime import run_folder

log = logging.getLogger(__name__)

# Keys a resumed run may change: budgets, logging and save intervals, where it runs.
RESUMABLE_KEYS = (
    "time_s",
    "n_samples",
    "device",
    "allow_config_change",
    "objective",
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
    train = get_train(str(cfg.algo.name))  # an unknown algorithm fails before any loading
    check_resumed_config(
        run_dir, cfg, RESUMABLE_KEYS, allow_change=bool(cfg.get("allow_config_change", False))
    )
    setup = build_setup(
        checkpoint=str(cfg.checkpoint),
        reward_cfg=cfg.reward,
        run_dir=run_dir,
        seed=int(cfg.seed),
        device=str(cfg.device),
        length=int(cfg.length),
        n_samples=int(cfg.n_samples),
        time_s=cfg.get("time_s"),
    )
    result = train(setup, OmegaConf.to_container(cfg.algo, resolve=True))
    print(
        f"metrics: {', '.join(f'{k}={v:.4g}' for k, v in result.metrics.items() if k.startswith('final/'))}"
    )
    return result
