"""algo=ppo on a harmoniser: the policy reads the soprano first, exactly as the harmoniser does,
the KL reference reads it too, a reward on the chosen voices climbs, and the run writes a tuned
harmoniser (resuming exactly)."""

from __future__ import annotations

import csv
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from rlmusic.envs.harmonisation import HarmonisationEnv
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv

from rlmusic.algos.sb3.ppo import GeneratorPPO
from rlmusic.algos.sb3.ppo_policy import GeneratorPolicy, generator_policy_kwargs
from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.harmonisation import CONDITIONING_KEY, SOPRANO, conditioning_prefix
from rlmusic.models import LSTMConfig, NoteLSTM, load_generator, save_checkpoint
from rlmusic.models.base import sequence_log_probs
from rlmusic.models.registry import checkpoint_info
from rlmusic.tasks import finetune
from tests.sb3_helpers import Crash, assert_same_weights, crash_at, one_rollout, weights_changed

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENC = ChoraleEncoding()
BOS = ENC.vocab_size
STEPS = 4  # time steps a harmonisation: 16 tokens, 12 actions
ACTIONS = 3 * STEPS
P, L = STEPS + 1, 4 * STEPS
SOPRANOS = np.array([[38, 1, 1, 1], [42, 42, 1, 0], [45, 1, 43, 1]])
PAID = 10  # the local value (a pitch in every voice's block) the toy reward pays for


def harmoniser(seed: int = 0) -> NoteLSTM:
    torch.manual_seed(seed)
    config = LSTMConfig(vocab_size=ENC.vocab_size, embed_dim=8, hidden_size=16, num_layers=1)
    return NoteLSTM(config).eval()


