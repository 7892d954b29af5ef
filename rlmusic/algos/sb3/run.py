"""What an SB3 fine-tuning run (``algo=ppo``) needs around SB3: the run, logs, resume.

:func:`learn` runs an SB3 algorithm with:

- **resume** — ``resume.pt`` (see :mod:`rlmusic.algos.sb3.state`) and ``model.zip`` every
  ``algo.checkpoint_every`` env steps, at the first clean point (a rollout start where every
  composition has just begun) at or after each multiple; re-running the same command with the
  same output folder continues from the last one exactly;
- **time budget** — ``time_s`` is checked at those clean points; the run saves a resume
  point there and stops, so a longer budget later continues exactly;
- **logs** — SB3's logger to ``progress.csv`` and ``tb/`` (TensorBoard): ``reward/total`` and
  ``reward/<term>`` (each term's share per composition, from ``info["reward_terms"]``),
  ``kl/prior_per_token`` and ``policy/entropy`` (Monte-Carlo estimates per token on
  ``algo.stats_samples`` compositions sampled from the tuned policy every ``algo.stats_every``
  steps), ``charts/tokens_per_s``, plus SB3's own ``train/*``, ``rollout/*``, ``time/*``.
  A resumed run drops the CSV rows written after its resume point and purges them from
  TensorBoard;
- **MIDI samples** every ``algo.sample_every`` steps (``samples/step_NNNNNNNN/``) and a tqdm bar.

The callbacks are in :mod:`rlmusic.algos.sb3.callbacks`, the resume file in
:mod:`rlmusic.algos.sb3.state`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from torch import nn

from rlmusic.algos.finetune_setup import FinetuneResult, FinetuneSetup
from rlmusic.algos.outputs import constraint_pieces, finish_run, write_midi_samples
from rlmusic.algos.sb3.callbacks import (
    ConstraintUpdate,
    Periodic,
    ProgressBar,
    RewardTermLogger,
    RunControl,
    policy_stats,
)
from rlmusic.algos.sb3.state import RESUME_FILE, load_resume, save_resume
from rlmusic.runlog import tensorboard_writer, truncate_csv

log = logging.getLogger(__name__)
STEP_COLUMN = "time/total_timesteps"  # SB3 writes it in every dump


@dataclass
class RunSettings:
    """The run-level settings an SB3 algorithm reads from the finetune config."""

    output_dir: Path
    algo: str
    length: int
    seed: int
    total_timesteps: int
    time_s: float | None
    checkpoint_every: int
    sample_every: int
    n_samples: int
    stats_every: int
    stats_samples: int
    log_interval: int
    constraint_samples: int = 0  # policy pieces per constraint move (0: the rollout's own)
    prefix: int = 0  # tokens of a conditioning prefix before the piece in each observation

    @classmethod
    def from_setup(cls, setup: FinetuneSetup, algo_cfg: Mapping[str, Any]) -> RunSettings:
        return cls(
            output_dir=setup.run_dir,
            algo=str(algo_cfg["name"]),
            length=setup.length,
            seed=setup.seed,
            total_timesteps=int(algo_cfg["total_timesteps"]),
            time_s=setup.time_s,
            checkpoint_every=int(algo_cfg["checkpoint_every"]),
            sample_every=int(algo_cfg["sample_every"] or 0),
            n_samples=setup.n_samples,
            stats_every=int(algo_cfg["stats_every"]),
            stats_samples=int(algo_cfg["stats_samples"]),
            log_interval=int(algo_cfg["log_interval"]),
            constraint_samples=int(algo_cfg.get("constraint_samples", 0) or 0),
            # a harmoniser's observations hold [S_0 .. S_{n-1}, BOS] before the piece
            prefix=setup.steps + 1 if setup.conditions is not None else 0,
        )


# ---- logger that continues a resumed run's logs -----------------------------------------------


class ResumedCSV(CSVOutputFormat):
    """SB3's CSV writer that keeps an existing ``progress.csv`` up to step ``keep_until``."""

    def __init__(self, filename: str, keep_until: int | None) -> None:
        path = Path(filename)
        if keep_until is None or not path.exists():
            super().__init__(filename)
            return
        header = truncate_csv(path, STEP_COLUMN, keep_until)
        self.file = open(path, "r+")  # SB3 rewrites the file in place when new keys appear
        self.file.seek(0, 2)
        self.keys = list(header)
        self.separator = ","
        self.quotechar = '"'


class ResumedTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard writer; a resumed run hides the events logged after its resume point."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self._is_closed = False


def make_logger(output_dir: Path, resume_step: int | None) -> Logger:
    """``progress.csv`` and ``tb/`` in ``output_dir``, continuing them after a resume."""
    formats: list[Any] = [ResumedCSV(str(output_dir / "progress.csv"), resume_step)]
    writer = tensorboard_writer(output_dir / "tb", None if resume_step is None else resume_step + 1)
    if writer is not None:
        formats.append(ResumedTensorBoard(writer))
    return Logger(folder=str(output_dir), output_formats=formats)


