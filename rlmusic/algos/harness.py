"""The run harness: one training loop for every algorithm that owns its loop.

An algorithm supplies a :class:`Trainer` (``step()`` = one iteration or one round, its state,
its policy, a step counter with its unit and total); :func:`run_trainer` does the rest, the same
way for every algorithm:

- **time budget**: ``setup.time_s`` is checked before each step; a spent budget saves a resume
  point and stops, so a longer budget later continues exactly;
- **progress**: one tqdm bar over the step counter (a resumed run starts where it left off);
- **logs**: ``metrics.csv`` and ``tb/`` (:class:`rlmusic.runlog.CSVLog`), one row per step,
  rows past a resume point dropped;
- **intervals**: a resume point (``checkpoint_every``) and MIDI samples (``sample_every``) when a
  step crosses a multiple of the interval on the trainer's counter (:func:`crossed`), so a round
  of 128 env steps and an iteration count the same way;
- **hooks**: ``hook(step, policy) -> metrics`` after every step (reward constraints, a critic's
  refresh); a hook with ``state_dict`` / ``load_state_dict`` is part of the resume point;
- **one resume format**: ``resume.pt`` = ``{format, version, run, trainer, hooks}``, written
  atomically by :func:`write_resume` and read by :func:`read_resume` (through
  :func:`rlmusic.algos.resume_point.read_resume_point`: another kind of run, format or version
  is refused with one line);
- **finish**: :func:`finish` writes ``tuned.safetensors`` and ``samples/final`` (``finish_run``).

SB3's ``learn()`` owns its loop, so ``algo=ppo`` keeps its callbacks; they take the resume
format, the hooks' state, the interval arithmetic and the progress bar from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from rlmusic.algos.finetune_setup import FinetuneResult, FinetuneSetup
from rlmusic.algos.outputs import finish_run, write_midi_samples
from rlmusic.algos.resume_point import ResumeError, read_resume_point
from rlmusic.models.checkpoint import atomic_torch_save
from rlmusic.runlog import CSVLog

log = logging.getLogger(__name__)
RESUME_FILE = "resume.pt"
RESUME_FORMAT = "rlmusic-resume"
RESUME_VERSION = 1
# resume files of earlier releases, which this one cannot continue
OLD_RESUME_FILES = ("trainer_state.pt",)
# the CSV's step column per unit
STEP_COLUMNS = {"iterations": "iteration", "env_steps": "env_steps"}

Hook = Callable[[int, nn.Module], Mapping[str, float] | None]


class Trainer(Protocol):
    """What an algorithm hands the harness.

    ``unit`` names the counter (``iterations`` | ``env_steps``), ``total`` is where the run
    ends on it, ``steps`` is where it is now.
    """

    unit: str
    total: int

    @property
    def steps(self) -> int: ...

    def step(self) -> dict[str, float]:
        """One iteration (or one round); its metrics."""
        ...

    def policy(self) -> nn.Module:
        """What is sampled (MIDI samples, hooks)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


# ---- intervals and progress --------------------------------------------------------------------


def crossed(before: int, after: int, every: int) -> bool:
    """True when (before, after] holds a multiple of ``every`` (never for every = 0)."""
    return every > 0 and after // every > before // every


