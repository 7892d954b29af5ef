"""The policy a run trained is the policy every task samples: G-learning's p_prior exp(G) and
Psi-learning's softmax(Psi / c_T), recorded in tuned.safetensors and built by load_generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module

from rlmusic.algos.finetune_setup import build_setup
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.columns import load_column
from rlmusic.evaluation.model_eval import evaluate_model
from rlmusic.models import CheckpointError, NoteLSTM, load_generator, save_checkpoint
from rlmusic.models.base import sequence_log_probs, with_bos
from rlmusic.models.checkpoint import load_checkpoint
from rlmusic.models.policy import PriorProductGenerator, portable_spec
from rlmusic.models.sampling import generate, sample_seeded
from rlmusic.rewards.build import build_reward
from rlmusic.tasks import evaluate, finetune, sample
from tests.conftest import make_tiny_checkpoint, tiny_lstm

LENGTH = 8


def tuned_run(folder: Path, checkpoint: Path, prior: Path, variant: str, temperature: float):
    overrides = [
        f"checkpoint={checkpoint}",
        f"reward.prior.checkpoint={prior}",
        "reward=rl_tuner",
        "algo=rl_tuner",
        f"algo.variant={variant}",
        f"algo.psi_temperature={temperature}",
        "algo.total_timesteps=256",
        "algo.n_envs=16",
        "algo.batch_size=32",
        f"length={LENGTH}",
        "n_samples=2",
        "device=cpu",
    ]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=overrides)
    return finetune.run(cfg, output_dir=folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A g run (its prior another model than the start) and a psi run at c_T = 0.5."""
    folder = tmp_path_factory.mktemp("policies")
    start = make_tiny_checkpoint(folder, seed=0)
    prior = make_tiny_checkpoint(folder, seed=1)
    return {
        "g": tuned_run(folder / "g", start, prior, "g", 1.0),
        "psi": tuned_run(folder / "psi", start, start, "psi", 0.5),
        "prior": prior,
        "start": start,
    }


def test_g_checkpoint_records_its_prior_and_loads_as_p_prior_exp_g(runs: dict) -> None:
    result = runs["g"]
    network, _, info = load_checkpoint(result.tuned)
    assert info["policy"] == {"kind": "g", "prior": str(runs["prior"].resolve())}
    assert info["variant"] == "g" and info["env_steps"] == 256
    policy, encoding = load_generator(str(result.tuned))
    assert isinstance(policy, PriorProductGenerator) and encoding == MelodyEncoding()
    prior, _ = load_generator(str(runs["prior"]))
    tokens = torch.randint(0, 38, (3, LENGTH), generator=torch.Generator().manual_seed(0))
    inputs = with_bos(tokens, 38)
    with torch.no_grad():
        expected = F.log_softmax(network(inputs) + F.log_softmax(prior(inputs), -1), -1)
        torch.testing.assert_close(F.log_softmax(policy(inputs), -1), expected)
        # the incremental path agrees with the whole-sequence one
        state, stepped = None, []
        for t in range(LENGTH):
            logits, state = policy.step(inputs[:, t], state)
            stepped.append(logits)
        torch.testing.assert_close(torch.stack(stepped, 1), policy(inputs), rtol=0, atol=1e-5)


def test_psi_checkpoint_loads_as_softmax_of_psi_over_its_temperature(runs: dict) -> None:
    network, _, info = load_checkpoint(runs["psi"].tuned)  # the file holds Psi itself
    assert info["policy"] == {"kind": "psi", "temperature": 0.5}
    policy, _ = load_generator(str(runs["psi"].tuned))
    assert isinstance(policy, NoteLSTM)  # folded: a plain generator, usable everywhere
    inputs = with_bos(torch.randint(0, 38, (3, LENGTH)), 38)
    with torch.no_grad():
        torch.testing.assert_close(policy(inputs), network(inputs) / 0.5, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["g", "psi"])
