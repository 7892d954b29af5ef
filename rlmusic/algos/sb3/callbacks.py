"""Callbacks for the SB3 fine-tuning runs, and sampling that never touches the global RNG.

:class:`RunControl` takes resume points and applies the time budget at clean points;
:class:`RewardTermLogger` logs each reward term's share per composition; :class:`Periodic` runs
an action (policy statistics, MIDI samples) every N env steps; :class:`ProgressBar` is a tqdm
bar. Callbacks draw from their own seeded generators, never from the global ones the algorithm
uses: logging and samples do not change a run.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from torch import nn

from rlmusic.algos.finetune_setup import FinetuneSetup
from rlmusic.algos.harness import next_multiple, progress
from rlmusic.algos.outputs import policy_statistics

log = logging.getLogger(__name__)


# ---- callbacks ------------------------------------------------------------------------------


class RunControl(BaseCallback):
    """Resume points every ``every`` steps and the time budget, both at clean points only.

    A clean point is a rollout start (the previous update is done) where every environment has
    just begun a composition. When the budget is spent the run saves a resume point there and
    stops at the next step, before anything changes the weights.
    """

    def __init__(self, save: Callable[[], None], every: int, seconds: float | None) -> None:
        super().__init__()
        self.save, self.every, self.seconds = save, int(every), seconds
        self.started = time.perf_counter()
        self.boundary, self.stop = True, False
        self.next_due = 0
        self.saved_at: int | None = None

    def _on_training_start(self) -> None:
        self.started = time.perf_counter()
        self.boundary = True  # a fresh run and every resume point start compositions
        self.next_due = next_multiple(self.model.num_timesteps, self.every)

    def _on_rollout_start(self) -> None:
        if not self.boundary or self.stop:
            return
        step = self.model.num_timesteps
        expired = self.seconds is not None and time.perf_counter() - self.started > self.seconds
        if expired or step >= self.next_due:
            self.save()
            self.saved_at = step
            self.next_due = next_multiple(step, self.every)
        if expired:
            log.info("time budget of %s s reached at step %d", self.seconds, step)
            self.stop = True

    def _on_step(self) -> bool:
        if self.stop:
            return False
        self.boundary = bool(np.all(self.locals["dones"]))
        return True


class RewardTermLogger(BaseCallback):
    """Per finished composition: ``reward/total`` and each ``reward/<term>``; and tokens/s."""

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self.terms: list[dict[str, float]] = [defaultdict(float) for _ in range(n)]
        self.totals = np.zeros(n)
        self.started, self.start_step = time.perf_counter(), self.model.num_timesteps

    def _on_step(self) -> bool:
        rewards, dones = self.locals["rewards"], self.locals["dones"]
        for i, info in enumerate(self.locals["infos"]):
            for name, value in info.get("reward_terms", {}).items():
                self.terms[i][name] += value
            self.totals[i] += rewards[i]
            if dones[i]:
                self.logger.record_mean("reward/total", float(self.totals[i]))
                for name, value in self.terms[i].items():
                    self.logger.record_mean(f"reward/{name}", value)
                self.terms[i], self.totals[i] = defaultdict(float), 0.0
        return True

    def _on_rollout_end(self) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        steps = self.model.num_timesteps - self.start_step
        self.logger.record("charts/tokens_per_s", steps / elapsed)


class ConstraintUpdate(BaseCallback):
    """``reward.constraints`` under SB3, moved once per rollout; the environments' reward (the
    same term objects) pays the new multipliers from the next rollout on. The statistic is
    counted on ``sample(step)``'s pieces of the policy where given (the env step seeds them, so a
    resumed run draws what an uninterrupted one draws), else on the pieces finished
    during the rollout (each env's terminal observation: a conditioning prefix of ``start``
    tokens if any, the piece's ``length`` tokens, then the position)."""

    def __init__(
        self,
        constraints: Any,
        length: int,
        start: int = 0,
        sample: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.constraints, self.length, self.start, self.pieces = constraints, length, start, []
        self.sample = sample

    def _on_step(self) -> bool:
        if self.sample is not None:
            return True
        piece = slice(self.start, self.start + self.length)
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done and "terminal_observation" in info:
                self.pieces.append(np.asarray(info["terminal_observation"])[piece])
        return True

    def _on_rollout_end(self) -> None:
        if self.sample is not None:
            tokens = self.sample(int(self.model.num_timesteps))
        elif self.pieces:
            tokens = np.stack(self.pieces)
        else:
            return
        self.pieces = []
        for name, value in self.constraints.update(tokens.astype(np.int64)).items():
            self.logger.record(name, value)


class Periodic(BaseCallback):
    """Runs ``action(step)`` at the first rollout start at or after each multiple of ``every``."""

    def __init__(self, every: int, action: Callable[[int], None]) -> None:
        super().__init__()
        self.every, self.action = int(every), action
        self.next_due = 0

    def _on_training_start(self) -> None:
        step = self.model.num_timesteps
        self.next_due = step if step % max(self.every, 1) == 0 else next_multiple(step, self.every)

    def _on_rollout_start(self) -> None:
        step = self.model.num_timesteps
        if self.every > 0 and step >= self.next_due:
            self.action(step)
            self.next_due = next_multiple(step, self.every)

    def _on_step(self) -> bool:
        return True


def policy_stats(
    logger: Callable[[], Logger], policy: Callable[[], nn.Module], setup: FinetuneSetup, n: int
) -> Callable[[int], None]:
    """An action for :class:`Periodic`: the policy's statistics on ``n`` fresh samples (reward,
    KL to the reference, entropy, distinct share; see :func:`policy_statistics`)."""

    def action(step: int) -> None:
        record = logger().record
        # the rollouts log the reward (RewardTermLogger): no second scoring here
        stats = policy_statistics(policy(), setup, n, setup.seed + step, with_reward=False)
        for key, value in stats.items():
            record(key, value)

    return action


class ProgressBar(BaseCallback):
    """A tqdm bar over env steps (a resumed run starts where it left off)."""

    def __init__(self, total: int, desc: str) -> None:
        super().__init__()
        self.total, self.desc = int(total), desc

    def _on_training_start(self) -> None:
        self.bar = progress(self.total, self.model.num_timesteps, self.desc, "step")

    def _on_step(self) -> bool:
        if self.bar is None:
            return True
        self.bar.update(self.training_env.num_envs)
        for info in self.locals["infos"]:
            if "episode" in info:  # Monitor's summary of a finished composition
                self.bar.set_postfix(reward=f"{info['episode']['r']:.1f}", refresh=False)
        return True

    def _on_training_end(self) -> None:
        if self.bar is not None:
            self.bar.close()
