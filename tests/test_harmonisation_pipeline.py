"""A harmoniser end to end through the tasks: trained (`pretrain condition=soprano`), fine-tuned
(algo=batched on the train split's sopranos, the harmony reward), evaluated on the held-out
sopranos, and its critic trained on its own harmonisations: tiny models, 24 chorales."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rlmusic.config import ConfigError
from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.harmonisation import CONDITIONING_KEY, SOPRANO
from rlmusic.data.prepare import prepare_corpus
from rlmusic.models import LSTMConfig, NoteLSTM, save_checkpoint
from rlmusic.models.conditions import soprano_windows
from rlmusic.models.registry import checkpoint_conditioning, checkpoint_info, load_generator
from rlmusic.models.sampling import sample_seeded
from rlmusic.tasks import evaluate, finetune, pretrain
from tests.conftest import compose_finetune, compose_task, tiny_chorale_finetune

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHORALE = ChoraleEncoding()


def data_overrides(tmp_path: Path) -> list[str]:
    return ["data=chorales", "data.limit=24", f"data.cache_dir={tmp_path / 'cache'}"]


def tiny(tmp_path: Path, conditioning: str | None = SOPRANO, seed: int = 0) -> Path:
    """A seeded random-init chorale LSTM, saved as a harmoniser (or a generator)."""
    torch.manual_seed(seed)
    config = LSTMConfig(
        vocab_size=CHORALE.vocab_size, embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0
    )
    info: dict[str, Any] = {CONDITIONING_KEY: conditioning} if conditioning else {}
    name = f"{'harmoniser' if conditioning else 'generator'}{seed}"
    return save_checkpoint(tmp_path / f"{name}.safetensors", NoteLSTM(config), CHORALE, info=info)


def test_pretrain_condition_soprano_writes_a_harmoniser(tmp_path: Path) -> None:
    cfg = compose_task(
        "pretrain",
        [
            *data_overrides(tmp_path),
            f"init={tiny(tmp_path, None)}",
            "condition=soprano",
            "train.window=64",
            "train.batch_size=8",
            "train.max_steps=2",
            f"out_dir={tmp_path / 'pre'}",
            "device=cpu",
            "progress=false",
        ],
    )
    result = pretrain.run(cfg)
    assert np.isfinite(result["valid_nll"])
    assert checkpoint_conditioning(str(tmp_path / "pre")) == SOPRANO
    assert checkpoint_info(str(tmp_path / "pre" / "model.safetensors"))["window"] == 64


def test_pretrain_condition_soprano_refuses_melodies(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="condition=soprano trains a harmoniser"):
        pretrain.pretrainer_class("soprano", load_generator("pretrained:note_lstm")[1])


def test_finetune_and_evaluate_a_harmoniser(tmp_path: Path) -> None:
    start = tiny(tmp_path)
    cfg = compose_finetune(
        [
            *data_overrides(tmp_path),
            *tiny_chorale_finetune(start, 16),
            "final_eval.enabled=true",
            "final_eval.n=8",
        ]
    )
    run = finetune.run(cfg, output_dir=tmp_path / "run")
    assert checkpoint_conditioning(str(run.tuned)) == SOPRANO  # a harmoniser stays one
    assert "eval/parallel_fifths_and_octaves" in run.metrics
    # its final samples harmonise the train split's sopranos, note for note
    corpus = prepare_corpus(OmegaConf.to_container(cfg.data), CHORALE, progress=False)
    train = {tuple(s) for s in soprano_windows(corpus.tunes("train"), 16, CHORALE)}
    tuned, _ = load_generator(str(run.tuned))
    tokens, _ = sample_seeded(tuned, 8, 64, 3, conditions=run.extras["trainer"].conditions)
    assert {tuple(row) for row in tokens[:, ::4]} <= train

    ev = compose_task(
        "evaluate",
        [
            *data_overrides(tmp_path),
            f"checkpoint={run.tuned}",
            f"compare_to=[{start}]",
            "n=8",
            "length=16",
            "bootstrap.resamples=10",
        ],
    )
    tuned_eval, start_eval = evaluate.run(ev, output_dir=tmp_path / "eval")
    assert tuned_eval.n == start_eval.n == 8
    assert np.isfinite(tuned_eval.realism["KL to prior per token"])
    assert start_eval.realism["KL to prior per token"] == pytest.approx(0.0, abs=1e-5)


def test_a_harmoniser_needs_sopranos_and_a_generator_refuses_them(tmp_path: Path) -> None:
    ev = compose_task(
        "evaluate",
        [
            *data_overrides(tmp_path),
            f"checkpoint={tiny(tmp_path)}",
            f"compare_to=[{tiny(tmp_path, None)}]",
            "n=4",
            "length=16",
        ],
    )
    with pytest.raises(ConfigError, match="harmonisers and generators cannot share one table"):
        evaluate.run(ev, output_dir=tmp_path / "eval")
    cfg = compose_finetune([f"checkpoint={tiny(tmp_path)}", "reward=chorale", "length=16"])
    with pytest.raises(ConfigError, match="its sopranos come from data=chorales"):
        finetune.harmonisation_conditions(cfg)


def test_a_harmonisers_critic_side_harmonises_the_given_sopranos(tmp_path: Path) -> None:
    from rlmusic.critics.data import sample_generators

    given = np.array([[38, 1, 1, 1, 40, 1, 1, 1], [45, 1, 44, 1, 42, 1, 1, 0]])
    fake = sample_generators([str(tiny(tmp_path))], 6, 32, 0, CHORALE, sopranos=given)
    assert fake.shape == (6, 32)
    assert {tuple(row) for row in fake[:, ::4]} <= {tuple(row) for row in given}
    with pytest.raises(ValueError, match="is a harmoniser: it needs sopranos"):
        sample_generators([str(tiny(tmp_path))], 2, 32, 0, CHORALE)


def test_rl_tuner_refuses_a_harmoniser(tmp_path: Path) -> None:
    cfg = compose_finetune(
        [
            *data_overrides(tmp_path),
            f"checkpoint={tiny(tmp_path)}",
            "algo=rl_tuner",
            "reward=chorale",
            "~reward.extra.realism",
            "length=16",
            "device=cpu",
        ]
    )
    with pytest.raises(ConfigError, match="algo=rl_tuner cannot tune a harmoniser"):
        finetune.run(cfg, output_dir=tmp_path / "run")


def test_melodies_join_bachs_sopranos_at_their_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folk = np.full((1000, 16), 1, dtype=np.int64)
    folk[:, 0] = 40  # a held D5: told apart from every Bach window
    monkeypatch.setattr(finetune, "melody_sopranos", lambda *args: folk)
    base = [*data_overrides(tmp_path), f"checkpoint={tiny(tmp_path)}", "length=16"]
    bach = finetune.harmonisation_conditions(compose_finetune(base)).sopranos
    for share in (0.5, 0.25):
        cfg = compose_finetune([*base, "sopranos.melodies=essen", f"sopranos.melody_share={share}"])
        pool = finetune.harmonisation_conditions(cfg).sopranos
        melodies = int((pool == folk[0]).all(axis=1).sum())
        assert len(pool) - melodies == len(bach)
        assert melodies / len(pool) == pytest.approx(share, abs=0.01)
    cfg = compose_finetune([*base, "sopranos.melodies=essen", "sopranos.melody_share=1.0"])
    with pytest.raises(ConfigError, match="melody_share=1.0 must be in"):
        finetune.harmonisation_conditions(cfg)


def test_compare_and_listen_pair_two_harmonisers_on_the_same_sopranos(tmp_path: Path) -> None:
    from rlmusic.config import validate_config
    from rlmusic.tasks import compare, listen

    a, b = tiny(tmp_path), tiny(tmp_path, seed=1)
    cfg = compose_task(
        "compare",
        [
            *data_overrides(tmp_path),
            f"+models.supervised={a}",
            f"+models.tuned={b}",
            "reward=chorale",
            "~reward.extra.realism",
            "n=6",
            "length=16",
            "k=1",
            "audio=false",
            "critic.enabled=false",
            f"out={tmp_path / 'report'}",
        ],
    )
    result = compare.run(validate_config("compare", cfg))
    tokens = np.load(tmp_path / "report" / "tokens.npz")
    assert (tokens["supervised"][:, ::4] == tokens["tuned"][:, ::4]).all()  # the same melodies
    assert not (tokens["supervised"] == tokens["tuned"]).all()  # harmonised two ways
    assert np.isfinite(result.metrics["tuned/KL(model || prior) per token"])
    lcfg = compose_task(
        "listen",
        [
            *data_overrides(tmp_path),
            f"+models.a={a}",
            f"+models.b={b}",
            "pairs=3",
            "length=16",
            "synth=sine",
            "sample_rate=8000",
            f"out={tmp_path / 'ab'}",
        ],
    )
    assert listen.run(lcfg).exists()
