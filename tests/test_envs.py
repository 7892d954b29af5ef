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

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding, Note
from rlmusic.rewards import CompositeReward, WeightedTerm, build_reward
from rlmusic.rewards.prior import PriorLogProb
from tests.conftest import C_MAJOR_TUNE, write_midi
from tests.toy_generator import ToyGenerator

ENC = MelodyEncoding()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


PRIMERS = [np.array([14, 1, 16, 1, 18, 1, 0, 1]), np.array([21, 1, 1, 1, 19, 18, 16, 14])]


def test_make_after_import() -> None:
    env = gym.make(rlmusic.envs.ENV_ID)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (33,) and obs[-1] == 0 and (obs[:32] == 38).all()
    assert env.action_space.n == 38


def test_gymnasium_and_sb3_checkers_pass() -> None:
    check_env(gym.make(rlmusic.envs.ENV_ID, render_mode="ansi").unwrapped)  # with its spec
    sb3_check_env(CompositionEnv(), warn=False)
    primed = gym.make(rlmusic.envs.ENV_ID, primers=PRIMERS, primer_steps=4, render_mode="ansi")
    check_env(primed.unwrapped)


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


def test_primer_sources_are_checked_and_short_tunes_left_out() -> None:
    env = CompositionEnv(primers=[np.array([14, 1]), *PRIMERS], primer_steps=4)
    assert len(env.primers) == 2  # the 2-step tune cannot give a 4-step primer
    with pytest.raises(ValueError, match="at least 4 steps"):
        CompositionEnv(primers=[np.array([14, 1])], primer_steps=4)
    with pytest.raises(ValueError, match="primer tokens must be in 0..37"):
        CompositionEnv(primers=[np.array([14, 40, 1, 1])], primer_steps=2)
    vector = CompositionVectorEnv(8, primers=[np.array([14, 1]), *PRIMERS], primer_steps=4)
    vector.reset(seed=0)
    assert vector.tokens.shape == (8, 4)


def test_reward_from_a_config_mapping() -> None:
    env = gym.make(rlmusic.envs.ENV_ID, reward={"c": 1.0, "rules": ["key"]}, length=4)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(15)  # C#: out of C major
    assert reward == -1.0 and info["reward_terms"] == {"key": -1.0}
    with pytest.raises(TypeError, match="reward must be a CompositeReward"):
        CompositionEnv(reward="key")


def test_render_is_a_text_piano_roll() -> None:
    env = CompositionEnv(render_mode="ansi", length=16)
    env.reset(seed=0)
    for action in [14, 1, 1, 18, 0, 1, 14]:
        env.step(action)
    roll = env.render().splitlines()
    assert roll[0].startswith(" E4") and roll[0].split()[1].startswith("...#")
    assert roll[-1].split()[1].startswith("#==...#")


@pytest.mark.parametrize("seed", range(30))
def test_vector_env_gives_the_single_envs_rewards(seed: int) -> None:
    """Same actions, same primers -> the same rewards and per-term shares, step by step."""
    rng = np.random.default_rng(seed)
    batch, length = int(rng.integers(1, 6)), int(rng.integers(4, 33))
    primer_steps = int(rng.integers(0, min(length, 9)))
    pool = [rng.integers(0, 38, 12) for _ in range(3)]  # tunes to cut primers from
    vector = CompositionVectorEnv(
        batch, length=length, primers=pool if primer_steps else None, primer_steps=primer_steps
    )
    vector.reset(seed=seed)  # each sub-environment draws its own primer
    primers = vector.tokens
    assert primers.shape == (batch, primer_steps)
    actions = rng.integers(0, 38, (length - primer_steps, batch))
    steps = [vector.step(a) for a in actions]
    assert steps[-1][2].all() and not any(s[2].any() for s in steps[:-1])
    for i in range(batch):
        single = CompositionEnv(length=length)
        single.reset(seed=seed, options={"primer": primers[i]} if primer_steps else None)
        for (_, rewards, _, _, infos), action in zip(steps, actions[:, i]):
            _, reward, terminated, _, info = single.step(int(action))
            assert reward == pytest.approx(rewards[i], abs=1e-9)
            for name, share in info["reward_terms"].items():
                assert share == pytest.approx(infos["reward_terms"][name][i], abs=1e-9)
        assert terminated
        np.testing.assert_array_equal(single.tokens, vector.tokens[i])


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
    if algo == "A2C":
        kwargs.update(n_steps=32)  # fewer, larger updates: the same 2,048 steps in less time
    if algo == "DQN":
        kwargs.update(learning_starts=256, buffer_size=2_000, train_freq=4)
    model = getattr(sb3, algo)("MlpPolicy", env, **kwargs)
    model.learn(total_timesteps=2_048)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(int(action))


