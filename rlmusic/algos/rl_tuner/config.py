"""``algo=rl_tuner``'s settings: every key of the ``algo`` node, its shipped default and its
checks, with errors that name the key and the value (conf/algo/rl_tuner.yaml names the group;
Hydra composes it onto :class:`RLTunerConfig`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from rlmusic.algos.settings import read_config, resolve_kl_coef, run_key, run_keys, setup_value
from rlmusic.runtime import PRECISIONS

VARIANTS = ("q", "psi", "g")
EXPLORATIONS = ("egreedy", "boltzmann")
LOSSES = ("mse", "huber")


@dataclass
class RLTunerConfig:
    """What shapes an RL Tuner run: the paper's values, except ``kl_coef`` (module doc).

    Attributes:
        name: the group's name.
        variant: ``q`` | ``psi`` | ``g`` (the backups in :mod:`rlmusic.algos.rl_tuner.targets`).
        total_timesteps: env steps (one note each), rounded up to whole compositions.
        n_envs: compositions acting together in one round (one batched generator step each).
        learning_rate: Adam's.
        buffer_size: replay capacity in transitions (whole compositions of ``length``).
        learning_starts: env steps before the replay ratio starts counting.
        batch_size: transitions per gradient step: ``batch_size / length`` whole compositions.
        replay_ratio: replayed transitions per env step (the paper: 32 every 5 steps = 6.4).
        tau: soft target update after every gradient step.
        gamma: discount.
        max_grad_norm: gradient clip (global norm).
        loss: ``mse`` (the paper) | ``huber``.
        double_q: Double DQN targets (``q`` only).
        exploration: ``egreedy`` (linear epsilon) | ``boltzmann`` (sample the policy).
        exploration_initial_eps, exploration_final_eps, exploration_fraction: epsilon falls
            linearly from the first to the second over this share of ``total_timesteps``.
        boltzmann_temperature: ``q``'s exploration samples softmax(Q / this).
        psi_temperature: ``psi``'s c_T: the soft backup's and the policy's temperature.
        kl_coef: w, the KL weight (q: ``w log p_prior + r_task``; psi: ``log p_prior + r_task /
            w``; g: ``r_task / w``); None: the reward preset's ``reward.prior.weight`` (the
            paper: 1, where the three are the paper's rewards).
        precision: ``auto`` | ``fp32`` | ``bf16``: bf16 autocast of the replayed passes only
            (acting, rewards, the targets' arithmetic, Adam and the weights stay fp32); ``auto``
            is bf16 where the hardware computes it natively (rlmusic.runtime.choose_autocast).
        checkpoint_every: env steps between resume points (resume.pt with the replay buffer).
        sample_every: env steps between MIDI sample folders (0: only at the end).
        stats_every, stats_samples: env steps between KL / entropy estimates, on this many
            sampled pieces.
        apply_constraints: move reward.constraints' multipliers, once per round, on
            ``constraint_samples`` pieces the policy samples (not the exploring ones it acts);
            ``constraint_pieces`` pools rounds, ``constraint_gain`` scales the gains.
        length: steps per composition (from the run's setup, not a key of ``algo``).
    """

    name: str = run_key("rl_tuner")
    variant: str = "q"
    total_timesteps: int = run_key(1_000_000, resumable=True)
    n_envs: int = 256
    learning_rate: float = 1e-3
    buffer_size: int = 100_000
    learning_starts: int = 0
    batch_size: int = 1024
    replay_ratio: float = 6.4
    tau: float = 0.01
    gamma: float = 0.5
    max_grad_norm: float = 5.0
    loss: str = "mse"
    double_q: bool = False
    exploration: str = "egreedy"
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.1
    exploration_fraction: float = 0.5
    boltzmann_temperature: float = 1.0
    psi_temperature: float = 1.0
    kl_coef: float | None = 5.0
    precision: str = "auto"
    checkpoint_every: int = run_key(50_000, resumable=True)
    sample_every: int = run_key(100_000, resumable=True)
    stats_every: int = run_key(10_000, resumable=True)
    stats_samples: int = run_key(64, resumable=True)
    apply_constraints: bool = run_key(True)
    constraint_gain: float = run_key(4.0)  # scales reward.constraint_lr and _kp for this learner
    constraint_pieces: int = run_key(0)  # pool scored batches to this many pieces per move
    constraint_smoothing: float = run_key(0.8)  # the past's weight in each statistic's average
    constraint_hold: bool = run_key(True)  # keep the multipliers inside a band
    constraint_samples: int = 256  # pieces of the policy sampled each round for the constraints
    length: int = setup_value(32)

    def __post_init__(self) -> None:
        _choice("variant", self.variant, VARIANTS)
        _choice("exploration", self.exploration, EXPLORATIONS)
        _choice("loss", self.loss, LOSSES)
        _choice("precision", self.precision, PRECISIONS)
        _at_least("total_timesteps", self.total_timesteps, 1)
        _at_least("n_envs", self.n_envs, 1)
        _at_least("constraint_samples", self.constraint_samples, 1)
        _at_least("learning_starts", self.learning_starts, 0)
        for key in ("learning_rate", "replay_ratio", "max_grad_norm"):
            _positive(key, getattr(self, key))
        for key in ("boltzmann_temperature", "psi_temperature"):
            _positive(key, getattr(self, key))
        if self.kl_coef is not None and not self.kl_coef >= 0:
            raise ValueError(f"algo.kl_coef={self.kl_coef} must be >= 0 (0: no KL control)")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"algo.tau={self.tau} must be in (0, 1]")
        for key in ("gamma", "exploration_initial_eps", "exploration_final_eps"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"algo.{key}={getattr(self, key)} must be in [0, 1]")
        if not 0.0 < self.exploration_fraction <= 1.0:
            raise ValueError(
                f"algo.exploration_fraction={self.exploration_fraction} must be in (0, 1]"
            )
        if self.batch_size < self.length or self.batch_size % self.length:
            raise ValueError(
                f"algo.batch_size={self.batch_size} must be a multiple of length={self.length}: "
                "the replay reads whole compositions"
            )
        if self.buffer_size < self.batch_size:
            raise ValueError(
                f"algo.buffer_size={self.buffer_size} must hold at least one batch "
                f"(algo.batch_size={self.batch_size} transitions)"
            )
        if self.double_q and self.variant != "q":
            raise ValueError(
                f"algo.double_q=true applies to algo.variant=q only (got {self.variant!r}: "
                "psi and g back up a soft value, not a max)"
            )

    def with_kl_weight(self, prior_weight: float) -> RLTunerConfig:
        """This config with ``kl_coef`` resolved (None: the reward's ``prior_weight``)."""
        return replace(self, kl_coef=resolve_kl_coef(self.kl_coef, prior_weight))

    @property
    def pieces_per_batch(self) -> int:
        """Whole compositions per gradient step."""
        return self.batch_size // self.length

    @property
    def ratio(self) -> Fraction:
        """The replay ratio as an exact fraction (6.4 -> 32/5): gradient steps are counted with
        it, so no float rounding ever adds or drops one."""
        return Fraction(str(self.replay_ratio))

    def gradient_steps_due(self, env_steps: int) -> int:
        """Gradient steps a run owes after ``env_steps``: replayed transitions never exceed
        ``replay_ratio`` per env step past ``learning_starts`` and fall short by less than one
        batch."""
        counted = max(0, int(env_steps) - self.learning_starts)
        return int(counted * self.ratio // self.batch_size)

    def epsilon(self, env_steps: int) -> float:
        """Epsilon-greedy's epsilon after ``env_steps``: linear, then flat at the final value."""
        horizon = self.exploration_fraction * self.total_timesteps
        progress = min(1.0, env_steps / horizon)
        return self.exploration_initial_eps + progress * (
            self.exploration_final_eps - self.exploration_initial_eps
        )


# keys of the algo node that steer the run around the trainer, not the trainer itself
RUN_KEYS = run_keys(RLTunerConfig)


def rl_tuner_config(algo_cfg: Mapping[str, Any], length: int) -> RLTunerConfig:
    """The trainer's config from the ``algo`` node (every key of it) and the run's length.

    Raises:
        ValueError: an unknown key (the known ones are listed) or a bad value (named).
    """
    return read_config(RLTunerConfig, algo_cfg, length=int(length))


def _choice(key: str, value: Any, known: tuple[str, ...]) -> None:
    if value not in known:
        raise ValueError(f"algo.{key}={value!r} is not known; known: {', '.join(known)}")


def _at_least(key: str, value: int, low: int) -> None:
    if int(value) < low:
        raise ValueError(f"algo.{key}={value} must be >= {low}")


def _positive(key: str, value: float) -> None:
    if not float(value) > 0:
        raise ValueError(f"algo.{key}={value} must be > 0")
