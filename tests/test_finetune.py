"""`rlmusic finetune` (algo=batched) end to end on a tiny checkpoint: artefacts, resume, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import LSTMConfig, NoteLSTM, load_generator, save_checkpoint
from rlmusic.tasks import finetune
from tests.conftest import compose_finetune


def config(checkpoint: Path, iterations: int, **extra: object):
    overrides = [
        f"checkpoint={checkpoint}",
        f"reward.prior.checkpoint={checkpoint}",
        "algo.batch_size=32",
        "algo.minibatch_size=16",
        "algo.group_size=8",
        "algo.lr=1e-3",
        f"algo.iterations={iterations}",
        "length=8",
        "algo.checkpoint_every=2",
        "algo.sample_every=2",
        "n_samples=2",
        "device=cpu",
        *[f"{k}={v}" for k, v in extra.items()],
    ]
    return compose_finetune(overrides)


def test_finetune_writes_a_loadable_model_samples_and_logs(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    result = finetune.run(config(tiny_checkpoint, 4), output_dir=tmp_path / "run")
    model, encoding = load_generator(str(result.tuned))
    assert encoding == MelodyEncoding() and isinstance(model, NoteLSTM)
    assert len(list((tmp_path / "run" / "samples" / "iter_00002").glob("*.mid"))) == 2
    assert len(list((tmp_path / "run" / "samples" / "final").glob("*.mid"))) == 2
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    for column in (
        "reward/total",
        "reward/motif",
        "kl/prior_per_token",
        "policy/entropy",
        "charts/tokens_per_s",
    ):
        assert column in rows[0]
    assert "reward/prior" not in rows[0]  # the prior is the KL control, not a reward term here
    # the tuned model differs from the start model
    start, _ = load_generator(str(tiny_checkpoint))
    assert any(
        not torch.equal(a, b)
        for a, b in zip(start.state_dict().values(), model.state_dict().values())
    )


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path: Path, tiny_checkpoint: Path) -> None:
    straight = finetune.run(config(tiny_checkpoint, 4), output_dir=tmp_path / "straight")
    finetune.run(config(tiny_checkpoint, 2), output_dir=tmp_path / "resumed")
    resumed = finetune.run(config(tiny_checkpoint, 4), output_dir=tmp_path / "resumed")
    a, _ = load_generator(str(straight.tuned))
    b, _ = load_generator(str(resumed.tuned))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, msg=name)
    rows = list(csv.DictReader(open(tmp_path / "resumed" / "metrics.csv")))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]


def test_a_prior_of_another_vocabulary_fails_at_start(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    other = save_checkpoint(
        tmp_path / "wide.safetensors",
        NoteLSTM(LSTMConfig(vocab_size=62, embed_dim=8, hidden_size=16, num_layers=1)),
        MelodyEncoding(min_pitch=36, max_pitch=95),
    )
    with pytest.raises(ValueError, match="vocab_size 62 but .* has 38"):
        finetune.run(
            config(tiny_checkpoint, 1, **{"reward.prior.checkpoint": other}),
            output_dir=tmp_path / "x",
        )


def test_the_tuned_checkpoint_is_written_once_with_its_critics_and_reference(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose realism critic is trained now (``checkpoint: auto`` on data of one's own)
    writes ``tuned.safetensors`` once, recording the critic beside the KL reference."""
    from tests.conftest import write_midi
    from tests.test_critics_auto import tune

    for i in range(12):
        write_midi(tmp_path / "midi" / f"t{i}.mid", tune(i))
    writes: list[dict] = []
    import rlmusic.models
    import rlmusic.models.checkpoint

    save = rlmusic.models.checkpoint.save_checkpoint

    def counting(path, *args, **kwargs):
        if Path(path).name == "tuned.safetensors":
            writes.append(dict(kwargs.get("info") or (args[2] if len(args) > 2 else {})))
        return save(path, *args, **kwargs)

    monkeypatch.setattr(rlmusic.models.checkpoint, "save_checkpoint", counting)
    monkeypatch.setattr(rlmusic.models, "save_checkpoint", counting)
    cfg = config(
        tiny_checkpoint,
        2,
        **{
            "data": "midi_dir",
            "data.path": tmp_path / "midi",
            "data.cache_dir": tmp_path / "cache",
            "data.workers": 1,
            "data.min_notes": 4,
            "+reward.extra.realism.auto": "{steps: 5, windows: 128, samples: 32}",
        },
    )
    result = finetune.run(cfg, output_dir=tmp_path / "run")
    assert len(writes) == 1, "tuned.safetensors is written once"
    _, _, info = rlmusic.models.checkpoint.load_checkpoint(result.tuned)
    assert info == writes[0]
    assert info["reference"] == str(tiny_checkpoint) and info["tuned_from"] == str(tiny_checkpoint)
    critic = info["critics"]["realism"]
    assert critic["source"] == "trained" and critic["data"] == f"midi_dir:{tmp_path / 'midi'}"
    assert critic["against"] == [str(tiny_checkpoint)] and critic["metrics"]["steps"] == 5
    assert Path(critic["checkpoint"]).parent.parent == tmp_path / "cache" / "critics"
