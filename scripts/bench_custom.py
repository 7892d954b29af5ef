"""Sampling cost of a user's model without ``step`` (recompute the prefix every step) against the
same network with ``step`` (tests/user_models.py: TinyGRU and SteppingGRU, same weights).

    PYTHONPATH=. python scripts/bench_custom.py --n 256 --length 32 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from rlmusic.models import generate
from rlmusic.models.checkpoint import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=48)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seconds = {}
    for name in ("TinyGRU", "SteppingGRU"):
        torch.manual_seed(0)
        config = {"vocab_size": 38, "_target_": f"tests.user_models.{name}", "hidden": args.hidden}
        model = build_model("custom", config).eval()
        runs = []
        for _ in range(args.repeats + 1):  # the first is a warm-up
            started = time.perf_counter()
            generate(model, args.n, args.length, torch.Generator().manual_seed(0))
            runs.append(time.perf_counter() - started)
        seconds[name] = min(runs[1:])
        tokens_s = args.n * args.length / seconds[name]
        print(f"{name:12s} {seconds[name] * 1e3:8.1f} ms  {tokens_s:10,.0f} tokens/s")
    print(f"recompute / step: {seconds['TinyGRU'] / seconds['SteppingGRU']:.1f}x")


if __name__ == "__main__":
    main()
