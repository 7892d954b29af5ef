"""The schema of every task config (conf/<task>.yaml and its groups), as OmegaConf structured
configs: a misspelt key or a value of the wrong type is an error naming the key.

Values live in the YAML files; these classes only say which keys exist and their types
(``MISSING``: the YAML must give it). Open nodes (a reward's extra terms, rule parameters) are
``dict[str, Any]``: their contents are checked by the code that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List  # noqa: UP035 - OmegaConf reads typing's forms

from omegaconf import MISSING

# ruff: noqa: UP006, UP007 - structured configs need typing.Optional / List / Dict


@dataclass
class EncodingSchema:
    min_pitch: int = MISSING
    max_pitch: int = MISSING
    steps_per_quarter: int = MISSING
    melody_length: int = MISSING
    beats_per_bar: int = MISSING


@dataclass
class DataSchema:
    source: str = MISSING
    path: str | None = None
    cache_dir: str = MISSING
    split_seed: int = MISSING  # the held-out split (rlmusic.data.split), not the run's seed
    valid_fraction: float = MISSING
    test_fraction: float = MISSING
    workers: Any = MISSING  # "auto" or an int
    timeout_s: float = MISSING
    min_notes: int = MISSING
    limit: int | None = None


@dataclass
class PriorSchema:
    checkpoint: str | None = None
    weight: float = 1.0


@dataclass
class RewardSchema:
    c: float = MISSING
    tonic: int = MISSING
    mode: str = MISSING
    rules: List[str] = MISSING
    rule_params: Dict[str, Any] = field(default_factory=dict)
    prior: PriorSchema | None = None
    extra: Dict[str, Any] = field(default_factory=dict)
    constraints: Dict[str, Any] | None = None  # rlmusic.algos.constraints (null: none)
    constraint_lr: float = 0.05
    constraint_kp: float = 0.5
    constraint_max: float = 4.0


@dataclass
class BatchedAlgoSchema:
    name: str = MISSING
    apply_constraints: bool = True
    iterations: int = MISSING
    checkpoint_every: int = MISSING
    sample_every: int = MISSING
    method: str = MISSING
    batch_size: int = MISSING
    group_size: int = MISSING
    lr: float = MISSING
    value_lr: float = MISSING
    epochs: int = MISSING
    minibatch_size: int = MISSING
    clip_range: float = MISSING
    gamma: float = MISSING
    gae_lambda: float = MISSING
    vf_coef: float = MISSING
    ent_coef: float = MISSING
    kl_coef: float | None = None
    kl_pitch_coef: float | None = None
    kl_target: float | None = None
    kl_horizon: int = MISSING
    kl_mode: str = MISSING
    max_grad_norm: float = MISSING
    normalize_advantages: bool = MISSING
    temperature: float = MISSING


@dataclass
class SB3RunSchema:
    """What an SB3 algorithm's run reads: env-step budgets and intervals."""

    name: str = MISSING
    total_timesteps: int = MISSING
    checkpoint_every: int = MISSING
    sample_every: int = MISSING
    stats_every: int = MISSING
    stats_samples: int = MISSING
    log_interval: int = MISSING
    learning_rate: float = MISSING
    batch_size: int = MISSING
    gamma: float = MISSING
    max_grad_norm: float = MISSING


@dataclass
class PPOAlgoSchema(SB3RunSchema):
    n_envs: int = MISSING
    apply_constraints: bool = False
    n_steps: int = MISSING
    n_epochs: int = MISSING
    value_lr: float = MISSING
    clip_range: float = MISSING
    gae_lambda: float = MISSING
    ent_coef: float = MISSING
    vf_coef: float = MISSING
    normalize_advantage: bool = MISSING
    target_kl: float | None = None
    kl_mode: str = MISSING
    kl_coef: float | None = None
    kl_pitch_coef: float | None = None
    kl_target: float | None = None
    kl_horizon: int = MISSING


@dataclass
class RLTunerAlgoSchema:
    """``algo=rl_tuner`` (rlmusic.algos.rl_tuner: values are checked by RLTunerConfig)."""
    apply_constraints: bool = False

    name: str = MISSING
    variant: str = MISSING
    total_timesteps: int = MISSING
    n_envs: int = MISSING
    learning_rate: float = MISSING
    buffer_size: int = MISSING
    learning_starts: int = MISSING
    batch_size: int = MISSING
    replay_ratio: float = MISSING
    tau: float = MISSING
    gamma: float = MISSING
    max_grad_norm: float = MISSING
    loss: str = MISSING
    double_q: bool = MISSING
    exploration: str = MISSING
    exploration_initial_eps: float = MISSING
    exploration_final_eps: float = MISSING
    exploration_fraction: float = MISSING
    boltzmann_temperature: float = MISSING
    psi_temperature: float = MISSING
    kl_coef: float | None = None
    precision: str = MISSING
    checkpoint_every: int = MISSING
    sample_every: int = MISSING
    stats_every: int = MISSING
    stats_samples: int = MISSING


ALGO_SCHEMAS: dict[str, type] = {
    "batched": BatchedAlgoSchema,
    "ppo": PPOAlgoSchema,
    "rl_tuner": RLTunerAlgoSchema,
}


@dataclass
class CriticRefreshSchema:
    every: int = 0
    steps: int = MISSING
    samples: int = MISSING


@dataclass
class FinalEvalCriticSchema:
    enabled: bool = False
    steps: int = 1000
    samples: int = 5000


@dataclass
class FinalEvalSchema:
    """``rlmusic finetune``'s end-of-run evaluation (:mod:`rlmusic.evaluation.objective`)."""

    enabled: bool = False
    n: int = 200
    seed: int = 0
    critic: FinalEvalCriticSchema = field(default_factory=lambda: FinalEvalCriticSchema())


