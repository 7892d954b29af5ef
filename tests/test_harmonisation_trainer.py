"""The batched trainer on a conditioned policy (a harmoniser): sopranos drawn per group, read as
a prefix and forced into the piece; no loss, KL or entropy on the forced tokens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlmusic.algos.batched.trainer import BatchedConfig, BatchedTrainer
from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.harmonisation import conditioned_window, forced_tokens
from rlmusic.models.conditions import SopranoConditions, seeded_conditions, soprano_windows
from rlmusic.models.sampling import sample_seeded
from tests.toy_generator import ToyGenerator

ENC = ChoraleEncoding()
STEPS = 4  # time steps a piece: 16 tokens
# two sopranos of four steps (block-0 tokens: C5 held, then E5 struck)
SOPRANOS = np.array([[38, 1, 1, 1], [42, 42, 1, 0]])


def config(**overrides: object) -> BatchedConfig:
    base = dict(
        batch_size=16, minibatch_size=8, length=4 * STEPS, group_size=4, lr=3e-3, epochs=1,
        kl_coef=0.0, kl_pitch_coef=None, method="rloo", gamma=1.0,
    )  # fmt: skip
    return BatchedConfig(**{**base, **overrides})


def height(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each token's local value / 50 (higher pitches pay more): a dense reward whose optimum
    is the top of every voice's block."""
    r = (tokens % ENC.voice_size).astype(np.float32) / 50
    return r, {"height": r}


def trainer(**overrides: object) -> BatchedTrainer:
    return BatchedTrainer(
        ToyGenerator(vocab_size=ENC.vocab_size, seed=0),
        height,
        config(**overrides),
        seed=0,
        conditions=SopranoConditions(SOPRANOS, ENC),
    )


def test_rollouts_keep_the_soprano_and_share_it_within_a_group() -> None:
    t = trainer()
    prefix, forced = t._draw_conditions()
    assert prefix.shape == (16, STEPS + 1) and forced.shape == (16, 4 * STEPS)
    assert (prefix[:, -1] == ENC.vocab_size).all()  # the second BOS: the piece starts
    for group in forced.view(4, 4, -1):
        assert (group == group[0]).all()
    tokens, _ = sample_seeded(t.policy, 32, 4 * STEPS, 5, conditions=t.conditions)
    given = seeded_conditions(t.conditions, 32, 5)[1]
    keep = given >= 0
    assert (tokens[keep] == given[keep]).all()
    assert {tuple(row) for row in tokens[:, ::4]} <= {tuple(s) for s in SOPRANOS}


def test_no_gradient_reaches_a_forced_or_prefix_position() -> None:
    t = trainer()
    grads: list[torch.Tensor] = []
    t.policy.head.register_full_backward_hook(lambda m, gi, go: grads.append(go[0].detach()))
    t.step()
    assert grads, "the update did not run"
    for grad in grads:  # (b, P + T, V): the prefix's P positions, then the piece's
        piece = grad[:, STEPS + 1 :]
        assert grad[:, : STEPS + 1].abs().max() == 0
        assert piece[:, 0::4].abs().max() == 0  # the soprano: forced
        assert piece[:, 1::4].abs().max() > 0  # the alto: chosen


def test_a_reward_on_the_chosen_voices_climbs() -> None:
    t = trainer(lr=1e-2)
    first = np.mean([t.step()["reward/total"] for _ in range(3)])
    for _ in range(30):
        last = t.step()["reward/total"]
    assert last > first + 1.0, (first, last)


def test_same_seed_same_run_and_conditions_resume() -> None:
    a, b = trainer(), trainer()
    first, second = a.step(), b.step()
    for key in first:
        if not key.startswith("charts/"):  # wall times differ
            assert first[key] == pytest.approx(second[key]), key
    state = a.state_dict()
    c = trainer()
    c.load_state_dict(state)
    assert [x.tolist() for x in a._draw_conditions()] == [x.tolist() for x in c._draw_conditions()]


def test_conditioned_window_targets_only_the_lower_voices() -> None:
    frames = np.array([38, 84, 132, 167, 1, 52, 103, 154])
    inputs, targets = conditioned_window(frames, ENC)
    bos = ENC.vocab_size
    assert inputs.tolist() == [bos, 38, 1, bos, 38, 84, 132, 167, 1, 52, 103]
    assert targets.tolist() == [-100, -100, -100, -100, 84, 132, 167, -100, 52, 103, 154]


def test_soprano_windows_start_on_bar_lines() -> None:
    tune = forced_tokens(np.arange(40)[None] % 30 + 2, ENC)[0].clip(min=0)  # 40 steps
    windows = soprano_windows([tune], 16, ENC)
    assert windows.shape == (2, 16)
    assert windows[1, 0] == (16 % 30) + 2  # the second bar's first soprano


def test_a_generator_refuses_sopranos_and_a_bad_soprano_is_named() -> None:
    with pytest.raises(ValueError, match="block 0"):
        SopranoConditions(np.array([[60]]), ENC)
