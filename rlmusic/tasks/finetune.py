"""`rlmusic finetune`: RL fine-tuning of a generator checkpoint against a reward composite.

``algo=batched`` (the fast path) runs :class:`rlmusic.algos.batched.BatchedTrainer`. The KL
control replaces the reward's prior term: the trainer's per-token reward is the composite
without ``prior`` (rules / c and any extra terms) minus ``beta * (log pi - log p_prior)``, with
the prior taken from ``reward.prior.checkpoint`` (or the start checkpoint) and ``beta =
algo.kl_coef`` (null: ``reward.prior.weight``). With beta = 1 this is RL Tuner's reward
``log p_prior + r_MT / c`` plus the policy's entropy: KL-regularised RL (Jaques et al. 2017).

Run folder: ``tuned.safetensors`` (the tuned generator; loads in ``rlmusic sample`` and as a
prior), ``trainer_state.pt`` (exact resume: run the same command with the same
``hydra.run.dir``), ``metrics.csv``, ``tb/`` (TensorBoard), ``samples/iter_NNNNN/*.mid``.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rlmusic.algos.batched import BatchedConfig, BatchedTrainer
from rlmusic.algos.setup import split_prior
from rlmusic.data.io import save_midi
from rlmusic.models import load_generator, save_checkpoint
from rlmusic.models.checkpoint import atomic_torch_save
from rlmusic.rewards.build import build_reward
from rlmusic.runtime import resolve_device, run_folder

log = logging.getLogger(__name__)


class MetricsLog:
    """CSV (one row per iteration, columns fixed by the first row) plus TensorBoard."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "metrics.csv"
        self.columns: list[str] | None = None
        if self.path.exists():
            with open(self.path) as handle:
                self.columns = next(csv.reader(handle), None)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(directory / "tb"))
        except ImportError:  # tensorboard is a dependency, but logging must not stop a run
            self.writer = None

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        row = {"iteration": iteration, **metrics}
        if self.columns is None:
            self.columns = list(row)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow([row.get(c, "") for c in self.columns])
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, iteration)

    def truncate_after(self, iteration: int) -> None:
        """Drop rows past ``iteration`` (written after the checkpoint a resume starts from)."""
        if not self.path.exists():
            return
        with open(self.path) as handle:
            rows = list(csv.reader(handle))
        kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= iteration]
        with open(self.path, "w", newline="") as handle:
            csv.writer(handle).writerows(kept)


def write_samples(trainer: BatchedTrainer, encoding, directory: Path, n: int, seed: int) -> None:
    from rlmusic.evaluation.model_eval import sample_compositions

    tokens, _ = sample_compositions(trainer.policy, n, trainer.config.length, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(tokens):
        save_midi(row, directory / f"sample_{i:03d}.mid", encoding)


def run(cfg: DictConfig, output_dir: Path | None = None) -> dict[str, Any]:
    output_dir = run_folder(output_dir, fallback="outputs/finetune")
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.algo.name == "rl_tuner":
        from rlmusic.algos.rl_tuner import run_rl_tuner

        return run_rl_tuner(cfg, output_dir)
    if cfg.algo.name == "ppo":
        from rlmusic.algos.sb3_ppo import run_sb3_ppo

        return run_sb3_ppo(cfg, output_dir)
    if cfg.algo.name != "batched":
        raise ValueError(f"algo={cfg.algo.name!r} is not available; known: batched, ppo, rl_tuner")
    device = resolve_device(str(cfg.device))
    torch.manual_seed(int(cfg.seed))
    policy, encoding = load_generator(str(cfg.checkpoint), device=device)
    if int(cfg.length) < 2:
        raise ValueError(f"length must be >= 2, got {cfg.length}")
    reward = build_reward(cfg.reward, encoding, device=str(device))
    task_reward, prior, prior_weight = split_prior(reward)
    if prior is not None and prior.vocab_size != policy.vocab_size:
        raise ValueError(
            f"reward.prior.checkpoint has vocab_size {prior.vocab_size} but {cfg.checkpoint} has "
            f"{policy.vocab_size}: they must share the token encoding"
        )
    algo = OmegaConf.to_container(cfg.algo, resolve=True)
    algo.pop("name")
    if algo.get("kl_coef") is None:
        algo["kl_coef"] = prior_weight if prior is not None else 0.0
    config = BatchedConfig(length=int(cfg.length), **algo)
    trainer = BatchedTrainer(
        policy, task_reward.score, config, seed=int(cfg.seed), prior=prior, device=device
    )

    state_path = output_dir / "trainer_state.pt"
    metrics_log = MetricsLog(output_dir)
    if state_path.exists():
        trainer.load_state_dict(torch.load(state_path, map_location=device, weights_only=True))
        metrics_log.truncate_after(trainer.iteration)
        log.info("resumed from %s at iteration %d", state_path, trainer.iteration)

    started = time.perf_counter()
    budget_s = cfg.budget.time_s
    last: dict[str, float] = {}
    try:
        from tqdm import tqdm

        bar = tqdm(
            total=int(cfg.budget.iterations), initial=trainer.iteration, desc="finetune", unit="it"
        )
    except ImportError:  # pragma: no cover
        bar = None
    while trainer.iteration < int(cfg.budget.iterations):
        if budget_s is not None and time.perf_counter() - started > float(budget_s):
            log.info("time budget of %s s reached at iteration %d", budget_s, trainer.iteration)
            break
        last = trainer.step()
        metrics_log.write(trainer.iteration, last)
        if bar is not None:
            bar.update()
            bar.set_postfix(
                reward=f"{last['reward/total']:.1f}", kl=f"{last['kl/prior_per_token']:.2f}"
            )
        if trainer.iteration % int(cfg.checkpoint_every) == 0:
            atomic_torch_save(trainer.state_dict(), state_path)
        if cfg.sample_every and trainer.iteration % int(cfg.sample_every) == 0:
            write_samples(
                trainer,
                encoding,
                output_dir / "samples" / f"iter_{trainer.iteration:05d}",
                int(cfg.n_samples),
                int(cfg.seed),
            )
    if bar is not None:
        bar.close()
    atomic_torch_save(trainer.state_dict(), state_path)
    tuned = save_checkpoint(
        output_dir / "tuned.safetensors",
        trainer.policy,
        encoding,
        info={
            "tuned_from": str(cfg.checkpoint),
            "algo": "batched",
            "iterations": trainer.iteration,
        },
    )
    write_samples(
        trainer, encoding, output_dir / "samples" / "final", int(cfg.n_samples), int(cfg.seed)
    )
    print(
        f"tuned model: {tuned}\nsamples: {output_dir / 'samples' / 'final'}\nmetrics: {metrics_log.path}"
    )
    return {
        "tuned": tuned,
        "iterations": trainer.iteration,
        "last": last,
        "seconds": time.perf_counter() - started,
    }
