"""HarmonisationEnv: the given soprano is kept, the observation is the harmoniser's input, the
episode's rewards are the piece's, and both environment checkers pass."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import rlmusic.envs
from gymnasium.utils.env_checker import check_env as gym_check_env
from rlmusic.envs.harmonisation import HarmonisationEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.build import build_reward

ENC = ChoraleEncoding()
BOS = ENC.vocab_size  # 204
STEPS = 4
# three sopranos of four steps (block-0 tokens: 38 = C5, 42 = E5, 1 = hold, 0 = rest)
SOPRANOS = np.array([[38, 1, 1, 1], [42, 42, 1, 0], [45, 1, 43, 1]])
RULES = {"rules": ["parallel_fifths", "parallel_octaves", "voice_crossing", "spacing"]}
P, L = STEPS + 1, 4 * STEPS  # the prefix [S.., BOS] and the piece


class Height:
    """Each token's local value / 50, soprano included, plus ``at_end`` on the last token: a
    dense reward whose every column is known by hand.

    >>> Height().score(np.array([[38, 101]]))[0].tolist()  # C5 in block 0, local 50 in block 1
    [[0.76, 1.0]]
    """

    def __init__(self, at_end: float = 0.0) -> None:
        self.at_end = float(at_end)

    def score(
        self, tokens: np.ndarray, include_sequence_level: bool = True
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        total = (np.asarray(tokens) % ENC.voice_size) / 50
        if include_sequence_level:
            total[:, -1] += self.at_end
        return total, {"height": total}


def env(reward: object = None, **kwargs: object) -> HarmonisationEnv:
    return HarmonisationEnv(SOPRANOS, reward=RULES if reward is None else reward, **kwargs)


def play(e: HarmonisationEnv, rng: np.random.Generator, seed: int | None = None) -> tuple:
    """One episode of uniformly random actions: (first obs, rewards, infos, last obs)."""
    obs, _ = e.reset(seed=seed)
    first, rewards, infos, done = obs, [], [], False
    while not done:
        obs, reward, done, truncated, info = e.step(int(rng.integers(ENC.vocab_size)))
        assert not truncated
        rewards.append(reward)
        infos.append(info)
    return first, np.array(rewards), infos, obs


def test_gymnasium_and_sb3_checkers_pass() -> None:
    made = gymnasium.make(
        rlmusic.envs.HARMONISATION_ENV_ID, sopranos=SOPRANOS, reward=RULES, render_mode="ansi"
    )
    assert isinstance(made.unwrapped, HarmonisationEnv)
    gym_check_env(made.unwrapped, skip_render_check=False)  # made: it has a spec
    sb3_check_env(env(), warn=True)


def test_the_first_observation_is_the_prefix_and_the_first_soprano_token() -> None:
    obs, info = env().reset(options={"soprano": SOPRANOS[1]})
    # [S_0 .. S_3, BOS], the piece [S_0] padded with BOS, then tokens read: P + 1
    assert obs.tolist() == [42, 42, 1, 0, BOS, 42] + [BOS] * (L - 1) + [P + 1]
    assert info == {"position": 1}


@pytest.mark.parametrize("seed", range(4))
def test_every_episode_keeps_its_soprano_and_the_agent_writes_the_other_voices(seed: int) -> None:
    e, rng = env(), np.random.default_rng(seed)
    drawn = set()
    for episode in range(6):
        first, rewards, infos, last = play(e, rng, seed=seed if episode == 0 else None)
        soprano = first[:STEPS]
        assert first[STEPS] == BOS
        drawn.add(tuple(soprano))
        piece = last[P : P + L]
        assert (piece[0::4] == soprano).all(), (piece, soprano)  # note for note
        assert (last[:P] == first[:P]).all()  # the prefix never moves
        assert len(rewards) == 3 * STEPS  # the agent: A, T and B of every step
        assert [i["position"] for i in infos][:4] == [2, 3, 5, 6]  # B_0 brings S_1 along
        assert last[-1] == P + L and (e.tokens == piece).all()
        assert (e.soprano == soprano).all()
    assert drawn <= {tuple(s) for s in SOPRANOS} and len(drawn) > 1


def test_the_observation_grows_by_the_agents_token_and_the_env_soprano() -> None:
    e = env()
    obs, _ = e.reset(options={"soprano": SOPRANOS[2]})
    for action, expected_tail in [
        (60, [45, 60]),
        (110, [45, 60, 110]),
        (160, [45, 60, 110, 160, 1]),
    ]:
        obs, *_ = e.step(action)
        piece = obs[P : P + L]
        assert piece[: len(expected_tail)].tolist() == expected_tail
        assert (piece[len(expected_tail) :] == BOS).all()
        assert obs[-1] == P + len(expected_tail)


def test_same_seed_same_sopranos() -> None:
    a, b = env(), env()
    firsts = [
        [e.reset(seed=3)[0].tolist()] + [e.reset()[0].tolist() for _ in range(5)] for e in (a, b)
    ]
    assert firsts[0] == firsts[1]


def test_each_step_pays_its_tokens_and_the_sopranos_with_the_step_that_writes_them() -> None:
    e = env(reward=Height(at_end=5.0))
    rng = np.random.default_rng(0)
    first, rewards, infos, last = play(e, rng)
    piece = last[P : P + L]
    height = (piece % ENC.voice_size) / 50
    expected = []
    for t in range(STEPS):
        a, tenor, b = height[4 * t + 1 : 4 * t + 4]
        s_now = height[4 * t] if t == 0 else 0.0  # S_0: with the first action
        s_next = height[4 * t + 4] if t < STEPS - 1 else 0.0  # S_{t+1}: with B_t
        expected += [s_now + a, tenor, b + s_next]
    expected[-1] += 5.0  # end-of-piece terms on the last step
    np.testing.assert_allclose(rewards, expected)
    np.testing.assert_allclose([i["reward_terms"]["height"] for i in infos], expected)
    assert rewards.sum() == pytest.approx(Height(5.0).score(piece[None])[0].sum())


@pytest.mark.parametrize("seed", range(3))
def test_the_episode_return_is_the_rules_total_for_the_whole_piece(seed: int) -> None:
    reward = build_reward({**RULES, "rule_params": {"voice_crossing": {"penalty": -2.0}}}, ENC)
    e = HarmonisationEnv(SOPRANOS, reward=reward)
    _, rewards, infos, last = play(e, np.random.default_rng(seed), seed=seed)
    total, shares = reward.score(last[None, P : P + L])
    assert rewards.sum() == pytest.approx(total.sum())
    for name, share in shares.items():
        assert sum(i["reward_terms"][name] for i in infos) == pytest.approx(share.sum()), name
    assert rewards.sum() < 0  # random voices cross and move in parallels


def test_render_shows_the_four_voices() -> None:
    e = env(render_mode="ansi")
    e.reset(options={"soprano": SOPRANOS[0]})
    for action in (84, 132, 167):  # G4, E4 and C3 struck under C5
        e.step(action)
    roll = e.render()
    assert all(voice in roll for voice in "SATB")


def test_bad_input_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="block 0"):
        HarmonisationEnv(np.array([[60, 1]]), reward=RULES)  # an alto token as a soprano
    with pytest.raises(ValueError, match="sopranos must be \\(N, steps\\)"):
        HarmonisationEnv(np.array([38, 1]), reward=RULES)
    with pytest.raises(ValueError, match="chorale encoding"):
        HarmonisationEnv(SOPRANOS, reward=RULES, encoding=MelodyEncoding())
    with pytest.raises(ValueError, match="no default reward"):
        HarmonisationEnv(SOPRANOS)
    with pytest.raises(ValueError, match="has 2 steps, this env harmonises 4"):
        env().reset(options={"soprano": [38, 1]})
    e = env()
    e.reset()
    with pytest.raises(ValueError, match="not in Discrete\\(204\\)"):
        e.step(204)
    for _ in range(3 * STEPS):
        e.step(1)
    with pytest.raises(RuntimeError, match="call reset"):
        e.step(1)


def test_a_prior_term_is_refused() -> None:
    from rlmusic.models import LSTMConfig, NoteLSTM
    from rlmusic.rewards.composite import CompositeReward, WeightedTerm
    from rlmusic.rewards.prior import PriorLogProb

    prior = NoteLSTM(LSTMConfig(vocab_size=ENC.vocab_size, embed_dim=4, hidden_size=4))
    reward = CompositeReward([WeightedTerm("prior", PriorLogProb(prior), 1.0)])
    with pytest.raises(ValueError, match="without the soprano .* \\(algo.kl_mode=penalty\\)"):
        HarmonisationEnv(SOPRANOS, reward=reward)