def test_single_and_vector_envs_agree_with_the_prior_term() -> None:
    def reward():
        composite = build_reward({"rules": ["key", "motif", "unique_extremes"]}, ENC)
        composite.terms.append(WeightedTerm("prior", PriorLogProb(ToyGenerator()), 1.0))
        return composite

    rng = np.random.default_rng(0)
    actions = rng.integers(0, 38, (2, 12, 3))  # two episodes (the state restarts), 3 envs
    vector = CompositionVectorEnv(3, reward=reward(), length=16, primers=PRIMERS, primer_steps=4)
    vector.reset(seed=1)
    for episode in actions:
        primers = vector.tokens
        rewards = np.array([vector.step(a)[1] for a in episode])
        whole, _ = vector.reward_fn.score(vector.tokens)
        np.testing.assert_allclose(rewards, whole[:, 4:].T, rtol=1e-5, atol=1e-5)
        for i in range(3):
            single = CompositionEnv(reward=reward(), length=16)
            single.reset(options={"primer": primers[i]})
            single_rewards = [single.step(int(a))[1] for a in episode[:, i]]
            np.testing.assert_allclose(single_rewards, rewards[:, i], rtol=1e-5, atol=1e-5)
        vector.step(np.zeros(3, dtype=int))  # the autoreset step


# ---- chorales: the same envs, given the chorale encoding -----------------------------------------
CHORALE = ChoraleEncoding()
CHORALE_PRIMERS = [
    CHORALE.encode_voices(
        [[n] for n in (Note(72, 0, 4), Note(67, 0, 4), Note(64, 0, 4), Note(48, 0, 4))], 4
    ),
    CHORALE.encode_voices(
        [[n] for n in (Note(74, 0, 2), Note(65, 0, 4), Note(59, 0, 4), Note(43, 0, 4))], 4
    ),
]


def voice_in_range(tokens: np.ndarray) -> np.ndarray:
    """A user's plain term: +1 for a pitch its voice can sing (the voice is position mod 4)."""
    tokens = np.asarray(tokens)
    voice = np.arange(tokens.shape[1]) % 4
    low, high = np.array([60, 53, 48, 40])[voice], np.array([81, 74, 69, 62])[voice]
    pitch = CHORALE.pitches(tokens)
    return ((pitch >= low) & (pitch <= high)).astype(float)


def no_crossing(tokens: np.ndarray) -> np.ndarray:
    """-1 on the bass token of each step where a lower voice sounds above the one over it."""
    tokens = np.asarray(tokens)
    sounding = CHORALE.sounding(tokens)  # (B, 4, steps)
    crossed = ((sounding[:, 1:] > sounding[:, :-1]) & (sounding[:, :-1] >= 0)).any(axis=1)
    out = np.zeros(tokens.shape)
    out[:, 3 : 4 * crossed.shape[1] : 4] = -crossed.astype(float)
    return out


def chorale_reward(prior: bool = False) -> CompositeReward:
    terms = [WeightedTerm("range", voice_in_range, 0.5), WeightedTerm("crossing", no_crossing, 2.0)]
    if prior:
        terms.append(WeightedTerm("prior", PriorLogProb(ToyGenerator(CHORALE.vocab_size)), 1.0))
    return CompositeReward(terms)


