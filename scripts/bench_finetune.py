#!/usr/bin/env python
"""Benchmark: fine-tuning throughput of the three algorithms, side by side, in one process.

    python scripts/bench_finetune.py                       # ~45 s per algorithm
    python scripts/bench_finetune.py --seconds 30 --checkpoint pretrained:music_transformer

Same model (``--checkpoint``), reward (``reward=rl_tuner``: the nine rules / c plus the prior)
and composition length (32) for every row. Counts tokens (composition steps) per second of
training, rollouts and updates included:

- ``batched``: :meth:`rlmusic.algos.batched.BatchedTrainer.step` (B compositions at once, one
  forward pass per sequence), after one warm-up iteration;
- ``ppo``: ``rlmusic finetune algo=ppo`` (SB3 PPO, a DummyVecEnv of CompositionEnv);
- ``rl_tuner``: ``rlmusic finetune experiment=rl_tuner_paper`` (Q-learning with the paper's
  settings: 1M env steps, replay ratio 6.4; 256 compositions acting at once, whole-piece
  replay). It reaches the paper's 1M steps within 10 minutes at 1,700 env steps/s.

The ``ppo`` and ``rl_tuner`` rows run the real entry point with ``time_s`` (checked between
rollouts or rounds, so a row may overrun by one) and report env steps, updates included, over
the time inside training. Prints a small table and the batched / ppo ratio. Never a timed test.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from rlmusic.algos.batched.run import batched_config
from rlmusic.algos.batched.trainer import BatchedTrainer
from rlmusic.algos.finetune_setup import build_setup
from rlmusic.tasks import finetune

LENGTH = 32


def config(algo: str, checkpoint: str, seconds: float, extra: list[str]):
    overrides = [
        f"algo={algo}",
        f"checkpoint={checkpoint}",
        "reward=rl_tuner",
        f"length={LENGTH}",
        "device=cpu",
        f"time_s={seconds}",
        "n_samples=1",
        *extra,
    ]
    if algo == "rl_tuner":  # the paper's run (its epsilon schedule), cut by the time budget
        overrides = ["experiment=rl_tuner_paper", *overrides[1:]]
    if algo != "batched":  # a long run cut by the time budget; no checkpoints or samples inside
        overrides += ["algo.checkpoint_every=100000000", "algo.sample_every=0"]
    if algo == "ppo":
        overrides += ["algo.total_timesteps=100000000"]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose("finetune", overrides=overrides)


def bench_batched(cfg, seconds: float) -> dict[str, float]:
    """Tokens/s of BatchedTrainer.step(), built from the same setup ``rlmusic finetune`` uses."""
    with tempfile.TemporaryDirectory() as folder:
        setup = build_setup(
            str(cfg.checkpoint),
            cfg.reward,
            Path(folder),
            seed=int(cfg.seed),
            device="cpu",
            length=LENGTH,
        )
    config = batched_config(OmegaConf.to_container(cfg.algo, resolve=True), setup)
    trainer = BatchedTrainer(
        setup.generator,
        setup.reward.score,
        config,
        seed=setup.seed,
        prior=setup.reference.generator,
    )
    trainer.step()  # warm-up: first-call allocations
    started, iterations = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        trainer.step()
        iterations += 1
    elapsed = time.perf_counter() - started
    tokens = iterations * trainer.config.batch_size * LENGTH
    return {"tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed}


def bench_run(cfg, seconds: float) -> dict[str, float]:
    """Env steps/s of ``rlmusic finetune`` itself (its ``charts/steps_per_s``)."""
    with tempfile.TemporaryDirectory() as folder:
        result = finetune.run(cfg, output_dir=Path(folder))
    steps = result.metrics["charts/steps_per_s"] * result.seconds
    return {
        "tokens": steps,
        "seconds": result.seconds,
        "tokens_per_s": result.metrics["charts/steps_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="per algorithm")
    parser.add_argument("--checkpoint", default="pretrained:note_lstm")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--algos", default="batched,ppo,rl_tuner")
    parser.add_argument(
        "--override", action="append", default=[], help="extra Hydra override (repeatable)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows: dict[str, dict[str, float]] = {}
    for algo in args.algos.split(","):
        cfg = config(algo, args.checkpoint, args.seconds, args.override)
        run = bench_batched if algo == "batched" else bench_run
        rows[algo] = run(cfg, args.seconds)
        print(f"{algo}: {rows[algo]['tokens_per_s']:,.0f} tokens/s", flush=True)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{args.checkpoint}, reward=rl_tuner, length {LENGTH}, {args.threads} torch thread(s), "
        f"{os.cpu_count()} CPUs, load average {load}\n"
    )
    print("| algo | tokens/s | tokens | seconds |\n|---|---|---|---|")
    for algo, row in rows.items():
        print(
            f"| {algo} | {row['tokens_per_s']:,.0f} | {row['tokens']:,.0f} | {row['seconds']:.1f} |"
        )
    if "batched" in rows and "ppo" in rows:
        ratio = rows["batched"]["tokens_per_s"] / rows["ppo"]["tokens_per_s"]
        print(f"\nbatched / ppo: {ratio:.1f}x")


if __name__ == "__main__":
    main()
