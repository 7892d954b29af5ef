"""The critic test's settings (:mod:`rlmusic.evaluation.two_sample_critic`): also the schema of
``critic`` in conf/compare.yaml (rlmusic.config.schemas). No torch: the CLI imports it to check
a config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

# The critic's size where ``critic`` leaves it null, by the encoding's kind. A melody's 300 steps
# of a 32-channel critic kept the power of 1,000 steps at 64 channels in a fifth of the time
# (docs/results/critic_test_speed.md); a chorale keeps the size its results were read at.
SIZES_BY_KIND: dict[str, dict[str, int]] = {
    "melody": {"steps": 300, "channels": 32},
    "chorale": {"steps": 1000, "channels": 64},
}
DEFAULT_SIZE: dict[str, int] = {"steps": 1000, "channels": 64}  # a kind with no size measured


@dataclass
class CriticTestConfig:
    """The critic's size and budget (``critic`` in conf/compare.yaml).

    ``steps`` x ``batch_size`` rows of a critic ``channels`` wide; ``steps`` and ``channels``
    null are the kind's own (:data:`SIZES_BY_KIND`, :meth:`for_kind`): 300 steps of a 32-channel
    critic for a melody, about 8 s of one core per model, kept the power of 1,000 steps at 64
    channels (docs/results/critic_test_speed.md); more steps over-fit the few hundred real
    tunes the critic learns from (docs/finetuning.md, "The critic test").
    ``samples``: pieces a generator column
    draws for the test (its own seeded draw beside the column's ``n``), since the test's power
    is bounded by its smaller side. ``real_windows``: windows cut from each real share at most.
    ``window_start``: where a real window starts (``any`` | ``onset`` | ``bar``; always on a
    time step's first token, and ``onset`` is every voice striking at once). ``cache``: read a
    figure computed before (:mod:`rlmusic.evaluation.critic_test_cache`; not a setting of the
    figure).
    """

    steps: int | None = None
    batch_size: int = 128
    lr: float = 2e-3
    holdout: float = 0.3
    samples: int = 5000
    real_windows: int = 20000
    window_start: str = "onset"
    embed_dim: int = 32
    channels: int | None = None
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    cache: bool = True

    def for_kind(self, kind: str) -> CriticTestConfig:
        """This config with ``steps`` and ``channels`` null replaced by the encoding kind's own."""
        size = SIZES_BY_KIND.get(kind, DEFAULT_SIZE)
        return replace(
            self,
            steps=size["steps"] if self.steps is None else self.steps,
            channels=size["channels"] if self.channels is None else self.channels,
        )

    def settings(self) -> dict:
        """What decides a figure: every field but ``cache`` (a cache key's settings)."""
        return {k: v for k, v in asdict(self).items() if k != "cache"}

    def __post_init__(self) -> None:
        for name in ("steps", "channels"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(
                    f"critic.{name} must be >= 1 (or null: the kind's own), got {value}"
                )
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"critic.holdout must lie in (0, 1), got {self.holdout}")
        if self.samples < 2 or self.real_windows < 2:
            raise ValueError(
                f"critic.samples and critic.real_windows must be >= 2, got {self.samples} "
                f"and {self.real_windows}"
            )
