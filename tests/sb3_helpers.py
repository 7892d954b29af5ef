"""Helpers for the fine-tuning run tests (algo=ppo, algo=rl_tuner): tiny PPO learners, a reward
with a known optimum, configs, crashes, weight checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from rlmusic.envs.composition import CompositionEnv
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from rlmusic.algos.sb3 import callbacks as sb3_callbacks
from rlmusic.algos.sb3.ppo import GeneratorPPO
from rlmusic.algos.sb3.ppo_policy import GeneratorPolicy, generator_policy_kwargs
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import LSTMConfig, NoteLSTM, load_generator
from rlmusic.tasks import sample

LENGTH = 8  # steps per composition in the PPO unit tests

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


# ---- tiny PPO learners ----------------------------------------------------------------------------


def lstm(seed: int = 0, dropout: float = 0.0, layers: int = 1) -> NoteLSTM:
    torch.manual_seed(seed)
    config = LSTMConfig(embed_dim=8, hidden_size=16, num_layers=layers, dropout=dropout)
    return NoteLSTM(config).eval()


class TokenReward:
    """A reward with a known optimum: ``per_token`` each time ``token`` is played, plus
    ``at_end`` on a piece's last step (always ``token``, every step, is optimal).

    >>> total, shares = TokenReward(token=2, at_end=10.0).score(np.array([[2, 0, 2]]))
    >>> total.tolist(), sorted(shares)
    ([[1.0, 0.0, 11.0]], ['token'])
    """

    def __init__(self, token: int = 10, per_token: float = 1.0, at_end: float = 0.0) -> None:
        self.token, self.per_token, self.at_end = int(token), float(per_token), float(at_end)

    def score(
        self, tokens: np.ndarray, include_sequence_level: bool = True
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        total = (np.asarray(tokens) == self.token).astype(np.float32) * self.per_token
        if include_sequence_level:
            total[:, -1] += self.at_end
        return total, {"token": total}


def make_ppo(
    generator: torch.nn.Module, n_envs: int = 2, reward: object = None, **kwargs: object
) -> GeneratorPPO:
    """GeneratorPPO on ``n_envs`` CompositionEnv of LENGTH steps (``reward`` None: the nine rules)
    starting from ``generator``; SB3's arguments as keyword arguments, plus ``value_lr``."""
    env = DummyVecEnv([lambda: CompositionEnv(reward=reward, length=LENGTH)] * n_envs)
    options = dict(n_steps=2 * LENGTH, batch_size=16, n_epochs=1, seed=0, device="cpu")
    # without a prior: RL Tuner's mode (the environment's own reward, nothing added)
    options["kl_mode"] = "penalty" if "prior" in kwargs else "prior_reward"
    options.update(kwargs)
    value_lr = options.pop("value_lr", None)
    model = GeneratorPPO(
        GeneratorPolicy,
        env,
        policy_kwargs=generator_policy_kwargs(generator, value_lr),
        **options,
    )
    model.policy.load_generator(generator)
    return model


class EnvRewards(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.rewards: list[np.ndarray] = []

    def _on_step(self) -> bool:
        self.rewards.append(np.array(self.locals["rewards"], dtype=np.float32))
        return True


def one_rollout(model: GeneratorPPO) -> tuple[np.ndarray, np.ndarray]:
    """Collect one rollout; return the env's own rewards and the played notes (E, steps)."""
    seen = EnvRewards()
    _, callback = model._setup_learn(10**6, seen)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    env_rewards = np.stack(seen.rewards)  # (n_steps, n_envs)
    return env_rewards, model.rollout_buffer.actions[..., 0].astype(np.int64)


# ---- runs -----------------------------------------------------------------------------------------


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
