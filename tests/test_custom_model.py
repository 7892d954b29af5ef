"""Your own generator (``model=custom model._target_=...``): a module written outside rlmusic
(tests/user_models.py: plain torch, no import of rlmusic) through every task's loading path.

The chain runs the CLI in this process with tiny budgets: pretrain on a few generated MIDI
files, finetune (the default algorithm), sample from the fine-tuning run folder, evaluate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rlmusic import cli
from rlmusic.models import generate, load_generator
from rlmusic.models.base import prefill
from rlmusic.models.checkpoint import (
    CheckpointError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from rlmusic.models.custom import CustomGenerator
from rlmusic.models.sampling import sample_seeded
from tests.conftest import write_midi

GRU = "tests.user_models.TinyGRU"  # constructor and forward only
STEPPING_GRU = "tests.user_models.SteppingGRU"  # the same network with its own step
VOCAB = 38


def custom(target: str = GRU, seed: int = 0, **arguments: object) -> CustomGenerator:
    torch.manual_seed(seed)
    model = build_model("custom", {"vocab_size": VOCAB, "_target_": target, **arguments})
    assert isinstance(model, CustomGenerator)
    return model.eval()


def test_forward_only_samples_what_the_stepping_model_samples() -> None:
    plain = custom(GRU, hidden=16)
    stepping = custom(STEPPING_GRU, hidden=16)
    stepping.load_state_dict(plain.state_dict())  # same weights, other class
    for model in (plain, stepping):
        assert model.bos_token == VOCAB
    runs = [
        generate(m, 12, 20, torch.Generator().manual_seed(3), top_p=0.9, primer=[2, 1])
        for m in (plain, stepping)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    seeded = [sample_seeded(m, 12, 20, seed=5) for m in (plain, stepping)]
    np.testing.assert_array_equal(seeded[0][0], seeded[1][0])
    np.testing.assert_allclose(seeded[0][1], seeded[1][1], atol=1e-5)


def test_fallbacks_prefill_and_hidden_features() -> None:
    model = custom(GRU, hidden=16)
    tokens = torch.tensor([[VOCAB, 2, 3, 1, 0]])
    logits = model(tokens)  # (1, 5, V)
    last, state = prefill(model, tokens)
    torch.testing.assert_close(last, logits[:, -1])
    step_logits, _ = model.step(torch.tensor([4]), state)  # goes on from the prefix
    torch.testing.assert_close(
        step_logits, model(torch.cat([tokens, torch.tensor([[4]])], 1))[:, -1]
    )
    # no forward_with_hidden: the value function reads log_softmax(logits), detached
    out, hidden = model.forward_with_hidden(tokens)
    torch.testing.assert_close(out, logits)
    torch.testing.assert_close(hidden, torch.log_softmax(logits, -1))
    assert hidden.shape == (1, 5, VOCAB) and not hidden.requires_grad


def test_checkpoint_records_the_target_and_loads_in_a_fresh_build(tmp_path: Path, encoding) -> None:
    model = custom(GRU, hidden=16)
    path = save_checkpoint(tmp_path / "m.safetensors", model, encoding)
    loaded, _, _ = load_checkpoint(path)
    assert loaded.config == {"vocab_size": VOCAB, "hidden": 16, "_target_": GRU}
    assert type(loaded.net).__name__ == "TinyGRU"
    tokens = torch.tensor([[VOCAB, 2, 3]])
    torch.testing.assert_close(loaded(tokens), model(tokens))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"_target_": "no_such_module.Net"}, ["no_such_module.Net", "cannot import"]),
        ({"_target_": "tests.user_models.NoSuchClass"}, ["NoSuchClass", "has no"]),
        ({"_target_": GRU, "width": 3}, [GRU, "width=3", "rejects its arguments"]),
        ({}, ["model._target_"]),
    ],
    ids=["missing-module", "missing-class", "bad-arguments", "no-target"],
)
def test_a_bad_target_is_one_line_naming_it(config: dict, expected: list[str]) -> None:
    with pytest.raises(CheckpointError) as caught:
        build_model("custom", {"vocab_size": VOCAB, **config}, where="ckpt.safetensors")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("ckpt.safetensors:")
    for part in expected:
        assert part in message


def test_a_checkpoint_whose_module_is_gone_names_file_and_module(tmp_path: Path, encoding) -> None:
    model = custom(GRU, hidden=16)
    model.config["_target_"] = "gone_module.TinyGRU"  # as if the user's module were deleted
    path = save_checkpoint(tmp_path / "m.safetensors", model, encoding)
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*gone_module"):
        load_checkpoint(path)


def test_cli_pretrain_with_a_missing_module_is_one_line(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(
            ["pretrain", "model=custom", "model._target_=no_such_module.Net", f"out_dir={tmp_path}"]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert caught.value.code == 2
    assert len(err) == 1 and "no_such_module" in err[0] and "model=custom" in err[0], err


def rlmusic(run: Path, task: str, *overrides: str) -> Path:
    assert cli.main([task, *overrides, f"hydra.run.dir={run}"]) == 0
    return run


CPU = ["threads=1", "device=cpu"]
TINY_CRITIC = "+reward.extra.realism.auto={steps: 5, windows: 64, samples: 32}"


@pytest.fixture(scope="module")
def midi_data(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``data=midi_dir`` overrides for ten generated melodies (a few seconds to prepare)."""
    root = tmp_path_factory.mktemp("custom_midi")
    scale = [57, 59, 60, 62, 64, 65, 67, 69, 71, 72]
    for i in range(10):
        notes = [(scale[(i + k) % len(scale)], float(k), float(k + 1)) for k in range(16)]
        write_midi(root / "midi" / f"piece_{i:02d}.mid", notes)
    return [
        "data=midi_dir",
        f"data.path={root / 'midi'}",
        f"data.cache_dir={root / 'cache'}",
        "data.workers=1",
        "data.valid_fraction=0.2",
        "data.test_fraction=0.2",
    ]


