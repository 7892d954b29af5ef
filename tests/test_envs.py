"""The composition environments: registration, checkers, primers, rendering, vector agreement, SB3."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import rlmusic.envs
from gymnasium.utils.env_checker import check_env
from rlmusic.envs.composition import CompositionEnv
from rlmusic.envs.vector import CompositionVectorEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from tests.conftest import C_MAJOR_TUNE, write_midi

PRIMERS = [np.array([14, 1, 16, 1, 18, 1, 0, 1]), np.array([21, 1, 1, 1, 19, 18, 16, 14])]


def test_make_after_import() -> None:
    env = gym.make(rlmusic.envs.ENV_ID)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (33,) and obs[-1] == 0 and (obs[:32] == 38).all()
    assert env.action_space.n == 38


def test_gymnasium_and_sb3_checkers_pass() -> None:
    check_env(CompositionEnv())
    sb3_check_env(CompositionEnv(), warn=False)
    check_env(CompositionEnv(primers=PRIMERS, primer_steps=4))


def test_episode_layout_and_reward_terms() -> None:
    env = CompositionEnv(length=8)
    env.reset(seed=0)
    actions = [14, 1, 16, 1, 18, 19, 21, 0]
    total = 0.0
    for i, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        assert obs[-1] == i + 1 and obs[i] == action and (obs[i + 1 : 8] == 38).all()
        assert reward == pytest.approx(sum(info["reward_terms"].values()))
        assert terminated == (i == 7) and not truncated
    final_total, _ = env.reward_fn.score(np.array([actions]))
    assert total == pytest.approx(final_total.sum())  # per-step rewards add up to the piece's
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(1)
    with pytest.raises(ValueError, match="not in Discrete"):
        CompositionEnv().step(99)


def test_primers_from_data_and_from_midi(tmp_path) -> None:
    env = CompositionEnv(primers=PRIMERS, primer_steps=4)
    obs, info = env.reset(seed=3)
    assert info["position"] == 4 and any((obs[:4] == p[:4]).all() for p in PRIMERS)
    midi = write_midi(tmp_path / "primer.mid", C_MAJOR_TUNE)
    env = CompositionEnv(primer_midi=str(midi), primer_steps=6)
    obs, _ = env.reset(seed=0)
    assert obs[:6].tolist() == [14, 1, 1, 1, 16, 1]
    with pytest.raises(ValueError, match="needs primers"):
        CompositionEnv(primer_steps=4)


def test_render_is_a_text_piano_roll() -> None:
    env = CompositionEnv(render_mode="ansi", length=16)
    env.reset(seed=0)
    for action in [14, 1, 1, 18, 0, 1, 14]:
        env.step(action)
    roll = env.render().splitlines()
    assert roll[0].startswith(" E4") and roll[0].split()[1].startswith("...#")
    assert roll[-1].split()[1].startswith("#==...#")


@pytest.mark.parametrize("seed", range(6))
def test_vector_env_gives_the_single_envs_rewards(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, length, primer_steps = 5, 24, int(rng.integers(0, 5))
    primers = [PRIMERS[i % 2] for i in range(batch)] if primer_steps else None
    vector = CompositionVectorEnv(
        batch, length=length, primers=PRIMERS, primer_steps=primer_steps or 0
    )
    vector.reset(seed=seed, options={"primers": primers} if primers else None)
    actions = rng.integers(0, 38, (length - primer_steps, batch))
    vector_rewards = np.array([vector.step(a)[1] for a in actions])
    for i in range(batch):
        single = CompositionEnv(length=length, primers=PRIMERS, primer_steps=primer_steps or 0)
        single.reset(seed=seed, options={"primer": primers[i]} if primers else None)
        single_rewards = [single.step(int(a))[1] for a in actions[:, i]]
        np.testing.assert_allclose(vector_rewards[:, i], single_rewards, atol=1e-9)


def test_vector_env_autoresets_on_the_next_step() -> None:
    vector = CompositionVectorEnv(3, length=4)
    vector.reset(seed=0)
    for _ in range(3):
        _, _, terminated, _, _ = vector.step(np.array([14, 16, 18]))
        assert not terminated.any()
    _, _, terminated, _, infos = vector.step(np.array([14, 16, 18]))
    assert terminated.all() and set(infos["reward_terms"]) >= {"key", "motif"}
    obs, rewards, terminated, truncated, _ = vector.step(np.array([14, 16, 18]))
    assert (obs[:, -1] == 0).all() and not rewards.any() and not terminated.any()


@pytest.mark.parametrize("algo", ["PPO", "A2C", "DQN"])
def test_stock_sb3_algorithms_train(algo: str) -> None:
    import stable_baselines3 as sb3

    env = CompositionEnv(length=16)
    kwargs = {"policy_kwargs": {"net_arch": [32]}, "seed": 0, "device": "cpu"}
    if algo == "PPO":
        kwargs.update(n_steps=256, batch_size=64, n_epochs=2)
    if algo == "DQN":
        kwargs.update(learning_starts=256, buffer_size=2_000, train_freq=4)
    model = getattr(sb3, algo)("MlpPolicy", env, **kwargs)
    model.learn(total_timesteps=2_048)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(int(action))
