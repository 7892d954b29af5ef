"""One contract: every algorithm trains from the same setup through ``train(setup, algo_cfg)``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from rlmusic.algos import ALGORITHMS, get_train
from rlmusic.algos.finetune_setup import FinetuneResult, build_setup
from rlmusic.models import load_generator
from rlmusic.models.checkpoint import load_checkpoint
from rlmusic.tasks.finetune import FINAL_STATISTICS, metric_names

# each algorithm's config group, shrunk to a run of a second or two
TINY = {
    "batched": [
        "algo.iterations=2",
        "algo.batch_size=16",
        "algo.minibatch_size=8",
        "algo.group_size=8",
        "algo.checkpoint_every=1",
        "algo.sample_every=0",
    ],
    "ppo": ["algo.total_timesteps=32", "algo.n_envs=2", "algo.n_steps=8", "algo.batch_size=8"],
    "rl_tuner": ["algo.total_timesteps=64", "algo.n_envs=4", "algo.batch_size=16"],
}


def algo_cfg(name: str) -> dict:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=[f"algo={name}", *TINY[name]])
    return OmegaConf.to_container(cfg.algo, resolve=True)


def test_every_configured_algorithm_has_a_config_group() -> None:
    conf = Path(__file__).parents[1] / "conf" / "algo"
    assert {p.stem for p in conf.glob("*.yaml")} == set(ALGORITHMS)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_trains_from_the_same_setup(
    name: str, tmp_path: Path, tiny_checkpoint: Path
) -> None:
    reward = {
        "c": 0.5,
        "rules": ["key", "motif"],
        "prior": {"checkpoint": str(tiny_checkpoint), "weight": 1.0},
    }
    setup = build_setup(
        str(tiny_checkpoint), reward, tmp_path / name, seed=0, device="cpu", length=8, n_samples=2
    )
    reference_before = {k: v.clone() for k, v in setup.reference.generator.state_dict().items()}
    start = {k: v.clone() for k, v in setup.generator.state_dict().items()}
    assert "prior" not in setup.reward.names  # the prior is the reference, not a task term
    assert setup.env_reward().names == ["key", "motif", "prior"]

    result = get_train(name)(setup, algo_cfg(name))

    assert isinstance(result, FinetuneResult)
    assert result.run_dir == tmp_path / name and result.tuned.exists() and result.steps > 0
    assert len(list((tmp_path / name / "samples" / "final").glob("*.mid"))) == 2
    tuned, encoding = load_generator(str(result.tuned))
    assert encoding == setup.encoding
    # the same final numbers for every algorithm, measured the same way: the names the
    # preflight accepts as an objective (rlmusic.tasks.finetune.metric_names), no more, no less
    final = {k.removeprefix("final/") for k in result.metrics if k.startswith("final/")}
    assert final == {*FINAL_STATISTICS, "reward/key", "reward/motif"}
    names = metric_names({"reward": reward})
    assert [k for k in result.metrics if k not in names] == []  # every metric a valid objective
    # training moved the policy: the tuned weights differ from the start model's ...
    tuned_weights = load_checkpoint(result.tuned)[0].state_dict()
    assert tuned_weights.keys() == start.keys()
    moved = {k: (tuned_weights[k] - start[k]).abs().max().item() for k in start}
    assert max(moved.values()) > 1e-6, moved
    # ... and never the reference
    for key, value in setup.reference.generator.state_dict().items():
        torch.testing.assert_close(value, reference_before[key], msg=key)


def test_without_a_prior_the_reference_is_a_frozen_copy_of_the_start_model(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    setup = build_setup(str(tiny_checkpoint), {"c": 0.5, "rules": ["key"], "prior": None}, tmp_path)
    assert not setup.reference.configured and setup.reference.weight == 0.0
    assert setup.reference.generator is not setup.generator
    assert not any(p.requires_grad for p in setup.reference.generator.parameters())
    assert all(p.requires_grad for p in setup.generator.parameters())


def test_the_reference_defaults_to_the_start_model_whatever_it_is(
    tmp_path: Path, tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The presets' prior is ``start``: tuning another model keeps it near itself, not the LSTM."""
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=["reward=rl_tuner"])
    assert cfg.reward.prior.checkpoint == "start"
    with caplog.at_level("INFO", logger="rlmusic.algos.finetune_setup"):
        setup = build_setup(str(tiny_checkpoint), cfg.reward, tmp_path, device="cpu")
    assert setup.reference.configured and setup.reference.weight == 1.0
    assert setup.reference.spec == str(tiny_checkpoint)
    assert f"KL reference: the start model {tiny_checkpoint}" in caplog.text
    assert setup.reference.generator is not setup.generator
    for name, value in setup.generator.state_dict().items():
        torch.testing.assert_close(setup.reference.generator.state_dict()[name], value)
    tokens = torch.randint(0, 38, (4, 8), generator=torch.Generator().manual_seed(0))
    from rlmusic.models.base import sequence_log_probs

    with torch.no_grad():  # the KL to the reference is exactly 0 before any update
        torch.testing.assert_close(
            setup.reference.log_probs(tokens), sequence_log_probs(setup.generator, tokens)
        )


def test_setup_checks_what_every_algorithm_relies_on(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="length must be >= 2"):
        build_setup(str(tiny_checkpoint), {"c": 0.5, "rules": ["key"]}, tmp_path, length=1)
    with pytest.raises(
        ValueError, match="algo='nope' is not available; known: batched, ppo, rl_tuner"
    ):
        get_train("nope")
