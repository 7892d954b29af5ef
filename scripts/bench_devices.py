#!/usr/bin/env python
"""Benchmark: the batched trainer's and pretraining's tokens/s on each device, side by side.

    python scripts/bench_devices.py --devices cpu,cuda            # ~20 s a row
    python scripts/bench_devices.py --devices cpu --quick         # tiny sizes: checks it runs

Rows, each on every device of ``--devices`` with the autocast that device's trainers choose
(:func:`rlmusic.runtime.choose_autocast`: bf16 on GPUs with native bf16, fp32 on CPUs):

- ``batched``: :meth:`rlmusic.algos.batched.BatchedTrainer.step` from the setup ``rlmusic
  finetune`` builds (``pretrained:note_lstm``, ``reward=rl_tuner``, 32 steps, the shipped
  ``algo=batched`` values), after one warm-up iteration; tokens are composition steps, rollout
  and update included;
- ``pretrain <model>``: :meth:`rlmusic.pretraining.loop.Pretrainer.train_step` on the shipped
  configuration (fresh weights, the shipped window, 64 windows a step) over random tunes; tokens
  are target tokens.

Prints a table and, with ``--json``, writes the rows. Never a timed test (docs/gpu.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import SHIPPED, table  # noqa: E402 (a script beside this one)

from rlmusic.runtime import choose_autocast, resolve_device  # noqa: E402

LENGTH = 32


def timed_rate(step, tokens_per_step: int, seconds: float) -> tuple[float, int]:
    """(tokens/s, steps) of ``step()`` repeated for ``seconds`` after one warm-up call."""
    step()  # first-call allocations, cuDNN / kernel choice
    started, steps = time.perf_counter(), 0
    while steps == 0 or time.perf_counter() - started < seconds:
        step()  # each returns Python numbers (.item()): the device is synchronised
        steps += 1
    return steps * tokens_per_step / (time.perf_counter() - started), steps


def bench_batched(device: torch.device, seconds: float, quick: bool) -> tuple[float, int]:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from rlmusic.algos.batched.run import batched_config
    from rlmusic.algos.batched.trainer import BatchedTrainer
    from rlmusic.algos.finetune_setup import build_setup

    overrides = ["reward=rl_tuner", f"length={LENGTH}"]
    if quick:
        overrides += ["algo.batch_size=16", "algo.minibatch_size=8", "algo.group_size=8"]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=overrides)
    with tempfile.TemporaryDirectory() as folder:
        setup = build_setup(
            str(cfg.checkpoint), cfg.reward, Path(folder), seed=0, device=str(device), length=LENGTH
        )
    config = batched_config(OmegaConf.to_container(cfg.algo, resolve=True), setup)
    trainer = BatchedTrainer(
        setup.generator,
        setup.reward.score,
        config,
        seed=0,
        prior=setup.reference.generator,
        device=device,
    )
    return timed_rate(trainer.step, config.batch_size * LENGTH, seconds)


def bench_pretrain(
    name: str, device: torch.device, seconds: float, quick: bool
) -> tuple[float, int]:
    from rlmusic.data.encoding import MelodyEncoding
    from rlmusic.models.checkpoint import build_model
    from rlmusic.pretraining.config import TrainConfig
    from rlmusic.pretraining.distributed import DistInfo
    from rlmusic.pretraining.loop import Pretrainer

    arch, config, window = SHIPPED[name]
    batch = 64
    if quick:
        config = {**config, "num_layers": 1} if arch == "lstm" else {**config, "n_layers": 1}
        window, batch = 32, 8
    model = build_model(arch, {**config, "vocab_size": 38})
    rng = np.random.default_rng(0)
    tunes = [rng.integers(0, 38, 4 * window) for _ in range(4 * batch)]
    cfg = TrainConfig(epochs=1, batch_size=batch, window=window, warmup_steps=0)
    with tempfile.TemporaryDirectory() as folder:
        trainer = Pretrainer(
            model,
            MelodyEncoding(),
            tunes,
            tunes[:1],
            cfg,
            Path(folder),
            0,
            DistInfo(device=device),
            progress=False,
            resume=False,
        )
        rows = np.stack([np.arange(batch) % len(tunes), np.zeros(batch, dtype=int)], axis=1)
        rate = timed_rate(lambda: trainer.train_step(rows), batch * window, seconds)
        trainer.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cpu,cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=20.0, help="per row")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (checks the script)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    benches = {"batched": lambda d: bench_batched(d, args.seconds, args.quick)}
    for name in SHIPPED:
        benches[f"pretrain {name}"] = lambda d, n=name: bench_pretrain(
            n, d, args.seconds, args.quick
        )
    rows = []
    for device in [resolve_device(d) for d in args.devices.split(",")]:
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        for what, bench in benches.items():
            rate, steps = bench(device)
            rows.append(
                {
                    "what": what,
                    "device": str(device),
                    "card": where,
                    "precision": choose_autocast(device).name,
                    "threads": torch.get_num_threads(),
                    "steps": steps,
                    "tokens_per_s": round(rate, 1),
                }
            )
            print(f"{what} on {device}: {rate:,.0f} tokens/s", flush=True)
    header = ["what", "device", "card", "precision", "threads", "steps", "tokens_per_s"]
    print()
    print(
        table(
            [[f"{r[k]:,.0f}" if k == "tokens_per_s" else r[k] for k in header] for r in rows],
            header,
        )
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
