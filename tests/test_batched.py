"""The batched trainer: sampling matches scoring, it learns a simple reward, resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlmusic.algos.batched.trainer import BatchedConfig, BatchedTrainer, sample_with_log_probs
from rlmusic.algos.kl import split_log_ratio, token_log_probs
from rlmusic.models.base import sequence_log_probs, with_bos
from tests.toy_generator import ToyGenerator

TARGET = 14  # reward: play middle C


def middle_c_reward(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    reward = (tokens == TARGET).astype(np.float32)
    return reward, {"middle_c": reward}


def tiny_config(**overrides) -> BatchedConfig:
    base = dict(
        batch_size=32, minibatch_size=16, length=8, group_size=8, lr=3e-3, epochs=2, kl_coef=0.01
    )
    # the values these tests were written against (BatchedConfig's defaults are the shipped run's)
    base.update(method="ppo", gamma=1.0, kl_pitch_coef=None)
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


def big_returns_reward(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns of order 1,000 that no action changes: all signal is for the value function."""
    reward = np.full(tokens.shape, 300.0, dtype=np.float32)
    return reward, {"constant": reward}


def test_the_value_loss_never_moves_the_generator() -> None:
    """The collapse's cause: the value loss flowed into the generator's hidden state."""
    config = tiny_config(method="ppo", kl_coef=0.0, normalize_advantages=False, vf_coef=100.0)
    trainer = BatchedTrainer(ToyGenerator(), big_returns_reward, config, seed=0)
    start = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    metrics = trainer.step()
    # advantages = returns - values; the value starts at zero, so the policy does see a
    # gradient, but it must be the policy gradient alone: compare with vf_coef 0
    reference = BatchedTrainer(
        ToyGenerator(),
        big_returns_reward,
        tiny_config(**{**config.__dict__, "vf_coef": 0.0}),
        seed=0,
    )
    reference.step()
    for name, value in trainer.policy.state_dict().items():
        torch.testing.assert_close(value, reference.policy.state_dict()[name], msg=name)
    assert any(not torch.equal(v, trainer.policy.state_dict()[k]) for k, v in start.items())
    assert metrics["losses/value"] > 0


def test_the_value_function_learns_returns_that_depend_on_the_step() -> None:
    """lr 0 (the policy stays put), 50 paid at the last step, gamma 0.5: V(t) -> 50 * 0.5^(7 - t)
    in the reward's units, while the value loss is measured in normalised units (PopArt)."""

    def countdown(tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        reward = np.zeros(tokens.shape, dtype=np.float32)
        reward[:, -1] = 50.0  # a sequence-level bonus: the return grows toward the end
        return reward, {"end": reward}

    trainer = BatchedTrainer(
        ToyGenerator(), countdown, tiny_config(method="ppo", lr=0.0, gamma=0.5), seed=0
    )
    first = trainer.step()
    for _ in range(39):
        metrics = trainer.step()
    assert metrics["losses/explained_variance"] > 0.9
    assert first["losses/value"] < 3.0  # the returns in raw units would give a loss of ~400
    tokens, _ = sample_with_log_probs(trainer.policy, 64, 8, torch.Generator().manual_seed(1))
    with torch.no_grad():
        _, hidden = trainer.policy.forward_with_hidden(with_bos(tokens, trainer.policy.bos_token))
        values = trainer.value_fn(hidden, torch.arange(8).expand(64, -1)).mean(0)
    expected = 50.0 * 0.5 ** torch.arange(7, -1, -1).float()  # [0.39, .., 12.5, 25, 50]
    torch.testing.assert_close(values, expected, atol=1.5, rtol=0.0)


@pytest.mark.parametrize("temperature", [0.8, 1.3])
def test_a_tempered_run_acts_and_trains_the_same_policy(temperature: float) -> None:
    """Audit item: old log-probs came from the tempered softmax, the ratio from temperature 1."""
    config = tiny_config(method="rloo", lr=0.0, temperature=temperature, kl_coef=0.1)
    trainer = BatchedTrainer(ToyGenerator(), middle_c_reward, config, seed=0)
    metrics = trainer.step()
    assert metrics["losses/clipfrac"] == 0.0
    assert abs(metrics["losses/approx_kl"]) < 1e-6
    # the policy is the tempered start model (held to the untempered prior, which stays put)
    tokens = torch.randint(0, 38, (4, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tempered = torch.log_softmax(trainer.prior(tokens) / temperature, -1)
        torch.testing.assert_close(torch.log_softmax(trainer.policy(tokens), -1), tempered)


def test_the_loss_mode_uses_the_reverse_kl_estimator() -> None:
    """kl_mode=loss with a large beta pulls a tuned policy back toward the prior."""
    config = tiny_config(method="rloo", kl_mode="loss", kl_coef=5.0, lr=3e-3)
    trainer = BatchedTrainer(ToyGenerator(), middle_c_reward, config, seed=0)
    with torch.no_grad():  # start away from the prior
        trainer.policy.head.bias[TARGET] += 3.0
    first = trainer.step()["kl/prior_per_token"]
    for _ in range(15):
        last = trainer.step()["kl/prior_per_token"]
    assert last < first / 2


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_exactly(tmp_path) -> None:
    """``algo=batched`` through the run harness: SIGKILL after the first resume point, the same
    command again, and the same weights as a run never interrupted (the default reward, its
    constraints' multipliers included)."""
    from rlmusic.algos.harness import RESUME_FILE
    from tests.conftest import make_tiny_checkpoint
    from tests.sb3_helpers import kill_9_then_resume

    overrides = [
        f"checkpoint={make_tiny_checkpoint(tmp_path)}",
        "algo.iterations=60",
        "algo.batch_size=64",
        "algo.minibatch_size=32",
        "algo.group_size=16",
        "algo.checkpoint_every=5",
        "algo.sample_every=0",
        "length=16",
        "n_samples=2",
        "device=cpu",
    ]
    kill_9_then_resume(tmp_path, overrides, RESUME_FILE)
