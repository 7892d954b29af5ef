"""The critic test's power against its time: one row per critic budget (steps, batch, width).

For each budget, the two-sample critic test of ``rlmusic compare``
(:class:`rlmusic.evaluation.two_sample_critic.CriticTest`) is run, as compare runs it, on

* the supervised model's pieces against held-out tunes (its power: what a tuned model is
  judged beside), * a tuned model's pieces against them, * real against real (its sanity),

and each row prints the three accuracies with their intervals and the seconds each took (wall
and this process's CPU: on a shared machine the wall time carries the others' load).
The pieces are drawn once (``samples`` per generator, seed + 1, as compare draws them).

    python scripts/critic_test_speed.py --tuned /tmp/q32/ft \
        --budgets 1000:128:64 300:128:64 --seeds 0 1 > rows.jsonl

A budget is ``steps:batch_size:channels[:lr]``; one JSON line per (budget, seed) on stdout,
a Markdown row on stderr. Data: compare's default (``data=all``; the corpus cache is used).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

import torch
from hydra import compose, initialize_config_module

from rlmusic.evaluation.objective import held_out
from rlmusic.evaluation.two_sample_critic import CriticTest, CriticTestConfig
from rlmusic.models.registry import load_generator
from rlmusic.models.sampling import sample_seeded


def budget(text: str) -> CriticTestConfig:
    """``steps:batch:channels[:lr]`` -> the default critic test's config with those values."""
    parts = text.split(":")
    cfg = replace(
        CriticTestConfig(), steps=int(parts[0]), batch_size=int(parts[1]), channels=int(parts[2])
    )
    return replace(cfg, lr=float(parts[3])) if len(parts) > 3 else cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", required=True, help="a tuned checkpoint or run folder")
    parser.add_argument("--supervised", default="pretrained:note_lstm")
    parser.add_argument("--budgets", nargs="+", default=["1000:128:64"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--overrides", nargs="*", default=[], help="compare config overrides")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("compare", overrides=args.overrides)
    supervised, encoding = load_generator(args.supervised)
    tuned, _ = load_generator(_checkpoint(args.tuned))
    held = held_out(cfg, encoding)
    size = encoding.tokens_for(int(cfg.length or encoding.melody_length))
    samples = int(cfg.critic.samples)
    for seed in args.seeds:
        pieces = {
            "supervised": sample_seeded(supervised, samples, size, seed + 1)[0],
            "tuned": sample_seeded(tuned, samples, size, seed + 1)[0],
        }
        for text in args.budgets:
            critic_cfg = budget(text)
            test = CriticTest(
                held.tunes, encoding.vocab_size, size, critic_cfg, seed,
                split_seed=held.split_seed, encoding=encoding,
            )  # fmt: skip
            row: dict = {"budget": text, "seed": seed}
            for name in ("supervised", "tuned", "sanity"):
                started, cpu = time.perf_counter(), time.process_time()
                accuracy = test.sanity()[0] if name == "sanity" else test.accuracy(pieces[name])[0]
                row[name] = [accuracy.value, accuracy.low, accuracy.high]
                row[f"{name}_s"] = time.perf_counter() - started
                row[f"{name}_cpu_s"] = time.process_time() - cpu  # less moved by others' load
            print(json.dumps(row), flush=True)
            cells = " | ".join(
                f"{row[k][0]:.3f} ({row[k][1]:.3f}-{row[k][2]:.3f}) | {row[k + '_s']:.0f} "
                f"({row[k + '_cpu_s']:.0f} CPU)"
                for k in ("supervised", "tuned", "sanity")
            )
            print(f"| {text} | {seed} | {cells} |", file=sys.stderr, flush=True)


def _checkpoint(spec: str) -> str:
    from rlmusic.evaluation.columns import spec_kind

    return spec_kind(spec)[1]


if __name__ == "__main__":
    main()
