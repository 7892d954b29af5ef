"""Helpers for the fine-tuning run tests (algo=ppo, algo=rl_tuner): configs, crashes, weight
checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from rlmusic.algos.sb3 import callbacks as sb3_callbacks
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import NoteLSTM, load_generator
from rlmusic.tasks import sample

# every term of reward=rl_tuner, as logged under reward/<term>
RL_TUNER_TERMS = (
    "key",
    "tonic",
    "tonic_end",
    "repetition",
    "autocorrelation",
    "motif",
    "repeated_motif",
    "preferred_intervals",
    "leap_resolution",
    "unique_extremes",
    "prior",
)


def finetune_config(checkpoint: Path, overrides: list[str]) -> DictConfig:
    base = [
        f"checkpoint={checkpoint}",
        f"reward.prior.checkpoint={checkpoint}",
        "length=8",
        "n_samples=2",
        "device=cpu",
    ]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose("finetune", overrides=base + overrides)


class Crash(Exception):
    """Stands in for kill -9: the run dies mid-rollout, with no chance to save anything."""


def crash_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the next run die at the first env step at or after ``step``."""
    original = sb3_callbacks.RewardTermLogger._on_step

    def dying(self: sb3_callbacks.RewardTermLogger) -> bool:
        if self.model.num_timesteps >= step:
            monkeypatch.setattr(sb3_callbacks.RewardTermLogger, "_on_step", original)
            raise Crash
        return original(self)

    monkeypatch.setattr(sb3_callbacks.RewardTermLogger, "_on_step", dying)


def assert_same_weights(a: Path, b: Path) -> None:
    """Two generator checkpoints hold bit-identical weights."""
    x, _ = load_generator(str(a))
    y, _ = load_generator(str(b))
    for (name, u), v in zip(x.state_dict().items(), y.state_dict().values()):
        torch.testing.assert_close(u, v, rtol=0, atol=0, msg=name)


def weights_changed(a: Path, b: Path) -> bool:
    x, _ = load_generator(str(a))
    y, _ = load_generator(str(b))
    return any(
        not torch.equal(u, v) for u, v in zip(x.state_dict().values(), y.state_dict().values())
    )


def check_tuned_checkpoint_is_usable(tuned: Path, out: Path) -> None:
    """The tuned checkpoint samples through ``rlmusic sample`` and serves as a prior."""
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose(
            "sample",
            overrides=[f"checkpoint={tuned}", "n=2", "length=8", f"out={out}", "device=cpu"],
        )
    result = sample.run(cfg)
    assert len(result.midi) == 2 and result.tokens.shape == (2, 8)
    from rlmusic.rewards.build import build_reward

    reward = build_reward(
        {"c": 0.5, "rules": ["key"], "prior": {"checkpoint": str(tuned), "weight": 1.0}},
        MelodyEncoding(),
    )
    total, shares = reward.score(result.tokens)
    assert shares["prior"].shape == (2, 8) and (shares["prior"] < 0).all()


def finetune_and_measure_theory_gain(tmp_path: Path, overrides: list[str]) -> tuple[float, float]:
    """Fine-tune ``pretrained:note_lstm`` with ``overrides``; return (gain, standard error) of
    the nine rules' reward per piece (/ c, prior excluded), 2,048 samples of 32 steps each."""
    import numpy as np

    from rlmusic.models.sampling import sample_seeded
    from rlmusic.rewards.build import build_reward
    from rlmusic.tasks import finetune

    base = ["checkpoint=pretrained:note_lstm", "reward=rl_tuner", "algo.sample_every=0"]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=[*base, *overrides, "device=cpu"])
    result = finetune.run(cfg, output_dir=tmp_path / "run")
    supervised, encoding = load_generator("pretrained:note_lstm")
    tuned, _ = load_generator(str(result.tuned))
    rules = build_reward({"c": 0.5, "rules": list(RL_TUNER_TERMS[:-1]), "prior": None}, encoding)

    def theory_reward(model: NoteLSTM) -> np.ndarray:
        tokens, _ = sample_seeded(model, 2048, 32, seed=123)
        return rules.score(tokens)[0].sum(1)  # the nine rules / c, per piece

    before, after = theory_reward(supervised), theory_reward(tuned)
    stderr = float(np.sqrt(before.var() / len(before) + after.var() / len(after)))
    print(
        f"music-theory reward per piece: {before.mean():.1f} -> {after.mean():.1f} (se {stderr:.1f})"
    )
    return float(after.mean() - before.mean()), stderr


def kill_9_then_resume(tmp_path: Path, overrides: list[str], resume_file: str) -> None:
    """``rlmusic finetune`` with ``overrides``: straight through, and killed with SIGKILL once
    ``resume_file`` appears, then the same command again; both must end with the same weights."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same thread count in every process

    def command(run: Path) -> list[str]:
        return [sys.executable, "-m", "rlmusic.cli", "finetune", f"hydra.run.dir={run}", *overrides]

    subprocess.run(command(tmp_path / "straight"), env=env, check=True, capture_output=True)
    run = tmp_path / "killed"
    process = subprocess.Popen(
        command(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not (run / resume_file).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()  # SIGKILL: no handler, no final save
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run / "tuned.safetensors").exists()
    rerun = subprocess.run(command(run), env=env, check=True, capture_output=True, text=True)
    assert "resumed from" in rerun.stdout + rerun.stderr  # not a restart from scratch
    assert_same_weights(run / "tuned.safetensors", tmp_path / "straight" / "tuned.safetensors")