# ---- the run ------------------------------------------------------------------------------------


def save_model_zip(model: BaseAlgorithm, path: Path) -> Path:
    """SB3's ``model.zip``, written then renamed (a kill never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")  # a suffix: SB3 appends no ".zip"
    model.save(tmp)
    tmp.replace(path)
    return path


@dataclass
class LearnResult:
    env_steps: int  # where the weights are (a stopped run: its last resume point)
    seconds: float  # wall time of this process's learn()
    steps_per_s: float
    resumed_from: int | None


def learn(
    model: BaseAlgorithm,
    settings: RunSettings,
    setup: FinetuneSetup,
    policy: Callable[[], nn.Module],
) -> LearnResult:
    """Resume if ``resume.pt`` exists, then learn to ``total_timesteps`` (see module doc).

    Args:
        model: a freshly built algorithm (same settings as the run being resumed).
        settings: the run settings.
        setup: the run's setup (encoding, reward and reference for the statistics).
        policy: returns the current policy as a generator (samples and statistics).
    """
    out = settings.output_dir
    run = {
        "algo": settings.algo,
        "length": settings.length,
        "vocab_size": int(model.action_space.n),
        "n_envs": int(model.n_envs),
    }
    resume_path = out / RESUME_FILE
    resumed_from = (
        load_resume(model, resume_path, run, setup.constraints) if resume_path.exists() else None
    )
    if resumed_from is not None:
        log.info("resumed from %s at step %d", resume_path, resumed_from)
    model.set_logger(make_logger(out, resumed_from))

    def save() -> None:
        save_resume(model, resume_path, run, setup.constraints)
        save_model_zip(model, out / "model.zip")

    control = RunControl(save, settings.checkpoint_every, settings.time_s)
    samples = settings.output_dir / "samples"
    callbacks = [
        control,
        RewardTermLogger(),
        Periodic(
            settings.stats_every,
            policy_stats(lambda: model.logger, policy, setup, settings.stats_samples),
        ),
        Periodic(
            settings.sample_every,
            lambda step: write_midi_samples(
                policy(),
                setup.encoding,
                samples / f"step_{step:08d}",
                settings.n_samples,
                settings.length,
                settings.seed,
                setup.conditions,
            ),
        ),
        ProgressBar(settings.total_timesteps, settings.algo),
    ]
    if setup.constraints is not None:  # rule targets (reward.constraints), once per rollout
        sampler = None
        if settings.constraint_samples:
            n = settings.constraint_samples
            sampler = lambda move: constraint_pieces(policy(), setup, n, move)  # noqa: E731
        callbacks.insert(
            1, ConstraintUpdate(setup.constraints, settings.length, settings.prefix, sampler)
        )
    start_step = int(model.num_timesteps)
    started = time.perf_counter()
    model.learn(
        total_timesteps=max(settings.total_timesteps - start_step, 0),
        callback=CallbackList(callbacks),
        log_interval=settings.log_interval,
        reset_num_timesteps=False,  # counts go on from a resume point (0 for a new run)
    )
    seconds = time.perf_counter() - started
    steps = int(model.num_timesteps) - start_step
    if control.stop:
        env_steps = int(control.saved_at)  # the weights are the resume point's
    else:
        env_steps = int(model.num_timesteps)
        if control.boundary:  # a finished run's end is a clean point: re-running is a no-op
            save()
    model.logger.close()
    result = LearnResult(env_steps, seconds, steps / max(seconds, 1e-9), resumed_from)
    log.info("%d env steps in %.1f s (%.1f steps/s)", env_steps, seconds, result.steps_per_s)
    return result


def finish(
    model: BaseAlgorithm,
    setup: FinetuneSetup,
    result: LearnResult,
    tuned: nn.Module,
    sampler: nn.Module,
    info: dict[str, Any],
) -> FinetuneResult:
    """Write ``tuned.safetensors``, ``model.zip`` and ``samples/final/``; the run's result."""
    path, final = finish_run(setup, tuned, sampler, {**info, "env_steps": result.env_steps})
    save_model_zip(model, setup.run_dir / "model.zip")
    print(f"metrics: {setup.run_dir / 'progress.csv'} (TensorBoard: {setup.run_dir / 'tb'})")
    return FinetuneResult(
        tuned=path,
        run_dir=setup.run_dir,
        steps=result.env_steps,
        step_unit="env_steps",
        seconds=result.seconds,
        resumed_from=result.resumed_from,
        metrics={"charts/steps_per_s": result.steps_per_s, **final},
        extras={"algorithm": model},
    )
