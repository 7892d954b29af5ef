"""Replayed pieces are paid at the constraint weights of now, not of the round that played them."""

from __future__ import annotations

import numpy as np
import torch

from rlmusic.algos.rl_tuner.relabel import ConstrainedTerms
from rlmusic.algos.rl_tuner.replay import PieceReplay
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.build import build_reward

ENC = MelodyEncoding()


def test_a_replayed_piece_is_paid_what_it_would_be_paid_now() -> None:
    reward = build_reward({"c": 1.0, "rules": ["tonic", "key", "motif"]}, ENC)
    constrained = ConstrainedTerms(reward, ["tonic", "motif"], scale=0.2)  # psi: r / w, w 5
    tokens = np.random.default_rng(0).integers(0, ENC.vocab_size, size=(6, 16))
    paid_then = torch.as_tensor(reward.score(tokens)[0] * 0.2, dtype=torch.float32)
    units = torch.as_tensor(constrained.units(tokens)).float()
    assert units.shape == (6, 16, 2) and units.abs().sum() > 0
    replay = PieceReplay(6 * 16, 16, ENC.vocab_size, units=2)
    replay.add(torch.as_tensor(tokens), paid_then - units @ constrained.weights(), None, units)
    batch = replay.sample(6, torch.Generator().manual_seed(0))
    terms = {t.name: t for t in reward.terms}
    terms["tonic"].weight, terms["motif"].weight = 3.0, -0.5  # the multipliers moved
    paid_now = reward.score(batch.tokens.numpy())[0] * 0.2
    np.testing.assert_allclose(batch.paid(constrained.weights()).numpy(), paid_now, atol=1e-5)
    assert not np.allclose(batch.rewards.numpy() + 0, paid_now)  # the stored rest is not it
    # the units ride in the resume point
    again = PieceReplay(6 * 16, 16, ENC.vocab_size, units=2)
    again.load_state_dict(replay.state_dict())
    assert torch.equal(again.units, replay.units)


def test_the_trainer_regresses_on_the_rewards_of_now(monkeypatch) -> None:
    from rlmusic.algos.rl_tuner import trainer as trainer_module
    from rlmusic.algos.rl_tuner.config import RLTunerConfig
    from tests.conftest import tiny_lstm

    reward = build_reward({"c": 1.0, "rules": ["tonic", "key"]}, ENC)
    constrained = ConstrainedTerms(reward, ["key"], scale=1.0)

    def reward_fn(tokens, prior):
        return reward.score(tokens)[0], {}

    config = RLTunerConfig(variant="q", n_envs=8, batch_size=64, length=8, precision="fp32")
    tr = trainer_module.RLTunerTrainer(
        tiny_lstm(0), reward_fn, config, prior=tiny_lstm(1), constrained=constrained
    )
    tr.round()
    next(t for t in reward.terms if t.name == "key").weight = 7.0  # moved after the round
    seen = []
    targets = trainer_module.piece_targets
    monkeypatch.setattr(
        trainer_module,
        "piece_targets",
        lambda variant, rewards, *a, **k: (
            seen.append(rewards) or targets(variant, rewards, *a, **k)
        ),
    )
    state = tr.replay_rng.get_state()
    tr.gradient_step()
    tr.replay_rng.set_state(state)
    batch = tr.replay.sample(config.pieces_per_batch, tr.replay_rng)
    now = reward.score(batch.tokens.numpy())[0]
    np.testing.assert_allclose(seen[0].numpy(), now, atol=1e-5)
    assert not np.allclose(batch.rewards.numpy() + 1.0 * batch.units[..., 0].numpy(), now)
