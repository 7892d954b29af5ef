#!/usr/bin/env python
"""Benchmark: composition-steps per second with the nine RL Tuner rules.

    python scripts/bench_envs.py                                # rules only
    python scripts/bench_envs.py --prior pretrained:note_lstm   # plus the prior term
    python scripts/bench_envs.py --prior untrained:note_lstm    # same cost, random weights

Rows: CompositionEnv alone, SB3's DummyVecEnv of 16, CompositionVectorEnv at B = 256.
Counts composition steps only (not the autoreset steps). Never a timed test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rlmusic.envs.composition import CompositionEnv, default_reward
from rlmusic.envs.vector import CompositionVectorEnv

from rlmusic.data.encoding import MelodyEncoding


def single(reward, episodes: int) -> float:
    env = CompositionEnv(reward=reward)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    started, steps = time.perf_counter(), 0
    for _ in range(episodes):
        env.reset()
        for _ in range(env.length):
            env.step(int(rng.integers(38)))
            steps += 1
    return steps / (time.perf_counter() - started)


def dummy_vec(reward, episodes: int, n: int = 16) -> float:
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = DummyVecEnv([lambda: CompositionEnv(reward=reward)] * n)
    env.seed(0)
    env.reset()
    rng = np.random.default_rng(0)
    started, steps = time.perf_counter(), 0
    for _ in range(episodes * 32):
        env.step(rng.integers(38, size=n))  # SB3 resets finished envs inside step
        steps += n
    return steps / (time.perf_counter() - started)


def vector(reward, episodes: int, batch: int = 256) -> float:
    env = CompositionVectorEnv(batch, reward=reward)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    started, steps = time.perf_counter(), 0
    for _ in range(episodes):
        for _ in range(env.length):
            env.step(rng.integers(38, size=batch))
            steps += batch
        env.step(np.zeros(batch, dtype=int))  # the autoreset step
    return steps / (time.perf_counter() - started)


def with_prior(spec: str, encoding: MelodyEncoding, threads: int):
    """The nine rules plus the prior term from ``spec`` (``untrained:note_lstm``: the shipped
    LSTM's architecture with random weights, for timing when no checkpoint is installed)."""
    import torch

    from rlmusic.rewards.build import build_reward
    from rlmusic.rewards.composite import WeightedTerm
    from rlmusic.rewards.prior import PriorLogProb
    from rlmusic.rewards.theory import RULES

    torch.set_num_threads(threads)  # small batches: extra threads mostly wait on each other
    if spec != "untrained:note_lstm":
        return build_reward({"rules": list(RULES), "prior": {"checkpoint": spec}}, encoding)
    from rlmusic.models import LSTMConfig, NoteLSTM

    reward = build_reward({"rules": list(RULES)}, encoding)
    model = NoteLSTM(LSTMConfig(vocab_size=encoding.vocab_size))
    reward.terms.append(WeightedTerm("prior", PriorLogProb(model), 1.0))
    return reward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--prior", default=None, help="a checkpoint for the prior term, e.g. pretrained:note_lstm"
    )
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the prior")
    args = parser.parse_args()
    encoding = MelodyEncoding()
    if args.prior:
        reward = with_prior(args.prior, encoding, args.threads)
    else:
        reward = default_reward(encoding)
    print(f"reward terms: {reward.names}")
    print("| environment | composition-steps/s |\n|---|---|")
    print(f"| CompositionEnv | {single(reward, args.episodes):,.0f} |")
    print(f"| DummyVecEnv x 16 | {dummy_vec(reward, max(2, args.episodes // 8)):,.0f} |")
    print(f"| CompositionVectorEnv B=256 | {vector(reward, max(3, args.episodes // 3)):,.0f} |")


if __name__ == "__main__":
    main()
