"""The run harness (rlmusic.algos.harness): intervals, the time budget, hooks' state in the
resume point, and refusing another run's (or an earlier release's) resume file."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from rlmusic.algos import harness
from rlmusic.algos.harness import RESUME_FILE, crossed, read_resume, run_trainer, write_resume


class Counter:
    """A toy trainer: ``size`` steps per call, a weight that counts them."""

    def __init__(self, total: int, size: int = 1, unit: str = "iterations") -> None:
        self.unit, self.total, self.size = unit, total, size
        self.n, self.weight = 0, torch.zeros(1)
        self.module = torch.nn.Linear(1, 1)

    @property
    def steps(self) -> int:
        return self.n

    def step(self) -> dict[str, float]:
        self.n += self.size
        self.weight += self.size
        return {"reward/total": float(self.n)}

    def policy(self) -> torch.nn.Module:
        return self.module

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n, "weight": self.weight.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n, self.weight = int(state["n"]), state["weight"].clone()


class Tally:
    """A stateful hook: counts its calls (saved in the resume point)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, step: int, policy: torch.nn.Module) -> dict[str, float]:
        self.calls += 1
        return {"hook/calls": float(self.calls)}

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls = int(state["calls"])


@dataclass
class Setup:
    """What the harness reads of a FinetuneSetup."""

    run_dir: Path
    time_s: float | None = None
    encoding: Any = None
    n_samples: int = 1
    length: int = 4
    seed: int = 0
    hooks: list[Any] = field(default_factory=list)
    conditions: Any = None  # a harmoniser's (none here)


RUN = {"algo": "toy", "length": 4}


def go(setup: Setup, trainer: Counter, hooks=(), checkpoint_every: int = 0, **kw: Any):
    return run_trainer(
        setup,  # type: ignore[arg-type]
        trainer,
        RUN,
        hooks=hooks,
        checkpoint_every=checkpoint_every,
        sample_every=kw.pop("sample_every", 0),
        sample_folder="s_{step}",
        desc="toy",
        **kw,
    )


@pytest.mark.parametrize(
    "before, after, every, expected",
    [
        (0, 1, 1, True),
        (1, 2, 2, True),
        (2, 3, 2, False),
        (100, 228, 128, True),
        (0, 127, 128, False),
        (5, 9, 0, False),
    ],
)
def test_crossed_counts_multiples_in_the_half_open_step(before, after, every, expected) -> None:
    assert crossed(before, after, every) is expected


def test_checkpoints_fall_where_a_step_crosses_a_multiple(tmp_path: Path, monkeypatch) -> None:
    saved: list[int] = []
    real = harness.write_resume
    monkeypatch.setattr(
        harness, "write_resume", lambda p, r, t, h=(): (saved.append(int(t["n"])), real(p, r, t, h))
    )
    go(Setup(tmp_path / "a"), Counter(total=640, size=96), checkpoint_every=128)
    # rounds of 96: 96 192 288 384 480 576 672; multiples of 128 crossed at 192, 288, 384, 576,
    # 672; and the end is a resume point
    assert saved == [192, 288, 384, 576, 672, 672]


def test_samples_follow_the_same_interval(tmp_path: Path, monkeypatch) -> None:
    written: list[str] = []
    monkeypatch.setattr(
        harness, "write_midi_samples", lambda p, e, folder, *a: written.append(folder.name)
    )
    go(Setup(tmp_path), Counter(total=5), sample_every=2)
    assert written == ["s_2", "s_4"]


def test_a_spent_time_budget_saves_and_a_longer_one_continues(tmp_path: Path) -> None:
    stopped = go(Setup(tmp_path, time_s=0.0), Counter(total=4))
    assert (tmp_path / RESUME_FILE).exists() and stopped.metrics == {}
    trainer = Counter(total=4)
    again = go(Setup(tmp_path), trainer)
    assert again.resumed_from == 0 and trainer.steps == 4
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]


def test_hooks_state_round_trips_through_the_resume_point(tmp_path: Path) -> None:
    first, tally = Counter(total=3), Tally()
    go(Setup(tmp_path), first, hooks=[tally], checkpoint_every=1)
    assert tally.calls == 3
    resumed, fresh = Counter(total=5), Tally()
    outcome = go(Setup(tmp_path), resumed, hooks=[fresh])
    assert outcome.resumed_from == 3 and fresh.calls == 5  # went on from the saved count
    assert float(resumed.weight) == 5.0
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [float(r["hook/calls"]) for r in rows] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="1 stateful hook"):
        go(Setup(tmp_path), Counter(total=6))  # the same folder without the hook


def test_env_steps_log_their_own_column(tmp_path: Path) -> None:
    go(Setup(tmp_path), Counter(total=256, size=128, unit="env_steps"))
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["env_steps"] for r in rows] == ["128", "256"]


def test_another_runs_resume_point_is_refused(tmp_path: Path) -> None:
    path = tmp_path / RESUME_FILE
    write_resume(path, {"algo": "batched", "length": 4}, {"n": 1})
    with pytest.raises(ValueError, match="algo 'batched' \\(this run: 'toy'\\)"):
        read_resume(path, RUN)
    torch.save({"format": "rlmusic-rl-tuner-resume", "version": 1, "run": {}}, path)
    with pytest.raises(ValueError, match="new output folder"):
        read_resume(path, RUN)
    torch.save({"format": harness.RESUME_FORMAT, "version": 99, "run": {}}, path)
    with pytest.raises(ValueError, match="version 99"):
        read_resume(path, RUN)


def test_an_earlier_releases_trainer_state_is_refused_in_one_line(tmp_path: Path) -> None:
    torch.save({"iteration": torch.tensor(2)}, tmp_path / "trainer_state.pt")
    with pytest.raises(
        ValueError, match="trainer_state.pt is an earlier release's resume file"
    ) as e:
        go(Setup(tmp_path), Counter(total=3))
    assert "\n" not in str(e.value) and "new output folder" in str(e.value)