class PaidLocal:
    """1 for every token whose local value is :data:`PAID`, in any voice: on the chosen voices
    a reward with a known optimum (the soprano's tokens are given, so they pay a constant)."""

    def score(
        self, tokens: np.ndarray, include_sequence_level: bool = True
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        total = (np.asarray(tokens) % ENC.voice_size == PAID).astype(np.float64)
        return total, {"paid": total}


def make_ppo(generator: NoteLSTM, reward: object = None, n_envs: int = 2, **kwargs) -> GeneratorPPO:
    """GeneratorPPO on ``n_envs`` HarmonisationEnv of :data:`SOPRANOS` (a penalty against
    ``prior`` when given, else no KL)."""
    reward = reward or {"rules": ["parallel_fifths", "voice_crossing"]}
    env = DummyVecEnv([lambda: HarmonisationEnv(SOPRANOS, reward=reward)] * n_envs)
    options = dict(n_steps=2 * ACTIONS, batch_size=24, n_epochs=1, seed=0, device="cpu")
    options.update(kl_mode="penalty", kl_coef=0.0, prior=kwargs.pop("prior", generator))
    options.update(kwargs)
    model = GeneratorPPO(
        GeneratorPolicy, env, policy_kwargs=generator_policy_kwargs(generator), **options
    )
    model.policy.load_generator(generator)
    model.set_logger(configure(None, []))
    return model


def episode(
    model: GeneratorPPO, soprano: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """One harmonisation of ``soprano`` by the policy: its observations (3n, D), actions (3n,)
    and the piece (4n,)."""
    env = HarmonisationEnv(SOPRANOS, reward=PaidLocal())
    obs, _ = env.reset(options={"soprano": soprano})
    observations, actions, done = [], [], False
    while not done:
        with torch.no_grad():
            action = int(model.policy(torch.as_tensor(obs[None]))[0])
        observations.append(obs)
        actions.append(action)
        obs, _, done, _, _ = env.step(action)
    return torch.as_tensor(np.stack(observations)), torch.as_tensor(actions), env.tokens


# ---- the policy reads what the harmoniser reads ---------------------------------------------------


def test_the_first_action_distribution_is_the_harmonisers_after_the_prefix_and_s0() -> None:
    generator = harmoniser()
    model = make_ppo(generator)
    for soprano in SOPRANOS:
        obs, _ = HarmonisationEnv(SOPRANOS, reward=PaidLocal()).reset(options={"soprano": soprano})
        inputs = torch.as_tensor([[BOS, *soprano, BOS, soprano[0]]])  # [BOS, prefix, S_0]
        with torch.no_grad():
            expected = torch.softmax(generator(inputs)[0, -1], -1)
            probs = model.policy.get_distribution(torch.as_tensor(obs[None])).distribution.probs
        torch.testing.assert_close(probs[0], expected, rtol=0, atol=1e-6)


def test_a_whole_episode_has_the_harmonisers_log_probs_on_the_chosen_voices() -> None:
    generator = harmoniser()
    model = make_ppo(generator)
    for soprano in SOPRANOS:
        obs, actions, piece = episode(model, soprano)
        assert (piece[0::4] == soprano).all()
        prefix = torch.as_tensor(conditioning_prefix(soprano[None], ENC))
        with torch.no_grad():
            expected = sequence_log_probs(generator, torch.as_tensor(piece[None]), prefix)[0]
            _, log_prob, _ = model.policy.evaluate_actions(obs, actions)
        chosen = torch.as_tensor(np.arange(L) % 4 != 0)  # A, T, B
        torch.testing.assert_close(log_prob, expected[chosen])
        assert (actions == torch.as_tensor(piece)[chosen]).all()


def test_the_kl_reference_reads_the_same_soprano() -> None:
    generator, prior = harmoniser(0), harmoniser(1)
    model = make_ppo(generator, prior=prior)
    one_rollout(model)
    buffer = model.rollout_buffer
    obs = buffer.observations.reshape(-1, P + L + 1).astype(np.int64)
    actions = buffer.actions.reshape(-1).astype(np.int64)
    log_prior = model.rollout_log_prior(buffer).reshape(-1)
    for row, action, got in zip(obs, actions, log_prior):
        read = int(row[-1])  # [BOS, S.., BOS, piece[:t]]: one naive pass per row
        assert read > P and row[P + (read - P) // 4 * 4] == row[(read - P) // 4]  # S_t given
        with torch.no_grad():
            logits = prior(torch.as_tensor([[BOS, *row[:read]]]))[0, -1]
        assert got == pytest.approx(float(torch.log_softmax(logits, -1)[action]), abs=1e-5)
    # the start model against itself: no KL, since both read the same soprano
    same = make_ppo(generator)
    one_rollout(same)
    kl = same.rollout_buffer.log_probs - same.rollout_log_prior(same.rollout_buffer)
    assert np.abs(kl).max() < 1e-5


def test_ppo_raises_the_reward_of_the_chosen_voices() -> None:
    """The update's direction on a harmoniser: every local value PAID pays 1."""
    model = make_ppo(harmoniser(), reward=PaidLocal(), n_envs=4, learning_rate=3e-2, n_epochs=4)
    paid = torch.arange(ENC.vocab_size) % ENC.voice_size == PAID  # one token in each block
    one_rollout(model)
    seen = torch.as_tensor(model.rollout_buffer.observations.reshape(-1, P + L + 1))

    def paid_mass() -> float:
        """pi's probability of a paid token, on average over the first rollout's states."""
        with torch.no_grad():
            probs = model.policy.get_distribution(seen).distribution.probs
        return float(probs[:, paid].sum(-1).mean())

    before = paid_mass()
    for _ in range(4):
        model.train()
        one_rollout(model)
    after = paid_mass()
    # measured: 0.020 -> 0.15 (any wrong sign makes it fall below 0.020)
    assert after > 5 * before, (before, after)
    obs = model.rollout_buffer.observations.reshape(-1, P + L + 1).astype(np.int64)
    written = np.arange(L)[None, 0::4] < (obs[:, -1:] - P)  # soprano slots written so far
    assert (obs[:, P : P + L : 4] == obs[:, :STEPS])[written].all()  # the given soprano


# ---- the run --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init chorale LSTM saved as a harmoniser (its info names the conditioning)."""
    path = tmp_path_factory.mktemp("harmoniser") / "harmoniser.safetensors"
    return save_checkpoint(path, harmoniser(), ENC, info={CONDITIONING_KEY: SOPRANO})


TINY_RUN = [
    "algo=ppo", "data=chorales", "reward=chorale", "~reward.extra.realism", f"length={STEPS}",
    "algo.n_envs=2", f"algo.n_steps={2 * ACTIONS}", "algo.batch_size=24", "algo.n_epochs=1",
    f"algo.total_timesteps={16 * ACTIONS}", f"algo.checkpoint_every={4 * ACTIONS}",
    "algo.sample_every=0", f"algo.stats_every={4 * ACTIONS}", "algo.stats_samples=4",
    "n_samples=2", "device=cpu", "threads=1",
]  # fmt: skip


def config(checkpoint: Path, overrides: list[str] = ()):
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose("finetune", overrides=[f"checkpoint={checkpoint}", *TINY_RUN, *overrides])


def test_finetune_algo_ppo_tunes_a_harmoniser(tmp_path: Path, checkpoint: Path) -> None:
    run = tmp_path / "run"
    result = finetune.run(config(checkpoint), output_dir=run)
    assert result.steps == 16 * ACTIONS and weights_changed(result.tuned, checkpoint)
    info = checkpoint_info(result.tuned)
    assert info[CONDITIONING_KEY] == SOPRANO and info["algo"] == "ppo"
    assert load_generator(str(result.tuned))[1] == ENC
    assert len(list((run / "samples" / "final").glob("*.mid"))) == 2
    rows = list(csv.DictReader(open(run / "progress.csv")))
    assert [int(r["time/total_timesteps"]) for r in rows] == [48, 96, 144, 192]
    assert float(rows[0]["rollout/ep_len_mean"]) == ACTIONS
    # the first rollout is sampled by the start model itself: the reference, reading the same
    # soprano, finds no KL
    assert abs(float(rows[0]["kl/rollout_per_token"])) < 1e-5
    assert {"reward/parallel_fifths", "reward/voice_crossing", "kl/prior_per_token"} <= set(rows[0])
    assert "final/kl/prior_per_token" in result.metrics


@pytest.mark.parametrize("samples", [0, 3])
def test_constraints_and_samples_read_harmonisations(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, samples: int
) -> None:
    """The rule targets count the finished pieces, or pieces the policy harmonises
    (``algo.constraint_samples``), not the prefix before them, and the MIDI samples harmonise
    drawn sopranos."""
    from rlmusic.algos.constraints import RuleConstraints
    from rlmusic.algos.sb3 import run as sb3_run

    pieces: list[np.ndarray] = []
    conditions: list[object] = []
    update, write = RuleConstraints.update, sb3_run.write_midi_samples

    def counting(self: RuleConstraints, tokens: np.ndarray) -> dict[str, float]:
        pieces.append(tokens.copy())
        return update(self, tokens)

    def writing(*args: object, **kwargs: object) -> Path:
        conditions.append(
            inspect.signature(write).bind(*args, **kwargs).arguments.get("conditions")
        )
        return write(*args, **kwargs)

    monkeypatch.setattr(RuleConstraints, "update", counting)
    monkeypatch.setattr(sb3_run, "write_midi_samples", writing)
    overrides = [
        "algo.apply_constraints=true",
        f"algo.sample_every={8 * ACTIONS}",
        f"algo.constraint_samples={samples}",
    ]
    finetune.run(config(checkpoint, overrides), output_dir=tmp_path / "run")
    per_move = samples or 4  # 4 pieces a rollout
    assert len(pieces) == 4 and all(p.shape == (per_move, L) for p in pieces)
    assert all(p.max() < BOS for p in pieces)  # the prefix's BOS is not in a piece
    assert len(conditions) == 2 and all(c is not None for c in conditions)  # steps 0 and 96


def test_a_harmoniser_run_resumes_exactly(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = finetune.run(config(checkpoint), output_dir=tmp_path / "straight")
    crash_at(monkeypatch, 100)  # rollouts of 2 x 24 steps: resume points at 48, 96 and 144
    with pytest.raises(Crash):
        finetune.run(config(checkpoint), output_dir=tmp_path / "resumed")
    resumed = finetune.run(config(checkpoint), output_dir=tmp_path / "resumed")
    assert resumed.resumed_from == 96
    assert_same_weights(resumed.tuned, straight.tuned)


def test_a_harmoniser_run_refuses_what_it_cannot_do(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="n_steps=16 must be a multiple of the 12 actions"):
        finetune.run(config(checkpoint, ["algo.n_steps=16"]), output_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="prior_reward .* use algo.kl_mode=penalty"):
        finetune.run(config(checkpoint, ["algo.kl_mode=prior_reward"]), output_dir=tmp_path / "b")