def next_multiple(step: int, every: int) -> int:
    """The first multiple of ``every`` after ``step``."""
    return (step // every + 1) * every


def interval(algo_cfg: Mapping[str, Any], key: str) -> int:
    """``algo.<key>`` as an interval (0 or null: never).

    Raises:
        ValueError: a negative interval.
    """
    value = int(algo_cfg.get(key) or 0)
    if value < 0:
        raise ValueError(f"algo.{key}={value} must be >= 0 (0: never)")
    return value


def progress(total: int, initial: int, desc: str, unit: str) -> Any:
    """A tqdm bar (None without tqdm)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the dependencies
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit=unit)


# ---- the resume point --------------------------------------------------------------------------


def hook_states(hooks: Sequence[Any]) -> list[dict[str, Any]]:
    """The stateful hooks' states, in order (a hook without ``state_dict`` has none)."""
    return [h.state_dict() for h in hooks if hasattr(h, "state_dict")]


def load_hook_states(hooks: Sequence[Any], states: Sequence[Mapping[str, Any]], path: Any) -> None:
    """Give each stateful hook its saved state; another set of hooks is an error.

    Raises:
        ResumeError: (a ``ValueError``) the resume point was saved with another number of
            stateful hooks.
    """
    stateful = [h for h in hooks if hasattr(h, "load_state_dict")]
    if len(stateful) != len(states):
        raise ResumeError(
            f"{path} was saved with {len(states)} stateful hook(s) (a critic refresh, reward "
            f"constraints) and this run has {len(stateful)}: resume with the same critic_refresh "
            "and reward.constraints settings, or use a new output folder (hydra.run.dir)"
        )
    for hook, state in zip(stateful, states):
        hook.load_state_dict(state)


def check_no_old_resume_file(run_dir: Path) -> None:
    """Refuse a run folder holding an earlier release's resume file.

    Raises:
        ResumeError: (a ``ValueError``) ``trainer_state.pt`` without ``resume.pt``.
    """
    for name in OLD_RESUME_FILES:
        old = Path(run_dir) / name
        if old.exists() and not (Path(run_dir) / RESUME_FILE).exists():
            raise ResumeError(
                f"{old} is an earlier release's resume file, which this release cannot continue: "
                "start the run in a new output folder (hydra.run.dir)"
            )


def write_resume(
    path: Path, run: Mapping[str, Any], trainer: Mapping[str, Any], hooks: Sequence[Any] = ()
) -> None:
    """Write ``resume.pt`` atomically (a kill mid-save keeps the previous one)."""
    state = {
        "format": RESUME_FORMAT,
        "version": RESUME_VERSION,
        "run": dict(run),
        "trainer": dict(trainer),
        "hooks": hook_states(hooks),
    }
    atomic_torch_save(state, path)


def read_resume(path: Path, run: Mapping[str, Any], hooks: Sequence[Any] = ()) -> dict[str, Any]:
    """The trainer's state saved at ``path``, its hooks' states loaded into ``hooks``.

    Raises:
        ValueError: another kind of run's file (the differing ``run`` values named), another
            format or version, or another set of stateful hooks.
        CheckpointError: a damaged file or one holding pickled objects.
    """
    state = read_resume_point(path, RESUME_FORMAT, RESUME_VERSION, run, "an rlmusic resume point")
    load_hook_states(hooks, state.get("hooks", []), path)
    return state["trainer"]


# ---- the loop ----------------------------------------------------------------------------------


def setup_hooks(setup: FinetuneSetup) -> list[Any]:
    """The run's hooks: ``setup.hooks``, then the reward constraints when configured (their
    multipliers log as a hook and their state rides in the resume point with the others')."""
    if setup.constraints is not None:
        return [*setup.hooks, setup.constraints]
    return list(setup.hooks)


@dataclass
class Outcome:
    """What :func:`run_trainer` leaves for :func:`finish`."""

    metrics: dict[str, float]  # the last step's
    seconds: float  # this process's wall time in the loop
    resumed_from: int | None
    steps_per_s: float  # this process's


def run_trainer(
    setup: FinetuneSetup,
    trainer: Trainer,
    run: Mapping[str, Any],
    *,
    hooks: Sequence[Hook] = (),
    checkpoint_every: int,
    sample_every: int,
    sample_folder: str,
    desc: str,
    postfix: Mapping[str, str] | None = None,
) -> Outcome:
    """Train (or resume from ``setup.run_dir / resume.pt``) to ``trainer.total``.

    Args:
        setup: the run (folder, time budget, encoding and sizes of the MIDI samples).
        trainer: the algorithm's trainer.
        run: what a resume point must share with the run resuming it (``algo``, ``length``...).
        hooks: called after every step with ``(steps, policy)``; their metrics are logged.
        checkpoint_every: a resume point when a step crosses a multiple (0: only at the end).
        sample_every: MIDI samples when a step crosses a multiple (0: never).
        sample_folder: the samples' folder name under ``samples/``, formatted with ``step=``.
        desc: the progress bar's label.
        postfix: bar label -> metric shown beside ``reward/total``.
    """
    check_no_old_resume_file(setup.run_dir)
    path = setup.run_dir / RESUME_FILE
    resumed_from = None
    if path.exists():
        trainer.load_state_dict(read_resume(path, run, hooks))
        resumed_from = trainer.steps
        log.info("resumed from %s at %s %d", path, trainer.unit, trainer.steps)

    def save() -> None:
        write_resume(path, run, trainer.state_dict(), hooks)

    metrics_log = CSVLog(setup.run_dir, STEP_COLUMNS[trainer.unit], resume_step=resumed_from)
    started = time.perf_counter()
    start_steps = trainer.steps
    last: dict[str, float] = {}
    bar = progress(
        trainer.total, trainer.steps, desc, "it" if trainer.unit == "iterations" else "step"
    )
    while trainer.steps < trainer.total:
        if setup.time_s is not None and time.perf_counter() - started > setup.time_s:
            log.info(
                "time budget of %s s reached at %s %d", setup.time_s, trainer.unit, trainer.steps
            )
            break
        before = trainer.steps
        last = trainer.step()
        policy = trainer.policy() if hooks else None  # once: psi's is a tempered copy
        for hook in hooks:  # e.g. a critic's adversarial refresh, the constraints' metrics
            last.update(hook(trainer.steps, policy) or {})
        metrics_log.write(trainer.steps, last)
        if bar is not None:
            bar.update(trainer.steps - before)
            shown = {"reward": f"{last.get('reward/total', float('nan')):.1f}"}
            shown.update({k: f"{last.get(m, 0.0):.2f}" for k, m in (postfix or {}).items()})
            bar.set_postfix(**shown)
        if crossed(before, trainer.steps, checkpoint_every):
            save()
        if crossed(before, trainer.steps, sample_every):
            write_midi_samples(
                trainer.policy(),
                setup.encoding,
                setup.run_dir / "samples" / sample_folder.format(step=trainer.steps),
                setup.n_samples,
                setup.length,
                setup.seed,
                setup.conditions,
            )
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    save()  # a finished run's end is a resume point too: running it again changes nothing
    metrics_log.close()
    steps_per_s = (trainer.steps - start_steps) / max(seconds, 1e-9)
    log.info("%d %s (%.1f/s this process)", trainer.steps, trainer.unit, steps_per_s)
    return Outcome(last, seconds, resumed_from, steps_per_s)


def finish(
    setup: FinetuneSetup,
    trainer: Trainer,
    outcome: Outcome,
    tuned: nn.Module,
    info: dict[str, Any],
    metrics: Mapping[str, float] | None = None,
    extras: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Write ``tuned.safetensors`` (``tuned``, with ``info``) and ``samples/final``; the result."""
    path, final = finish_run(setup, tuned, trainer.policy(), info)
    return FinetuneResult(
        tuned=path,
        run_dir=setup.run_dir,
        steps=trainer.steps,
        step_unit=trainer.unit,
        seconds=outcome.seconds,
        resumed_from=outcome.resumed_from,
        metrics={**outcome.metrics, **(metrics or {}), **final},
        extras=dict(extras or {}),
    )
