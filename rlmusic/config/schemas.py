"""The schema of every task config (conf/<task>.yaml and its groups), as OmegaConf structured
configs: a misspelt key or a value of the wrong type is an error naming the key.

Values live in the YAML files; these classes only say which keys exist and their types
(``MISSING``: the YAML must give it). Where a layer below has its own config class, the schema
is that class (``train``: :class:`~rlmusic.pretraining.config.TrainConfig`; ``critic`` of compare:
:class:`~rlmusic.evaluation.two_sample_critic_config.CriticTestConfig`); ``finetune``'s ``algo`` is
checked against the algorithm's class by the task (rlmusic/config does not import
algorithms). Open nodes (a reward's extra terms, rule parameters) are ``dict[str, Any]``: their
contents are checked by the code that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List  # noqa: UP035 - OmegaConf reads typing's forms

from omegaconf import MISSING

from rlmusic.evaluation.two_sample_critic_config import CriticTestConfig
from rlmusic.pretraining.config import TrainConfig

# ruff: noqa: UP006, UP007 - structured configs need typing.Optional / List / Dict


@dataclass
class EncodingSchema:
    kind: str = "melody"  # rlmusic.data.encodings.ENCODINGS
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
    by_algo: Dict[str, Any] | None = None  # a learner's own c and bands (null: none)
    tonic: int = MISSING
    mode: str = MISSING
    rules: List[str] = MISSING
    rule_params: Dict[str, Any] = field(default_factory=dict)
    prior: PriorSchema | None = None
    extra: Dict[str, Any] = field(default_factory=dict)
    constraints: Dict[str, Any] | None = None  # rlmusic.algos.constraints (null: none)
    targets: Dict[str, Any] | None = None  # where the bands come from (rlmusic.algos.data_targets)
    constraint_lr: float = 0.05
    constraint_kp: float = 0.5
    constraint_max: float = 4.0


@dataclass
class CriticRefreshSchema:
    every: int = 0
    steps: int = MISSING
    samples: int = MISSING


@dataclass
class FinalEvalCriticSchema:
    enabled: bool = False
    steps: int | None = None  # null: the kind's own, as compare's critic
    samples: int = 5000


@dataclass
class FinalEvalSchema:
    """``rlmusic finetune``'s end-of-run evaluation (:mod:`rlmusic.evaluation.objective`)."""

    enabled: bool = False
    n: int = 200
    seed: int = 0
    critic: FinalEvalCriticSchema = field(default_factory=lambda: FinalEvalCriticSchema())


@dataclass
class SopranosSchema:
    melodies: str | None = None  # a melody corpus (data group) whose train split joins Bach's
    melody_share: float = 0.5  # the share of the rollouts' sopranos that are melodies


@dataclass
class FinetuneSchema:
    encoding: EncodingSchema | None = None  # set by a data group of another kind (chorales)
    sopranos: SopranosSchema = field(default_factory=SopranosSchema)
    data: DataSchema | None = None
    critic_refresh: CriticRefreshSchema = field(default_factory=CriticRefreshSchema)
    reward: RewardSchema = MISSING
    # open here: the algorithm's own config class checks it (rlmusic.algos.CONFIGS, through
    # rlmusic.tasks.finetune.check_algo); Hydra composes conf/algo/*.yaml onto that class
    algo: Any = MISSING
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
class EvaluateBootstrapSchema:
    resamples: int = 1000


@dataclass
class EvaluateSchema:
    encoding: EncodingSchema = MISSING
    data: DataSchema | None = None
    checkpoint: str = MISSING
    compare_to: List[str] = field(default_factory=list)
    prior: str | None = None
    n: int = MISSING
    length: int | None = None
    seed: int = MISSING
    bootstrap: EvaluateBootstrapSchema = field(default_factory=lambda: EvaluateBootstrapSchema())
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
class PretrainSchema:
    encoding: EncodingSchema = MISSING
    data: DataSchema = MISSING
    model: Dict[str, Any] = MISSING  # checked by the architecture's own config class
    seed: int = MISSING
    init: str | None = None  # a checkpoint spec to start from
    condition: str | None = None  # soprano: a harmoniser (rlmusic.data.harmonisation)
    out_dir: str | None = None
    device: str = MISSING
    compile: bool = MISSING
    progress: bool = MISSING
    threads: int | None = None
    resume: str = MISSING
    train: TrainConfig = MISSING  # the pretraining loop's own config class
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
class CompareCriticSchema(CriticTestConfig):
    """``critic`` in conf/compare.yaml: the critic test's own config, and whether it runs."""

    enabled: bool = True


@dataclass
class CompareSchema:
    encoding: EncodingSchema = MISSING
    data: DataSchema | None = None
    reward: RewardSchema | None = None
    models: Dict[str, str] = field(default_factory=dict)
    prior: str | None = None
    n: int = MISSING
    length: int | None = None
    seed: int = MISSING
    device: str = MISSING
    threads: int | None = None
    out: str | None = None
    k: int = MISSING
    audio: bool = MISSING
    synth: str = MISSING
    sample_rate: int = MISSING
    program: int | None = None  # null: the encoding's own (piano; organ for chorales)
    qpm: float = MISSING
    bootstrap: CompareBootstrapSchema = MISSING
    diversity: CompareDiversitySchema = MISSING
    overlap: CompareOverlapSchema = MISSING
    critic: CompareCriticSchema = MISSING  # the critic test's config, plus enabled
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
    program: int | None = None  # null: the encoding's own (piano; organ for chorales)
    qpm: float = MISSING
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


@dataclass
class HarmoniseSchema:
    encoding: EncodingSchema = MISSING  # for data=chorales (melody=heldout)
    data: DataSchema | None = None
    checkpoint: str = MISSING
    melody: str = MISSING  # a file, a folder or heldout
    out: str | None = None
    seed: int = MISSING
    temperature: float = MISSING
    n: int = MISSING
    length: int | None = None
    soprano_range: List[int] | None = None
    max_dropped_notes: float = MISSING
    max_steps: int = MISSING
    timeout_s: float = MISSING
    qpm: float = MISSING
    resamples: int = MISSING
    device: str = MISSING
    threads: int | None = None
    objective: str | None = None
    objective_direction: str = "maximize"  # or minimize


# task name -> its schema
TASK_SCHEMAS: dict[str, type] = {
    "prepare_data": DataTaskSchema,  # rlmusic data
    "list_rewards": RewardsTaskSchema,  # rlmusic rewards
    "pretrain": PretrainSchema,
    "sample": SampleSchema,
    "evaluate": EvaluateSchema,
    "finetune": FinetuneSchema,
    "sweep_report": SweepReportSchema,
    "compare": CompareSchema,
    "listen": ListenSchema,
    "harmonise": HarmoniseSchema,
}