def test_pretrain_finetune_sample_evaluate_a_users_model(
    tmp_path: Path, midi_data: list[str]
) -> None:
    data = midi_data
    tiny_pretrain = ["train.epochs=1", "train.batch_size=8", "train.window=16", "progress=false"]
    pretrained = rlmusic(
        tmp_path / "pre",
        "pretrain",
        *data,
        *CPU,
        *tiny_pretrain,
        "model=custom",
        f"model._target_={GRU}",
        "+model.hidden=24",
        "train.warmup_steps=1",
    )
    tuned = rlmusic(
        tmp_path / "ft",
        "finetune",
        *data,
        *CPU,
        f"checkpoint={pretrained}",
        TINY_CRITIC,
        "algo.iterations=2",
        "algo.batch_size=16",
        "algo.minibatch_size=8",
        "algo.group_size=8",
        "algo.sample_every=0",
        "n_samples=1",
    )
    model, _, info = load_checkpoint(tuned / "tuned.safetensors")
    assert model.config["_target_"] == GRU and model.config["hidden"] == 24
    assert info["tuned_from"] == str(pretrained)
    samples = rlmusic(
        tmp_path / "sample", "sample", f"checkpoint={tuned}", "n=2", "length=8", "musicxml=0", *CPU
    )
    assert len(list(samples.rglob("*.mid"))) == 2
    rlmusic(
        tmp_path / "eval",
        "evaluate",
        *data,
        f"checkpoint={tuned}",
        f"prior={pretrained}",
        "n=16",
        "length=16",
    )
    # supervised fine-tuning from the user's checkpoint: the model comes from it
    again = rlmusic(tmp_path / "init", "pretrain", *data, *CPU, *tiny_pretrain, f"init={tuned}")
    model, _, info = load_checkpoint(again)
    assert model.config["_target_"] == GRU and info["init"] == str(tuned)
    rlmusic(
        tmp_path / "compare",
        "compare",
        *data,
        f"models.user={tuned}",
        "models.lstm=pretrained:note_lstm",
        f"prior={pretrained}",
        "n=16",
        "k=1",
        "audio=false",
        "critic.enabled=false",
        "bootstrap.resamples=20",
        "overlap.distances=50",
    )
    rlmusic(
        tmp_path / "listen",
        "listen",
        f"models.user={tuned}",
        "models.lstm=pretrained:note_lstm",
        "pairs=2",
        "length=8",
        "synth=sine",
        "device=cpu",
    )
    rlmusic(
        tmp_path / "critic",
        "train-critic",
        *data,
        *CPU,
        f"critic.fake.generators=[{tuned}]",
        "critic.fake.n=32",
        "critic.real.windows=64",
        "critic.train.steps=3",
        "progress=false",
    )


@pytest.mark.parametrize(
    "algo",
    [
        [
            "algo=ppo",
            "algo.n_envs=2",
            "algo.n_steps=64",
            "algo.batch_size=16",
            "algo.n_epochs=1",
            "algo.total_timesteps=64",
            "algo.sample_every=0",
        ],
        *[
            [
                "algo=rl_tuner",
                f"algo.variant={variant}",
                "algo.total_timesteps=256",
                "algo.n_envs=16",
                "algo.batch_size=32",
                "algo.sample_every=0",
            ]
            for variant in ("g", "psi")
        ],
    ],
    ids=["ppo", "rl_tuner_g", "rl_tuner_psi"],
)
def test_every_algorithm_tunes_a_users_model(
    tmp_path: Path, midi_data: list[str], encoding, algo: list[str]
) -> None:
    start = save_checkpoint(tmp_path / "start.safetensors", custom(GRU, hidden=16), encoding)
    tuned = rlmusic(
        tmp_path / "ft",
        "finetune",
        *midi_data,
        *CPU,
        f"checkpoint={start}",
        TINY_CRITIC,
        "n_samples=1",
        *algo,
    )
    model, _ = load_generator(str(tuned))  # the run folder is a checkpoint
    assert "TinyGRU" in repr(model)
    assert sample_seeded(model, 2, 8, seed=0)[0].shape == (2, 8)


def test_a_temperature_on_a_model_without_a_head_is_a_user_error() -> None:
    """Folding a temperature needs a linear ``head``; a model that names it otherwise is told
    so in one line (a UserError), and temperature 1 never needs one."""
    from rlmusic.errors import UserError
    from rlmusic.models.base import fold_temperature

    headless = custom("tests.user_models.HeadlessGRU")
    fold_temperature(custom(), 0.5)  # TinyGRU's head is found through the wrapper
    with pytest.raises(UserError, match="has no linear output layer named `head`"):
        fold_temperature(headless, 0.5)
