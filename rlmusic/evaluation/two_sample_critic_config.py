"""The critic test's settings (:mod:`rlmusic.evaluation.two_sample_critic`): also the schema of
``critic`` in conf/compare.yaml (rlmusic.config.schemas). No torch: the CLI imports it to check
a config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class CriticTestConfig:
    """The critic's size and budget (``critic`` in conf/compare.yaml).

    ``steps`` x ``batch_size`` rows: 1,000 x 128, about 45 s per model on one busy core; more
    steps over-fit the few hundred real tunes the critic learns from (docs/finetuning.md,
    "The critic test"). ``samples``: pieces a generator column
    draws for the test (its own seeded draw beside the column's ``n``), since the test's power
    is bounded by its smaller side. ``real_windows``: windows cut from each real share at most.
    ``window_start``: where a real window starts (``any`` | ``onset`` | ``bar``; always on a
    time step's first token, and ``onset`` is every voice striking at once).
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    holdout: float = 0.3
    samples: int = 5000
    real_windows: int = 20000
    window_start: str = "onset"
    embed_dim: int = 32
    channels: int = 64
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    cache: bool = True  # read a figure computed before (rlmusic.evaluation.critic_test_cache)

    def settings(self) -> dict:
        """What decides a figure: every field but ``cache`` (a cache key's settings)."""
        return {k: v for k, v in asdict(self).items() if k != "cache"}

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"critic.holdout must lie in (0, 1), got {self.holdout}")
        if self.samples < 2 or self.real_windows < 2:
            raise ValueError(
                f"critic.samples and critic.real_windows must be >= 2, got {self.samples} "
                f"and {self.real_windows}"
            )
