"""``algo=ppo``'s settings: every key of the ``algo`` node, its shipped default and its checks
(conf/algo/ppo.yaml names the group; Hydra composes it onto :class:`PPOConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rlmusic.algos.settings import run_key

KL_MODES = ("penalty", "prior_reward")  # see rlmusic.algos.kl.KL_MODES


def sb3_arg(default: Any) -> Any:
    """A field passed on to SB3's ``PPO`` under its own name (:data:`PPO_KEYS`)."""
    return dataclasses.field(default=default, metadata={"sb3": True})


@dataclass
class PPOConfig:
    """stable-baselines3 PPO with the generator as the policy (rlmusic.algos.sb3.ppo)."""

    name: str = run_key("ppo")
    total_timesteps: int = run_key(150_000, resumable=True)  # env steps (one note each)
    n_envs: int = 16  # a DummyVecEnv of CompositionEnv
    n_steps: int = sb3_arg(64)  # env steps per env per rollout; a multiple of length
    batch_size: int = sb3_arg(256)  # notes per minibatch
    n_epochs: int = sb3_arg(4)
    learning_rate: float = sb3_arg(1e-4)  # the generator's (Adam)
    value_lr: float = 1e-3  # the value function's (its own Adam)
    clip_range: float = sb3_arg(0.2)
    gamma: float = sb3_arg(0.5)  # RL Tuner's discount, as the batched default
    gae_lambda: float = sb3_arg(0.95)
    ent_coef: float = sb3_arg(0.0)
    vf_coef: float = sb3_arg(0.5)  # scales the value loss; it reaches only the value function
    max_grad_norm: float = sb3_arg(1.0)  # clips the generator's and the value's gradients apart
    normalize_advantage: bool = sb3_arg(True)
    target_kl: float | None = sb3_arg(None)  # SB3's early stop of an update's epochs
    # penalty: -beta (log pi - log p_prior) per note, KL control | prior_reward: RL Tuner's
    # +w log p_prior in the env reward (KL control plus an entropy penalty of weight w)
    kl_mode: str = "penalty"
    # penalty: beta per note (with kl_pitch_coef: on strike / hold / rest); None: the prior's
    # weight (resolve_kl_coef)
    kl_coef: float | None = 2.5
    # penalty: beta on the pitch part (which pitch, given a note is struck); None: kl_coef on
    # the whole log ratio
    kl_pitch_coef: float | None = None
    kl_target: float | None = None  # penalty: a per-token KL target makes the betas adaptive
    kl_horizon: int = 100_000
    checkpoint_every: int = run_key(16_384, resumable=True)  # env steps between resume points
    sample_every: int = run_key(65_536, resumable=True)  # env steps between MIDI samples (0: end)
    stats_every: int = run_key(4096, resumable=True)  # env steps between KL / entropy estimates
    stats_samples: int = run_key(64, resumable=True)  # pieces sampled for those estimates
    log_interval: int = run_key(1, resumable=True)  # PPO iterations between log dumps
    apply_constraints: bool = run_key(False)  # reward.constraints (docs/finetuning.md, "Realism")
    constraint_gain: float = run_key(2.0)  # scales reward.constraint_lr and _kp for this learner
    constraint_pieces: int = run_key(0)  # pool scored batches to this many pieces per move
    constraint_smoothing: float = run_key(0.8)  # the past's weight in each statistic's average
    constraint_hold: bool = run_key(True)  # keep the multipliers inside a band
    # pieces sampled from the policy after each rollout for the constraints (0: the rollout's
    # own finished pieces, 32 a rollout at the shipped size: too few to count tonic starts)
    constraint_samples: int = run_key(256)

    def __post_init__(self) -> None:
        from rlmusic.algos.kl import check_kl_mode  # torch: only when a config is built

        check_kl_mode(self.kl_mode, "ppo", KL_MODES)
        if self.kl_mode != "penalty" and (
            self.kl_target is not None or self.kl_pitch_coef is not None
        ):
            raise ValueError(
                "algo.kl_target and algo.kl_pitch_coef shape the KL penalty: they need "
                "algo.kl_mode=penalty"
            )


# the keys passed on to SB3's PPO as they are
PPO_KEYS = tuple(f.name for f in dataclasses.fields(PPOConfig) if f.metadata.get("sb3"))