def test_sample_and_evaluate_play_exactly_the_trained_policy(
    runs: dict, variant: str, tmp_path: Path
) -> None:
    result = runs[variant]
    trained = result.extras["trainer"].policy()  # what the run itself sampled and measured
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose(
            "sample",
            overrides=[
                f"checkpoint={result.tuned}",
                "n=64",
                f"length={LENGTH}",
                f"out={tmp_path / 'sampled'}",
                "device=cpu",
                "musicxml=0",
            ],
        )
    sampled = sample.run(cfg).tokens
    expected = generate(trained, 64, LENGTH, torch.Generator().manual_seed(0), batch_size=256)
    np.testing.assert_array_equal(sampled, expected)
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose(
            "evaluate",
            overrides=[
                f"checkpoint={result.tuned}",
                f"prior={runs['prior']}",
                "n=64",
                f"length={LENGTH}",
                "~data",
            ],
        )
    (evaluation,) = evaluate.run(cfg, output_dir=tmp_path / "eval")
    prior, encoding = load_generator(str(runs["prior"]))
    direct = evaluate_model("trained", trained, encoding, 64, LENGTH, 0, prior, None)
    assert evaluation.table == direct.table
    for key, value in direct.realism.items():
        assert evaluation.realism[key] == pytest.approx(value, abs=1e-6), key
    # compare and listen: a column named by the run folder samples the trained policy too
    column = load_column(variant, str(result.run_dir), 64, LENGTH, 5, encoding)
    np.testing.assert_array_equal(column.tokens, sample_seeded(trained, 64, LENGTH, 5)[0])
    # the run's final/* metrics measured the policy the checkpoint loads as
    loaded, _ = load_generator(str(result.tuned))
    tokens, log_pi = sample_seeded(loaded, 256, LENGTH, 1_000_003)  # final_metrics' seed
    reference = runs["prior"] if variant == "g" else runs["start"]
    reference_model, _ = load_generator(str(reference))
    with torch.no_grad():
        log_prior = sequence_log_probs(reference_model, torch.as_tensor(tokens)).numpy()
    kl = float(np.mean(log_pi - log_prior))
    assert result.metrics["final/kl/prior_per_token"] == pytest.approx(kl, abs=1e-5)


def test_a_g_checkpoint_serves_as_a_prior_and_is_refused_as_a_start(
    runs: dict, tmp_path: Path
) -> None:
    reward = build_reward(
        {"c": 0.5, "rules": ["key"], "prior": {"checkpoint": str(runs["g"].tuned), "weight": 1}},
        MelodyEncoding(),
    )
    tokens = np.random.default_rng(0).integers(0, 38, (4, LENGTH))
    policy, _ = load_generator(str(runs["g"].tuned))
    with torch.no_grad():
        logp = F.log_softmax(policy(with_bos(torch.as_tensor(tokens), 38)), -1)
    expected = logp.gather(-1, torch.as_tensor(tokens)[..., None])[..., 0].numpy()
    np.testing.assert_allclose(reward.score(tokens)[1]["prior"], expected, atol=1e-5)
    with pytest.raises(ValueError, match="is a G-learning policy"):
        build_setup(str(runs["g"].tuned), {"c": 0.5, "rules": ["key"]}, tmp_path)


def test_a_prior_spec_loads_from_any_folder_and_bad_policies_are_named(tmp_path: Path) -> None:
    here = Path.cwd()
    try:
        os.chdir(tmp_path)
        assert portable_spec("runs/prior.pt") == str(tmp_path / "runs" / "prior.pt")
    finally:
        os.chdir(here)
    assert portable_spec("pretrained:note_lstm") == "pretrained:note_lstm"
    enc = MelodyEncoding()
    loop = tmp_path / "loop.safetensors"
    save_checkpoint(loop, tiny_lstm(), enc, info={"policy": {"kind": "g", "prior": str(loop)}})
    with pytest.raises(CheckpointError, match="leads back to"):
        load_generator(str(loop))
    odd = save_checkpoint(tmp_path / "odd.safetensors", tiny_lstm(), enc, {"policy": {"kind": "x"}})
    with pytest.raises(CheckpointError, match="unknown policy kind info.policy.kind='x'"):
        load_generator(str(odd))
    bare = save_checkpoint(
        tmp_path / "bare.safetensors", tiny_lstm(), enc, {"policy": {"kind": "g"}}
    )
    with pytest.raises(CheckpointError, match="without its prior"):
        load_generator(str(bare))
