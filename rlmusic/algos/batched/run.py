"""``algo=batched``: :func:`train` runs :class:`BatchedTrainer` for ``algo.iterations``.

Per-token reward: the task reward (rules / c and extra terms) minus the KL control against the
reference, ``beta * (log pi - log p_prior)`` (``kl_mode=penalty``; with ``kl_pitch_coef`` the
strike / hold / rest part and the pitch part get their own betas) or k3 in the loss
(``kl_mode=loss``). ``kl_coef: null`` takes the reward preset's prior weight. With beta = 1 this
is RL Tuner's reward ``log p_prior + r_MT / c`` plus the policy's entropy.

Run folder: ``tuned.safetensors``, ``trainer_state.pt`` (exact resume: run the same command with
the same ``hydra.run.dir``), ``metrics.csv``, ``tb/``, ``samples/iter_NNNNN/*.mid``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import torch

from rlmusic.algos.batched.trainer import BatchedConfig, BatchedTrainer
from rlmusic.algos.constraints import applied
from rlmusic.algos.outputs import finish_run, write_midi_samples
from rlmusic.algos.setup import FinetuneResult, FinetuneSetup
from rlmusic.models.checkpoint import atomic_torch_save
from rlmusic.runlog import CSVLog

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.pt"
KL_MODES = ("penalty", "loss")  # see rlmusic.algos.kl.KL_MODES
RUN_KEYS = (
    "name",
    "iterations",
    "checkpoint_every",
    "sample_every",
    "apply_constraints",
)  # not BatchedConfig's


def batched_config(algo_cfg: Mapping[str, Any], setup: FinetuneSetup) -> BatchedConfig:
    """The trainer's config from ``algo`` (run-control keys dropped, ``kl_coef: null`` filled)."""
    values = {k: v for k, v in dict(algo_cfg).items() if k not in RUN_KEYS}
    known = {f.name for f in fields(BatchedConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"algo=batched has no key(s) {unknown}; known: {sorted(known | set(RUN_KEYS))}"
        )
    if values.get("kl_coef") is None:
        values["kl_coef"] = setup.reference.weight
    return BatchedConfig(length=setup.length, **values)


def train(setup: FinetuneSetup, algo_cfg: Mapping[str, Any]) -> FinetuneResult:
    """Train (or resume) to ``algo.iterations``, stopping early at ``setup.time_s``."""
    setup = applied(setup, algo_cfg, "batched", default=True)
    config = batched_config(algo_cfg, setup)
    iterations = int(algo_cfg["iterations"])
    checkpoint_every = int(algo_cfg["checkpoint_every"])
    sample_every = int(algo_cfg["sample_every"] or 0)
    # reward.constraints: rule weights scaled by multipliers that follow their targets; their
    # state rides in the resume point with the other hooks'
    constraints = setup.constraints
    hooks = [*setup.hooks, constraints] if constraints is not None else list(setup.hooks)
    trainer = BatchedTrainer(
        setup.generator,
        constraints.wrap(setup.reward.score) if constraints is not None else setup.reward.score,
        config,
        seed=setup.seed,
        prior=setup.reference.generator,
        device=setup.device,
    )
    state_path = setup.run_dir / STATE_FILE
    resumed_from = None

    def save_state() -> None:
        # hooks that change the reward (a critic's refresh) are part of the resume point
        states = [h.state_dict() if hasattr(h, "state_dict") else {} for h in hooks]
        atomic_torch_save({**trainer.state_dict(), "hooks": states}, state_path)

    if state_path.exists():
        state = torch.load(state_path, map_location=setup.device, weights_only=True)
        trainer.load_state_dict(state)
        _load_hooks(hooks, state.get("hooks", []), state_path)
        resumed_from = trainer.iteration
        log.info("resumed from %s at iteration %d", state_path, trainer.iteration)
    metrics_log = CSVLog(setup.run_dir, "iteration", resume_step=trainer.iteration)

    started = time.perf_counter()
    last: dict[str, float] = {}
    bar = _progress(iterations, trainer.iteration)
    while trainer.iteration < iterations:
        if setup.time_s is not None and time.perf_counter() - started > setup.time_s:
            log.info("time budget of %s s reached at iteration %d", setup.time_s, trainer.iteration)
            break
        last = trainer.step()
        for hook in hooks:  # e.g. a critic's adversarial refresh, the constraints' metrics
            last.update(hook(trainer.iteration, trainer.policy) or {})
        metrics_log.write(trainer.iteration, last)
        if bar is not None:
            bar.update()
            bar.set_postfix(
                reward=f"{last['reward/total']:.1f}", kl=f"{last['kl/prior_per_token']:.2f}"
            )
        if trainer.iteration % checkpoint_every == 0:
            save_state()
        if sample_every and trainer.iteration % sample_every == 0:
            write_midi_samples(
                trainer.policy,
                setup.encoding,
                setup.run_dir / "samples" / f"iter_{trainer.iteration:05d}",
                setup.n_samples,
                setup.length,
                setup.seed,
            )
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    save_state()
    metrics_log.close()
    info = {"algo": "batched", "iterations": trainer.iteration}
    tuned, final = finish_run(setup, trainer.policy, trainer.policy, info)
    return FinetuneResult(
        tuned=tuned,
        run_dir=setup.run_dir,
        steps=trainer.iteration,
        step_unit="iterations",
        seconds=seconds,
        resumed_from=resumed_from,
        metrics={**last, **final},
        extras={"trainer": trainer},
    )


def _load_hooks(hooks: list[Any], states: list[dict[str, Any]], path: Any) -> None:
    """Give each hook its saved state; a resume point of another set of hooks is an error."""
    stateful = [h for h in hooks if hasattr(h, "load_state_dict")]
    saved = [s for s in states if s]
    if len(stateful) != len(saved):
        raise ValueError(
            f"{path} was saved with {len(saved)} stateful hook(s) (a critic refresh, reward "
            f"constraints) and this run has {len(stateful)}: resume with the same critic_refresh "
            "and reward.constraints settings, or use a new output folder (hydra.run.dir)"
        )
    for hook, state in zip(stateful, saved):
        hook.load_state_dict(state)


def _progress(total: int, initial: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the dependencies
        return None
    return tqdm(total=total, initial=initial, desc="finetune", unit="it")
