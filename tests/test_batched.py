"""The batched trainer: sampling matches scoring, it learns a simple reward, resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlmusic.algos.batched.trainer import (
    BatchedConfig,
    BatchedTrainer,
    sample_with_log_probs,
    split_log_ratio,
    token_log_probs,
)
from rlmusic.models.base import sequence_log_probs
from tests.toy_generator import ToyGenerator

TARGET = 14  # reward: play middle C


def middle_c_reward(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    reward = (tokens == TARGET).astype(np.float32)
    return reward, {"middle_c": reward}


def tiny_config(**overrides) -> BatchedConfig:
    base = dict(
        batch_size=32, minibatch_size=16, length=8, group_size=8, lr=3e-3, epochs=2, kl_coef=0.01
    )
    return BatchedConfig(**{**base, **overrides})


def test_sampled_log_probs_equal_a_full_forward() -> None:
    model = ToyGenerator()
    tokens, logp = sample_with_log_probs(model, 16, 10, torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(
            logp.numpy(), sequence_log_probs(model, tokens).numpy(), atol=1e-5
        )


@pytest.mark.parametrize("method", ["ppo", "grpo", "rloo"])
def test_each_method_learns_a_simple_reward(method: str) -> None:
    trainer = BatchedTrainer(ToyGenerator(), middle_c_reward, tiny_config(method=method), seed=0)
    first = trainer.step()["reward/middle_c"]
    for _ in range(25):
        last = trainer.step()
    assert last["reward/middle_c"] > first + 2.0  # of 8 steps, from ~0.2 expected at random
    assert last["kl/prior_per_token"] > 0
    assert np.isfinite(last["policy/entropy"])


def test_same_seed_same_run_and_exact_resume(tmp_path) -> None:
    def run(steps: int, trainer: BatchedTrainer) -> list[float]:
        return [trainer.step()["reward/total"] for _ in range(steps)]

    straight = BatchedTrainer(ToyGenerator(), middle_c_reward, tiny_config(kl_target=0.5), seed=3)
    rewards = run(6, straight)
    again = BatchedTrainer(ToyGenerator(), middle_c_reward, tiny_config(kl_target=0.5), seed=3)
    assert run(6, again) == rewards

    first_half = BatchedTrainer(ToyGenerator(), middle_c_reward, tiny_config(kl_target=0.5), seed=3)
    run(3, first_half)
    torch.save(first_half.state_dict(), tmp_path / "state.pt")
    resumed = BatchedTrainer(
        ToyGenerator(seed=99), middle_c_reward, tiny_config(kl_target=0.5), seed=123
    )
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    # the prior is the start model, not the checkpoint: rebuild it the same way
    resumed.prior.load_state_dict(ToyGenerator().state_dict())
    assert run(3, resumed) == rewards[3:]
    for a, b in zip(resumed.policy.parameters(), straight.policy.parameters()):
        torch.testing.assert_close(a, b)


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="algo.method='a2c'"):
        BatchedConfig(method="a2c")
    with pytest.raises(ValueError, match="multiple of algo.group_size"):
        BatchedConfig(method="grpo", batch_size=30, group_size=8, minibatch_size=10)


def test_split_log_ratio_adds_up_and_separates_rhythm_from_pitch() -> None:
    generator = torch.Generator().manual_seed(0)
    policy_logits = torch.randn(4, 6, 10, generator=generator)
    prior_logits = torch.randn(4, 6, 10, generator=generator)
    tokens = torch.randint(0, 10, (4, 6), generator=generator)
    event, pitch = split_log_ratio(policy_logits, prior_logits, tokens)
    whole = token_log_probs(policy_logits, tokens) - token_log_probs(prior_logits, tokens)
    torch.testing.assert_close(event + pitch, whole)
    assert torch.all(pitch[tokens < 2] == 0)  # a hold or rest has no pitch part
    # a policy that only reweights pitches among themselves has no event part at a strike
    reweighted = prior_logits.clone()
    reweighted[..., 2:] += torch.linspace(0, 1, 8)
    reweighted[..., 2:] -= torch.logsumexp(reweighted[..., 2:], -1, keepdim=True) - torch.logsumexp(
        prior_logits[..., 2:], -1, keepdim=True
    )
    event, _ = split_log_ratio(reweighted, prior_logits, tokens)
    torch.testing.assert_close(event, torch.zeros_like(event), atol=1e-5, rtol=0)


def test_pitch_coefficient_changes_only_the_pitch_penalty() -> None:
    """With kl_pitch_coef equal to kl_coef the run is the ordinary per-token KL run."""
    plain = BatchedTrainer(ToyGenerator(), middle_c_reward, tiny_config(kl_coef=0.5), seed=1)
    split = BatchedTrainer(
        ToyGenerator(), middle_c_reward, tiny_config(kl_coef=0.5, kl_pitch_coef=0.5), seed=1
    )
    for _ in range(3):
        a, b = plain.step(), split.step()
    assert a["reward/total"] == pytest.approx(b["reward/total"])
    for p, q in zip(plain.policy.parameters(), split.policy.parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)
