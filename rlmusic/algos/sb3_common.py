"""What the SB3 fine-tuning runs (``algo=ppo``, ``algo=rl_tuner``) share: the run, logs, resume.

:func:`learn` runs an SB3 algorithm with:

- **resume** — ``resume.pt`` (see :mod:`rlmusic.algos.sb3_state`) and ``model.zip`` every
  ``algo.checkpoint_every`` env steps, at the first clean point (a rollout start where every
  composition has just begun) at or after each multiple; re-running the same command with the
  same output folder continues from the last one exactly;
- **time budget** — ``budget.time_s`` is checked at those clean points; the run saves a resume
  point there and stops, so a longer budget later continues exactly;
- **logs** — SB3's logger to ``progress.csv`` and ``tb/`` (TensorBoard): ``reward/total`` and
  ``reward/<term>`` (each term's share per composition, from ``info["reward_terms"]``),
  ``kl/prior_per_token`` and ``policy/entropy`` (Monte-Carlo estimates per token on
  ``algo.stats_samples`` compositions sampled from the tuned policy every ``algo.stats_every``
  steps), ``charts/tokens_per_s``, plus SB3's own ``train/*``, ``rollout/*``, ``time/*``.
  A resumed run drops the CSV rows written after its resume point and purges them from
  TensorBoard;
- **MIDI samples** every ``algo.sample_every`` steps (``samples/step_NNNNNNNN/``) and a tqdm bar.

The callbacks are in :mod:`rlmusic.algos.sb3_callbacks`, the resume file in
:mod:`rlmusic.algos.sb3_state`.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from torch import nn

from rlmusic.algos.sb3_callbacks import (
    Periodic,
    ProgressBar,
    RewardTermLogger,
    RunControl,
    policy_stats,
    write_midi_samples,
)
from rlmusic.algos.sb3_state import RESUME_FILE, load_resume, save_resume
from rlmusic.data.encoding import MelodyEncoding

log = logging.getLogger(__name__)
STEP_COLUMN = "time/total_timesteps"  # SB3 writes it in every dump


@dataclass
class RunSettings:
    """The run-level settings both SB3 algorithms read from the finetune config."""

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

    @classmethod
    def from_cfg(cls, cfg: DictConfig, output_dir: Path) -> RunSettings:
        algo = cfg.algo
        return cls(
            output_dir=Path(output_dir),
            algo=str(algo.name),
            length=int(cfg.length),
            seed=int(cfg.seed),
            total_timesteps=int(algo.total_timesteps),
            time_s=None if cfg.budget.time_s is None else float(cfg.budget.time_s),
            checkpoint_every=int(algo.checkpoint_every),
            sample_every=int(algo.sample_every),
            n_samples=int(cfg.n_samples),
            stats_every=int(algo.stats_every),
            stats_samples=int(algo.stats_samples),
            log_interval=int(algo.log_interval),
        )


def check_length(length: int) -> None:
    if length < 2:
        raise ValueError(f"length must be >= 2, got {length}")


def frozen_copy(generator: nn.Module) -> nn.Module:
    """A frozen copy of ``generator`` in eval mode (the reference a KL is measured against)."""
    reference = copy.deepcopy(generator).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    return reference


# ---- logger that continues a resumed run's logs -----------------------------------------------


class ResumedCSV(CSVOutputFormat):
    """SB3's CSV writer that keeps an existing ``progress.csv`` up to step ``keep_until``."""

    def __init__(self, filename: str, keep_until: int | None) -> None:
        path = Path(filename)
        if keep_until is None or not path.exists():
            super().__init__(filename)
            return
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        header = rows[0] if rows else []
        column = header.index(STEP_COLUMN) if STEP_COLUMN in header else None
        kept = [
            r
            for r in rows[1:]
            if column is not None and r[column] and float(r[column]) <= keep_until
        ]
        with open(path, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows([header, *kept] if header else [])
        self.file = open(path, "r+")  # SB3 rewrites the file in place when new keys appear
        self.file.seek(0, 2)
        self.keys = list(header)
        self.separator = ","
        self.quotechar = '"'


class ResumedTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard writer; a resumed run hides the events logged after its resume point."""

    def __init__(self, folder: str, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def make_logger(output_dir: Path, resume_step: int | None) -> Logger:
    """``progress.csv`` and ``tb/`` in ``output_dir``, continuing them after a resume."""
    formats: list[Any] = [ResumedCSV(str(output_dir / "progress.csv"), resume_step)]
    if importlib.util.find_spec("tensorboard") is not None:
        purge = None if resume_step is None else resume_step + 1
        formats.append(ResumedTensorBoard(str(output_dir / "tb"), purge))
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
    encoding: MelodyEncoding,
    policy: Callable[[], nn.Module],
    reference: nn.Module | None,
) -> LearnResult:
    """Resume if ``resume.pt`` exists, then learn to ``total_timesteps`` (see module doc).

    Args:
        model: a freshly built algorithm (same settings as the run being resumed).
        settings: the run settings.
        encoding: the token encoding (MIDI samples).
        policy: returns the current policy as a generator (samples and statistics).
        reference: the frozen prior the KL is measured against (None: no KL logged).
    """
    out = settings.output_dir
    run = {
        "algo": settings.algo,
        "length": settings.length,
        "vocab_size": int(model.action_space.n),
        "n_envs": int(model.n_envs),
    }
    resume_path = out / RESUME_FILE
    resumed_from = load_resume(model, resume_path, run) if resume_path.exists() else None
    if resumed_from is not None:
        log.info("resumed from %s at step %d", resume_path, resumed_from)
    model.set_logger(make_logger(out, resumed_from))

    def save() -> None:
        save_resume(model, resume_path, run)
        save_model_zip(model, out / "model.zip")

    control = RunControl(save, settings.checkpoint_every, settings.time_s)
    samples = settings.output_dir / "samples"
    callbacks = [
        control,
        RewardTermLogger(),
        Periodic(
            settings.stats_every,
            policy_stats(
                lambda: model.logger,
                policy,
                reference,
                settings.stats_samples,
                settings.length,
                settings.seed,
            ),
        ),
        Periodic(
            settings.sample_every,
            lambda step: write_midi_samples(
                policy(),
                encoding,
                samples / f"step_{step:08d}",
                settings.n_samples,
                settings.length,
                settings.seed,
            ),
        ),
        ProgressBar(settings.total_timesteps, settings.algo),
    ]
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
    settings: RunSettings,
    encoding: MelodyEncoding,
    tuned: nn.Module,
    sampler: nn.Module,
    info: dict[str, Any],
) -> dict[str, Path]:
    """Write ``tuned.safetensors``, ``model.zip`` and ``samples/final/*.mid``."""
    from rlmusic.models import save_checkpoint

    out = settings.output_dir
    paths = {
        "tuned": save_checkpoint(out / "tuned.safetensors", tuned, encoding, info),
        "model": save_model_zip(model, out / "model.zip"),
        "samples": write_midi_samples(
            sampler,
            encoding,
            out / "samples" / "final",
            settings.n_samples,
            settings.length,
            settings.seed,
        ),
    }
    print(
        f"tuned model: {paths['tuned']}\nsamples: {paths['samples']}\n"
        f"metrics: {out / 'progress.csv'} (TensorBoard: {out / 'tb'})"
    )
    return paths
