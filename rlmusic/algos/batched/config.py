"""``algo=batched``'s settings: every key of the ``algo`` node, its shipped default and its
checks (conf/algo/batched.yaml names the group; Hydra composes it onto this class)."""

from __future__ import annotations

from dataclasses import dataclass

from rlmusic.algos.settings import run_key, setup_value

METHODS = ("ppo", "grpo", "rloo")


@dataclass
class BatchedConfig:
    """The fast trainer's settings (rlmusic.algos.batched); every field is a key of ``algo``
    except ``length``, the run's steps per composition."""

    name: str = run_key("batched")
    iterations: int = run_key(150, resumable=True)  # the run's length in iterations
    checkpoint_every: int = run_key(20, resumable=True)  # iterations between resume points
    sample_every: int = run_key(50, resumable=True)  # iterations between MIDI samples (0: end)
    apply_constraints: bool = run_key(True)  # reward.constraints: moved once per batch
    constraint_gain: float = run_key(1.0)  # scales reward.constraint_lr and _kp for this learner
    constraint_pieces: int = run_key(0)  # pool scored batches to this many pieces per move
    constraint_smoothing: float = run_key(0.0)  # the past's weight in each statistic's average
    constraint_hold: bool = run_key(False)  # keep the multipliers inside a band
    method: str = "rloo"  # rloo | grpo (group baselines, no critic) | ppo (value head + GAE)
    batch_size: int = 256  # compositions per iteration
    # grpo / rloo: compositions per baseline group (each step against the other members'
    # reward-to-go at the same step)
    group_size: int = 64
    lr: float = 8e-5
    value_lr: float = 1e-3
    epochs: int = 1  # passes over each batch
    minibatch_size: int = 128
    clip_range: float = 0.2
    gamma: float = 0.5  # RL Tuner's discount; 1.0 for rewards paid only at the end
    gae_lambda: float = 0.95
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    # beta: weight of KL(pi || prior) per token; None: reward.prior.weight (resolve_kl_coef).
    # With kl_pitch_coef set it weighs only the event part (strike / hold / rest).
    kl_coef: float | None = 2.5
    # beta on the pitch part of the KL (which pitch, given that a note is struck); None: kl_coef
    # on the whole log ratio (see split_log_ratio). Applies to kl_mode=penalty; an adaptive
    # kl_target moves both betas by the same factor.
    kl_pitch_coef: float | None = 2.0
    kl_target: float | None = None  # a number makes the coefficient adaptive (Ziegler et al.)
    kl_horizon: int = 100_000
    kl_mode: str = "penalty"  # penalty (per-token, in the reward) | loss (k3 in the loss)
    max_grad_norm: float = 1.0
    normalize_advantages: bool = True
    temperature: float = 1.0  # folded into the policy's output layer before the first update
    length: int = setup_value(32)  # steps per composition (the run's ``length``)

    def __post_init__(self) -> None:
        from rlmusic.algos.kl import check_kl_mode  # torch: only when a config is built

        if self.method not in METHODS:
            raise ValueError(f"algo.method={self.method!r}; known: ppo, grpo, rloo")
        check_kl_mode(self.kl_mode, "batched", ("penalty", "loss"))
        if self.method != "ppo" and self.batch_size % self.group_size:
            raise ValueError(
                f"algo.batch_size={self.batch_size} must be a multiple of algo.group_size={self.group_size}"
            )
        if self.kl_pitch_coef is not None and self.kl_mode != "penalty":
            raise ValueError("algo.kl_pitch_coef splits the KL penalty: it needs kl_mode=penalty")
        if self.temperature <= 0:
            raise ValueError(f"algo.temperature must be > 0, got {self.temperature}")
        if self.batch_size % self.minibatch_size:
            raise ValueError(
                f"algo.batch_size={self.batch_size} must be a multiple of algo.minibatch_size={self.minibatch_size}"
            )
