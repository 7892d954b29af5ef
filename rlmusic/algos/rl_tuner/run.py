"""``algo=rl_tuner``: :func:`train` runs :class:`RLTunerTrainer` rounds to ``algo.total_timesteps``.

Rewards per variant (w: ``algo.kl_coef``, by default the reward preset's prior weight, 1 in
the paper, where all three are the paper's rewards):

- ``q``: ``setup.env_reward()``, i.e. ``w log p_prior(a|s) + r_task`` (the paper's
  ``log p_prior + r_MT / c``);
- ``psi``: the same over w, ``log p_prior(a|s) + r_task / w``: with c_T = 1 its policy
  softmax(Psi) maximises ``(E[sum r_task] - w KL(pi || p_prior)) / w``, and the network's
  initial values (the generator's logits) are the prior's policy whatever w is (a temperature
  of w would start from the prior flattened by w);
- ``g``: ``r_task / w``, with ``log p_prior`` inside the soft backup (targets.py): G-learning's
  policy ``p_prior exp(G)`` maximises the same objective.

Run folder: ``tuned.safetensors`` (the trained network; its ``info.policy`` makes every task
load the trained policy: see :mod:`rlmusic.models.policy`), ``resume.pt`` (exact resume:
weights, target network, optimizer, replay buffer, random generators, counters; re-run the same
command with the same ``hydra.run.dir``), ``metrics.csv`` and ``tb/`` (one row per round),
``samples/step_NNNNNNNN/*.mid``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rlmusic.algos.constraints import applied, restore_saved
from rlmusic.algos.outputs import finish_run, policy_statistics, write_midi_samples
from rlmusic.algos.reference import PRIOR_TERM
from rlmusic.algos.resume_point import read_resume_point
from rlmusic.algos.rl_tuner.config import RLTunerConfig, rl_tuner_config
from rlmusic.algos.rl_tuner.trainer import RewardFn, RewardOut, RLTunerTrainer
from rlmusic.algos.setup import FinetuneResult, FinetuneSetup
from rlmusic.models.checkpoint import atomic_torch_save
from rlmusic.models.policy import g_policy_info, psi_policy_info
from rlmusic.runlog import CSVLog

log = logging.getLogger(__name__)
RESUME_FILE = "resume.pt"
RESUME_FORMAT = "rlmusic-rl-tuner-resume"
RESUME_VERSION = 1
STEP_COLUMN = "env_steps"


def reward_function(setup: FinetuneSetup, config: RLTunerConfig) -> RewardFn:
    """The variant's learning reward of whole compositions, and the shares it logs.

    Every variant logs the same terms, the prior's included (``reward/prior``: w log p_prior),
    so ``reward/total`` is the paper's ``log p_prior + r_MT / c`` in every run.

    Raises:
        ValueError: ``g`` without a prior, or with a prior weight <= 0.
    """
    reference = setup.reference
    if config.variant != "g":
        if not reference.configured:
            log.warning("no prior in the reward: %s-learning without KL control", config.variant)
        score = setup.env_reward().score if reference.configured else setup.reward.score
        if setup.constraints is not None:  # the same term objects: the multipliers reach both
            score = setup.constraints.wrap(score)
        # psi learns on the paper's reward over w (see the module docstring)
        paid = config.variant == "psi" and reference.configured and reference.weight > 0
        scale = 1.0 / reference.weight if paid else 1.0

        def reward(tokens: np.ndarray, prior_log_probs: np.ndarray | None) -> RewardOut:
            total, shares = score(tokens)  # the prior's term scores the pieces in one pass
            return total * scale, {"total": total, **shares}

        return reward
    if not reference.configured or reference.weight <= 0:
        raise ValueError(
            "algo.variant=g needs a prior with a weight > 0 (reward.prior.checkpoint, "
            f"reward.prior.weight or algo.kl_coef; got weight {reference.weight}): G-learning's "
            "policy is p_prior exp(G)"
        )
    weight = reference.weight
    task_score = setup.reward.score
    if setup.constraints is not None:
        task_score = setup.constraints.wrap(task_score)

    def g_reward(tokens: np.ndarray, prior_log_probs: np.ndarray | None) -> RewardOut:
        task, shares = task_score(tokens)
        if prior_log_probs is not None:  # logged only: acting stepped the prior already
            shares = {**shares, PRIOR_TERM: weight * prior_log_probs}
        return task / weight, {"total": sum(shares.values()), **shares}

    return g_reward


def run_identity(setup: FinetuneSetup, config: RLTunerConfig) -> dict[str, Any]:
    """What a resume point must share with the run resuming it."""
    return {
        "algo": "rl_tuner",
        "variant": config.variant,
        "length": setup.length,
        "vocab_size": int(setup.generator.vocab_size),
        "n_envs": config.n_envs,
        "buffer_size": config.buffer_size,
    }


def load_resume(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    """The resume point saved at ``path`` (``trainer``, and ``constraints`` when the run had
    them), after checking it belongs to this kind of run.

    Raises:
        ValueError: another algorithm's or kind of run's resume point (both values named), or
            another version of this one.
        CheckpointError: a damaged file or one holding pickled objects.
    """
    state = read_resume_point(path, RESUME_FORMAT, RESUME_VERSION, run, "an RL Tuner resume point")
    return state


def train(setup: FinetuneSetup, algo_cfg: Mapping[str, Any]) -> FinetuneResult:
    """``rlmusic finetune algo=rl_tuner``: train (or resume) to ``algo.total_timesteps``."""
    setup = applied(setup, algo_cfg, "rl_tuner", default=False)
    config = rl_tuner_config(algo_cfg, setup.length)
    if setup.reference.configured:
        config = config.with_kl_weight(setup.reference.weight)
        # w is the prior's weight everywhere: in the reward, the logs and the checkpoint's info
        setup = replace(setup, reference=replace(setup.reference, weight=config.kl_coef))
        source = "algo.kl_coef" if algo_cfg.get("kl_coef") is not None else "reward.prior.weight"
        log.info("KL weight w = %g (%s)", config.kl_coef, source)
    elif config.kl_coef is not None:
        log.warning("algo.kl_coef=%g is unused: the reward has no prior", config.kl_coef)
    checkpoint_every = _interval(algo_cfg, "checkpoint_every")
    sample_every = _interval(algo_cfg, "sample_every")
    stats_every = _interval(algo_cfg, "stats_every")
    stats_samples = int(algo_cfg.get("stats_samples", 64))
    trainer = RLTunerTrainer(
        setup.generator,
        reward_function(setup, config),
        config,
        prior=setup.reference.generator,
        seed=setup.seed,
        device=setup.device,
    )
    log.info(
        "%s-learning: %d compositions per round, %d transitions per gradient step, replayed "
        "passes in %s",
        config.variant,
        config.n_envs,
        config.batch_size,
        trainer.precision,
    )
    run = run_identity(setup, config)
    path = setup.run_dir / RESUME_FILE
    resumed_from = None
    if path.exists():
        state = load_resume(path, run)  # read once: the trainer and the multipliers
        trainer.load_state_dict(state["trainer"])
        restore_saved(setup.constraints, state.get("constraints"), path)
        resumed_from = trainer.env_steps
        log.info("resumed from %s at env step %d", path, trainer.env_steps)

    def save() -> None:
        state = {"format": RESUME_FORMAT, "version": RESUME_VERSION, "run": run}
        if setup.constraints is not None:  # rule targets' multipliers (reward.constraints)
            state["constraints"] = setup.constraints.state_dict()
        atomic_torch_save({**state, "trainer": trainer.state_dict()}, path)

    metrics_log = CSVLog(setup.run_dir, STEP_COLUMN, resume_step=resumed_from)
    samples = setup.run_dir / "samples"
    started = time.perf_counter()
    start_steps = trainer.env_steps
    last: dict[str, float] = {}
    bar = _progress(config.total_timesteps, trainer.env_steps)
    while trainer.round_size() > 0:
        if setup.time_s is not None and time.perf_counter() - started > setup.time_s:
            log.info("time budget of %s s reached at env step %d", setup.time_s, trainer.env_steps)
            break
        before = trainer.env_steps
        last = trainer.round()
        if setup.constraints is not None:
            last.update(setup.constraints.latest)
        if trainer.rounds == 1 or _crossed(before, trainer.env_steps, stats_every):
            stats = policy_statistics(
                trainer.policy(), setup, stats_samples, setup.seed + 7, with_reward=False
            )
            last.update(stats)
        metrics_log.write(trainer.env_steps, last)
        if bar is not None:
            bar.update(trainer.env_steps - before)
            bar.set_postfix(
                reward=f"{last['reward/total']:.1f}", td=f"{last.get('losses/td', 0):.2f}"
            )
        if _crossed(before, trainer.env_steps, checkpoint_every):
            save()
        if _crossed(before, trainer.env_steps, sample_every):
            write_midi_samples(
                trainer.policy(),
                setup.encoding,
                samples / f"step_{trainer.env_steps:08d}",
                setup.n_samples,
                setup.length,
                setup.seed,
            )
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    save()  # a finished run's end is a resume point too: running it again changes nothing
    metrics_log.close()
    steps_per_s = (trainer.env_steps - start_steps) / max(seconds, 1e-9)
    log.info("%d env steps (%.0f/s this process)", trainer.env_steps, steps_per_s)
    info = {
        "algo": "rl_tuner",
        "variant": config.variant,
        "env_steps": trainer.env_steps,
        "gradient_steps": trainer.gradient_steps,
        **_policy_info(setup, config),
    }
    tuned, final = finish_run(setup, trainer.q_network, trainer.policy(), info)
    return FinetuneResult(
        tuned=tuned,
        run_dir=setup.run_dir,
        steps=trainer.env_steps,
        step_unit="env_steps",
        seconds=seconds,
        resumed_from=resumed_from,
        metrics={**last, "charts/steps_per_s": steps_per_s, **final},
        extras={"trainer": trainer},
    )


def _policy_info(setup: FinetuneSetup, config: RLTunerConfig) -> dict[str, Any]:
    """``info["policy"]`` of the tuned checkpoint: what every task must sample."""
    if config.variant == "g":
        return {"policy": g_policy_info(setup.reference.spec)}
    if config.variant == "psi":
        return {"policy": psi_policy_info(config.psi_temperature)}
    return {}


def _interval(algo_cfg: Mapping[str, Any], key: str) -> int:
    value = int(algo_cfg.get(key) or 0)
    if value < 0:
        raise ValueError(f"algo.{key}={value} must be >= 0 (0: never)")
    return value


def _crossed(before: int, after: int, every: int) -> bool:
    """True when (before, after] holds a multiple of ``every`` (never for every = 0)."""
    return every > 0 and after // every > before // every


def _progress(total: int, initial: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the dependencies
        return None
    return tqdm(total=total, initial=initial, desc="rl_tuner", unit="step")