def test_chorale_env_passes_gymnasium_and_sb3_checkers() -> None:
    env = gym.make(
        rlmusic.envs.ENV_ID, encoding=CHORALE, reward=chorale_reward(), render_mode="ansi"
    )
    check_env(env.unwrapped)
    assert env.observation_space.shape == (257,)  # 64 steps x 4, and the step index
    assert env.action_space.n == 204  # four voices' blocks of 51 tokens
    sb3_check_env(CompositionEnv(reward=chorale_reward(), encoding=CHORALE, length=32), warn=False)
    primed = CompositionEnv(
        reward=chorale_reward(), encoding=CHORALE, primers=CHORALE_PRIMERS, primer_steps=8
    )
    check_env(primed)
    obs, info = primed.reset(seed=0)
    assert info["position"] == 8 and any((obs[:8] == p[:8]).all() for p in CHORALE_PRIMERS)


def test_chorale_env_lengths_and_primers_are_whole_steps() -> None:
    with pytest.raises(ValueError, match="length: 30 tokens is not a whole number of chorale"):
        CompositionEnv(reward=chorale_reward(), encoding=CHORALE, length=30)
    with pytest.raises(ValueError, match="primer_steps: 6 tokens"):
        CompositionEnv(
            reward=chorale_reward(), encoding=CHORALE, primers=CHORALE_PRIMERS, primer_steps=6
        )
    env = CompositionEnv(reward=chorale_reward(), encoding=CHORALE, length=16)
    with pytest.raises(ValueError, match="primer: 3 tokens"):
        env.reset(options={"primer": CHORALE_PRIMERS[0][:3]})
    with pytest.raises(ValueError, match="chorale environment has no default reward"):
        CompositionEnv(encoding=CHORALE)


def test_chorale_episode_rewards_are_the_pieces_and_render_four_voices() -> None:
    env = CompositionEnv(reward=chorale_reward(), encoding=CHORALE, length=8, render_mode="ansi")
    env.reset(seed=0)
    c5, g4, e4, c3 = (CHORALE.pitch_to_token(p, v) for v, p in enumerate((72, 67, 64, 48)))
    a5 = CHORALE.pitch_to_token(81, voice=1)
    hold = [v * CHORALE.voice_size + CHORALE.NO_EVENT for v in range(4)]
    actions = [c5, g4, e4, c3, hold[0], a5, hold[2], hold[3]]  # step 2: the alto leaps over
    rewards = [env.step(a)[1] for a in actions]
    assert rewards == [0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, -2.0]
    whole, _ = env.reward_fn.score(np.array([actions]))
    np.testing.assert_allclose(rewards, whole[0])
    roll = env.render().splitlines()
    assert roll[0].split() == ["A5", ".A"] and roll[-1].split() == ["C3", "Bb"]  # struck, held


@pytest.mark.parametrize("seed", range(12))
def test_chorale_vector_env_gives_the_single_envs_rewards(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, steps = int(rng.integers(1, 4)), int(rng.integers(2, 9))
    primer_steps = 4 * int(rng.integers(0, min(steps, 3)))
    length = 4 * steps
    pool = [rng.integers(0, CHORALE.vocab_size, 16) for _ in range(3)]
    vector = CompositionVectorEnv(
        batch, reward=chorale_reward(prior=True), encoding=CHORALE, length=length,
        primers=pool if primer_steps else None, primer_steps=primer_steps,
    )  # fmt: skip
    vector.reset(seed=seed)
    primers = vector.tokens
    actions = rng.integers(0, CHORALE.vocab_size, (length - primer_steps, batch))
    steps_out = [vector.step(a) for a in actions]
    assert steps_out[-1][2].all() and not any(s[2].any() for s in steps_out[:-1])
    for i in range(batch):
        single = CompositionEnv(reward=chorale_reward(prior=True), encoding=CHORALE, length=length)
        single.reset(seed=seed, options={"primer": primers[i]} if primer_steps else None)
        for (_, rewards, _, _, infos), action in zip(steps_out, actions[:, i]):
            _, reward, _, _, info = single.step(int(action))
            assert reward == pytest.approx(rewards[i], abs=1e-5)
            for name, share in info["reward_terms"].items():
                assert share == pytest.approx(infos["reward_terms"][name][i], abs=1e-5)
        np.testing.assert_array_equal(single.tokens, vector.tokens[i])