@dataclass
class FinetuneSchema:
    data: DataSchema | None = None
    critic_refresh: CriticRefreshSchema = field(default_factory=CriticRefreshSchema)
    reward: RewardSchema = MISSING
    algo: Any = MISSING  # one of ALGO_SCHEMAS, chosen by algo.name
    checkpoint: str = MISSING
    seed: int = MISSING
    device: str = MISSING
    threads: int | None = None
    length: int = MISSING
    time_s: float | None = None
    n_samples: int = MISSING
    allow_config_change: bool = False
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize
    final_eval: FinalEvalSchema = field(default_factory=FinalEvalSchema)


@dataclass
class DataTaskSchema:
    encoding: EncodingSchema = MISSING
    data: DataSchema = MISSING
    seed: int = MISSING
    progress: bool = True
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


@dataclass
class RewardsTaskSchema:
    encoding: EncodingSchema = MISSING
    reward: RewardSchema = MISSING
    seed: int = MISSING
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


@dataclass
class EvaluateSchema:
    encoding: EncodingSchema = MISSING
    data: DataSchema | None = None
    checkpoint: str = MISSING
    compare_to: List[str] = field(default_factory=list)
    prior: str = MISSING
    n: int = MISSING
    length: int = MISSING
    seed: int = MISSING
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


@dataclass
class SampleSchema:
    seed: int = MISSING
    checkpoint: str = MISSING
    n: int = MISSING
    length: int = MISSING
    temperature: float = MISSING
    top_k: int = MISSING
    top_p: float = MISSING
    primer: str | None = None
    out: str | None = None
    musicxml: int = MISSING
    qpm: float = MISSING
    batch_size: int = MISSING
    device: str = MISSING
    threads: int | None = None
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


@dataclass
class TrainSchema:
    epochs: int = MISSING
    batch_size: int = MISSING
    window: int = MISSING
    lr: float = MISSING
    min_lr_ratio: float = MISSING
    warmup_steps: int = MISSING
    weight_decay: float = MISSING
    beta1: float = MISSING
    beta2: float = MISSING
    grad_clip: float = MISSING
    max_steps: int | None = None
    checkpoint_every_steps: int = MISSING
    keep_epoch_checkpoints: bool = MISSING
    log_every_steps: int = MISSING
    valid_batch_size: int = MISSING
    init_lr: float = MISSING
    init_warmup_steps: int = MISSING


@dataclass
class PretrainSchema:
    encoding: EncodingSchema = MISSING
    data: DataSchema = MISSING
    model: Dict[str, Any] = MISSING  # checked by the architecture's own config class
    seed: int = MISSING
    init: str | None = None  # a checkpoint spec to start from
    out_dir: str | None = None
    device: str = MISSING
    compile: bool = MISSING
    progress: bool = MISSING
    threads: int | None = None
    resume: str = MISSING
    train: TrainSchema = MISSING
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


@dataclass
class SweepReportSchema:
    dir: str | None = None
    out: str | None = None
    rank_by: str | None = None
    direction: str | None = None
    markdown_metrics: List[str] = field(default_factory=list)
    plot: bool = True
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


@dataclass
class CompareBootstrapSchema:
    resamples: int = MISSING
    confidence: float = MISSING


@dataclass
class CompareDiversitySchema:
    ngram: int = MISSING


@dataclass
class CompareOverlapSchema:
    distances: int = MISSING


@dataclass
class CompareCriticSchema:
    enabled: bool = True
    steps: int = MISSING
    batch_size: int = MISSING
    lr: float = MISSING
    holdout: float = MISSING
    samples: int = MISSING
    real_windows: int = MISSING
    window_start: str = "onset"
    embed_dim: int = MISSING
    channels: int = MISSING
    dilations: List[int] = MISSING


@dataclass
class CompareSchema:
    encoding: EncodingSchema = MISSING
    data: DataSchema | None = None
    reward: RewardSchema | None = None
    models: Dict[str, str] = field(default_factory=dict)
    prior: str = MISSING
    n: int = MISSING
    length: int = MISSING
    seed: int = MISSING
    device: str = MISSING
    threads: int | None = None
    out: str | None = None
    k: int = MISSING
    audio: bool = MISSING
    synth: str = MISSING
    sample_rate: int = MISSING
    program: int = MISSING
    qpm: float = MISSING
    bootstrap: CompareBootstrapSchema = MISSING
    diversity: CompareDiversitySchema = MISSING
    overlap: CompareOverlapSchema = MISSING
    critic: CompareCriticSchema = MISSING
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


@dataclass
class ListenSchema:
    encoding: EncodingSchema = MISSING
    data: DataSchema | None = None
    models: Dict[str, str] = field(default_factory=dict)
    pairs: int = MISSING
    length: int = MISSING
    seed: int = MISSING
    device: str = MISSING
    out: str | None = None
    synth: str = MISSING
    sample_rate: int = MISSING
    program: int = MISSING
    qpm: float = MISSING
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


# task name -> (schema, {group key: (discriminating key, {option: schema})})
TASK_SCHEMAS: dict[str, tuple[type, dict[str, tuple[str, dict[str, type]]]]] = {
    "data": (DataTaskSchema, {}),
    "rewards": (RewardsTaskSchema, {}),
    "pretrain": (PretrainSchema, {}),
    "sample": (SampleSchema, {}),
    "evaluate": (EvaluateSchema, {}),
    "finetune": (FinetuneSchema, {"algo": ("name", ALGO_SCHEMAS)}),
    "sweep_report": (SweepReportSchema, {}),
    "compare": (CompareSchema, {}),
    "listen": (ListenSchema, {}),
}
