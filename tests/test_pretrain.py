"""`rlmusic pretrain`: windows, schedule, a tiny run end to end, exact resume, DDP (gloo), and
fine-tuning from a checkpoint (``init=``)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from rlmusic.config import ConfigError
from rlmusic.data.corpus import Corpus
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models import CheckpointError, load_checkpoint, load_generator
from rlmusic.pretraining.optim import lr_factor
from rlmusic.pretraining.windows import (
    IGNORE,
    epoch_windows,
    make_batch,
    ngram_baselines,
    transpose_windows,
    valid_windows,
    with_bos_np,
)
from rlmusic.tasks import pretrain
from tests.test_models import one_thread  # noqa: F401  (autouse fixture)

REPO = Path(__file__).resolve().parents[1]


def synthetic_corpus(n: int = 48, seed: int = 0) -> Corpus:
    """Melodies in C: stepwise walks over the scale with a held step after each note."""
    encoding = MelodyEncoding()
    rng = np.random.default_rng(seed)
    scale = [encoding.pitch_to_token(p) for p in (60, 62, 64, 65, 67, 69, 71, 72)]
    tunes = []
    for _ in range(n):
        position, tune = int(rng.integers(0, 8)), []
        for _ in range(int(rng.integers(12, 40))):
            position = int(np.clip(position + rng.choice([-1, 1]), 0, 7))
            tune += [scale[position], 1]
        tunes.append(np.array(tune, dtype=np.uint8))
    return Corpus.from_tunes(tunes, encoding, seed=seed, valid_fraction=0.15, test_fraction=0.0)


TINY = {
    "lstm": ["model=lstm", "model.embed_dim=16", "model.hidden_size=32"],
    "transformer": [
        "model=transformer",
        "model.d_model=16",
        "model.n_heads=2",
        "model.n_layers=2",
        "model.d_ff=32",
        "model.max_relative_position=16",
    ],
}


def tiny_cfg(out_dir: Path, model: str = "lstm", *overrides: str) -> DictConfig:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(
            "pretrain",
            overrides=[
                *TINY[model],
                f"out_dir={out_dir}",
                "progress=false",
                "train.epochs=2",
                "train.batch_size=8",
                "train.window=24",
                "train.warmup_steps=3",
                "train.lr=2e-2",
                *overrides,
            ],
        )


def state_dict(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)[0].state_dict()


# ---- windows and schedule ---------------------------------------------------------------------
def test_epoch_windows_are_seeded_and_include_every_opening() -> None:
    lengths = [10, 50, 130, 7]
    a = epoch_windows(lengths, 24, seed=0, epoch=3)
    np.testing.assert_array_equal(a, epoch_windows(lengths, 24, seed=0, epoch=3))
    assert not np.array_equal(a, epoch_windows(lengths, 24, seed=0, epoch=4))
    openings = {int(i) for i, o in a if o == 0}
    assert openings == {0, 1, 2, 3}
    assert len(a) == 4 + 50 // 24 + 130 // 24
    for i, o in a:  # every window keeps its L+1 tokens inside [BOS] + tune
        assert o == 0 or 1 <= o <= lengths[i] - 24


def test_batches_shift_by_one_and_pad_with_ignore() -> None:
    seqs = with_bos_np([np.arange(2, 12), np.arange(2, 5)], bos_token=38)
    inputs, targets = make_batch(seqs, np.array([[0, 0], [0, 3], [1, 0]]), window=5)
    assert inputs[0].tolist() == [38, 2, 3, 4, 5] and targets[0].tolist() == [2, 3, 4, 5, 6]
    assert inputs[1].tolist() == [4, 5, 6, 7, 8] and targets[1].tolist() == [5, 6, 7, 8, 9]
    assert targets[2].tolist() == [2, 3, 4, IGNORE, IGNORE]


def test_valid_windows_cover_every_token_once() -> None:
    lengths = [5, 24, 25, 49]
    seqs = with_bos_np([np.full(n, 7) for n in lengths], bos_token=38)
    _, targets = make_batch(seqs, valid_windows(lengths, 24), 24)
    assert (targets != IGNORE).sum() == sum(lengths)


def test_lr_warms_up_then_decays_to_the_floor() -> None:
    factors = [lr_factor(s, warmup=10, total=100, min_ratio=0.1) for s in range(120)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[100] == factors[119] == pytest.approx(0.1)


def test_ngram_baselines_on_a_deterministic_corpus() -> None:
    tunes = [np.array([2, 3] * 10)] * 4
    result = ngram_baselines(tunes, tunes, vocab_size=38, alpha=1e-6)
    assert result["unigram_nll"] == pytest.approx(math.log(2), abs=1e-4)
    assert result["bigram_nll"] == pytest.approx(0.0, abs=1e-4)


# ---- the task ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", list(TINY))
def test_tiny_run_writes_checkpoints_logs_and_learns(tmp_path: Path, model: str) -> None:
    corpus = synthetic_corpus()
    result = pretrain.run(tiny_cfg(tmp_path, model, "train.epochs=3"), corpus=corpus)
    for name in ("last.pt", "best.pt", "model.safetensors", "metrics.csv", "config.yaml"):
        assert (tmp_path / name).is_file(), name
    assert any((tmp_path / "tb").iterdir())
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step") and len(rows) == 4
    baselines = ngram_baselines(corpus.tunes("train"), corpus.tunes("valid"), 38)
    assert result["best_valid_nll"] < baselines["unigram_nll"]
    assert 0 < result["valid_acc"] <= 1 and result["valid_ppl"] == pytest.approx(
        math.exp(result["valid_nll"])
    )
    generator, encoding = load_generator(str(tmp_path / "model.safetensors"))
    assert generator.arch == model and encoding == corpus.encoding
    # the directory and the training checkpoint resolve to a model too
    load_generator(str(tmp_path))
    assert load_generator(str(tmp_path / "last.pt"))[0].arch == model
    # and a finished run, re-run, is a no-op
    again = pretrain.run(tiny_cfg(tmp_path, model, "train.epochs=3"), corpus=corpus)
    assert again["step"] == result["step"]


class Crash(Exception):
    pass


@pytest.mark.parametrize(
    "crash_at,extra",
    [(1, []), (2, ["train.checkpoint_every_steps=2"])],
    ids=["epoch-end", "mid-epoch"],
)
def test_resume_after_a_crash_ends_with_identical_weights(
    tmp_path: Path, crash_at: int, extra: list[str]
) -> None:
    """Crash right after the ``crash_at``-th checkpoint, then run the same command again."""
    corpus = synthetic_corpus()
    args = ["train.epochs=3", "model.dropout=0.3", *extra]  # dropout: the RNG state matters
    pretrain.run(tiny_cfg(tmp_path / "straight", "lstm", *args), corpus=corpus)

    checkpoints: list[int] = []

    def crash(step: int) -> None:
        checkpoints.append(step)
        if len(checkpoints) == crash_at:
            raise Crash

    crashed = tmp_path / "crashed"
    with pytest.raises(Crash):
        pretrain.run(tiny_cfg(crashed, "lstm", *args), corpus=corpus, on_checkpoint=crash)
    assert load_checkpoint(crashed / "last.pt")[2]["step"] == checkpoints[-1]
    if extra:
        assert checkpoints == [2, 4]  # mid-epoch: the epoch has more steps than that
    pretrain.run(tiny_cfg(crashed, "lstm", *args), corpus=corpus)  # the same command again

    straight, resumed = (
        state_dict(tmp_path / "straight" / "last.pt"),
        state_dict(crashed / "last.pt"),
    )
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    assert (crashed / "metrics.csv").read_text().count("\n") == 4  # no duplicated epoch rows


def test_resume_refuses_a_different_model(tmp_path: Path) -> None:
    corpus = synthetic_corpus()
    pretrain.run(tiny_cfg(tmp_path, "lstm", "train.max_steps=2"), corpus=corpus)
    with pytest.raises(CheckpointError, match=r"last\.pt: cannot resume.*config"):
        pretrain.run(tiny_cfg(tmp_path, "lstm", "model.hidden_size=12"), corpus=corpus)
    # resume=never starts over in the same directory
    pretrain.run(tiny_cfg(tmp_path, "lstm", "model.hidden_size=12", "resume=never"), corpus=corpus)


def test_unknown_train_field_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train has no field"):
        pretrain.run(tiny_cfg(tmp_path, "lstm", "+train.lrr=1"), corpus=synthetic_corpus())


# ---- multi-process ----------------------------------------------------------------------------
DDP_SCRIPT = """
import sys
import torch
from hydra import compose, initialize_config_module
from rlmusic.tasks import pretrain
from tests.test_pretrain import synthetic_corpus, TINY

torch.set_num_threads(1)
with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
    cfg = compose("pretrain", overrides=[*TINY["lstm"], "out_dir=" + sys.argv[1],
        "progress=false", "train.epochs=2", "train.batch_size=8", "train.window=24",
        "train.warmup_steps=3", "train.lr=1e-2", "model.dropout=0.0", "device=cpu"])
pretrain.run(cfg, corpus=synthetic_corpus())
"""
# Under torchrun, also: the process group is freed and its threads joined when run() returns.
# gloo threads that live on into interpreter finalization made this test abort now and then
# ("terminate called without an active exception", see rlmusic.pretraining.distributed); this
# check fails every time that state comes back, not one run in twenty.
NO_GLOO_THREADS_LEFT = """
import os
if os.path.isdir("/proc/self/task"):
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    gloo = sorted(name for name in names if "gloo" in name)
    assert not gloo, f"gloo threads outlive pretrain.run: {gloo}"
"""


def test_ddp_two_gloo_processes_train_like_one(tmp_path: Path) -> None:
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT) + textwrap.dedent(NO_GLOO_THREADS_LEFT))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    result = subprocess.run(
        [*torchrun, "--nproc_per_node=2", str(script), str(tmp_path / "ddp")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    single_cfg = tiny_cfg(
        tmp_path / "single", "lstm", "model.dropout=0.0", "train.lr=1e-2", "device=cpu"
    )
    pretrain.run(single_cfg, corpus=synthetic_corpus())
    ddp, one = state_dict(tmp_path / "ddp" / "last.pt"), state_dict(tmp_path / "single" / "last.pt")
    for key in one:  # the same global batches and loss: only summation order differs
        torch.testing.assert_close(ddp[key], one[key], rtol=1e-4, atol=1e-5)


# ---- the real command, killed ------------------------------------------------------------------
KILL_SCRIPT = DDP_SCRIPT.replace(
    '"train.epochs=2"', '"train.epochs=4", "train.checkpoint_every_steps=1"'
).replace('"model.dropout=0.0"', '"model.dropout=0.2"')


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_to_identical_weights(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    straight = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "straight")], env=env, cwd=REPO, timeout=300
    )
    assert straight.returncode == 0
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(script), str(out)], env=env, cwd=REPO)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "last.pt").exists() and load_checkpoint(out / "last.pt")[2].get("step", 0) >= 5:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(out / "last.pt")[2]["step"]
    assert 5 <= killed_at < load_checkpoint(tmp_path / "straight" / "last.pt")[2]["step"]
    resumed = subprocess.run(
        [sys.executable, str(script), str(out)], env=env, cwd=REPO, timeout=300
    )
    assert resumed.returncode == 0
    a, b = state_dict(tmp_path / "straight" / "last.pt"), state_dict(out / "last.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ---- configs and the command -------------------------------------------------------------------
@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_every_model_option_composes_and_builds(model: str) -> None:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("pretrain", overrides=[f"model={model}"])
    generator = pretrain.model_from_cfg(cfg.model, MelodyEncoding())
    assert generator.arch == cfg.model.arch == model and generator.vocab_size == 38
    assert pretrain.train_config(cfg).window == cfg.train.window


@pytest.mark.slow
def test_the_command_through_hydra_on_a_midi_folder(tmp_path: Path) -> None:
    from tests.conftest import C_MAJOR_TUNE, write_midi

    for i in range(12):  # the same tune at different speeds: enough windows for two batches
        write_midi(
            tmp_path / "midi" / f"{i}.mid",
            [(p, s * (1 + i % 3), e * (1 + i % 3)) for p, s, e in C_MAJOR_TUNE],
        )
    args = [
        *TINY["lstm"],
        "data=midi_dir",
        f"data.path={tmp_path / 'midi'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.workers=1",
        "train.epochs=1",
        "train.batch_size=4",
        "train.window=16",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    command = [sys.executable, "-m", "rlmusic.cli", "pretrain", *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert "resumed" not in result.stdout + result.stderr
    again = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert again.returncode == 0 and "resumed from" in again.stdout + again.stderr


# ---- init=: supervised fine-tuning from a checkpoint -------------------------------------------
def init_cfg(out_dir: Path, *overrides: str) -> DictConfig:
    """A tiny budget on the shipped model's own sizes (no model overrides)."""
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(
            "pretrain",
            overrides=[
                f"out_dir={out_dir}",
                "progress=false",
                "train.epochs=1",
                "train.batch_size=8",
                "train.window=24",
                *overrides,
            ],
        )


def logits_of(model: torch.nn.Module, corpus: Corpus) -> torch.Tensor:
    tokens = torch.from_numpy(
        np.stack([t[:24] for t in corpus.tunes("valid")[:4]]).astype(np.int64)
    )
    with torch.no_grad():
        return model.eval()(tokens)


def test_init_starts_from_the_checkpoint_and_records_it(tmp_path: Path) -> None:
    corpus = synthetic_corpus()
    # lr 0: AdamW leaves every weight as it is, so the run's model is the checkpoint's
    cfg = init_cfg(tmp_path, "init=pretrained:note_lstm", "train.init_lr=0")
    result = pretrain.run(cfg, corpus=corpus)
    shipped, _ = load_generator("pretrained:note_lstm")
    saved, _, info = load_checkpoint(tmp_path / "model.safetensors")
    assert torch.equal(logits_of(saved, corpus), logits_of(shipped, corpus))
    assert info["init"] == "pretrained:note_lstm" and result["step"] > 0
    assert load_checkpoint(tmp_path / "last.pt")[2]["init"] == "pretrained:note_lstm"
    # config.yaml records the model the run trained: the checkpoint's
    assert OmegaConf.load(tmp_path / "config.yaml").model.hidden_size == 256


def test_init_model_defaults_to_the_checkpoints_architecture_and_sizes() -> None:
    corpus = synthetic_corpus()
    cfg = init_cfg(Path("unused"), "init=pretrained:music_transformer")  # model: lstm (default)
    model, node = pretrain.model_from_init(cfg.init, cfg.model, MelodyEncoding())
    shipped, _ = load_generator("pretrained:music_transformer")
    assert node["arch"] == "transformer" and node["name"] == "music_transformer"
    assert node["max_relative_position"] == 64  # the checkpoint's, not conf/model's 128
    assert torch.equal(logits_of(model, corpus), logits_of(shipped, corpus))
    # dropout holds no weight: a fine-tuning run may change it
    cfg = init_cfg(Path("unused"), "init=pretrained:note_lstm", "model.dropout=0.3")
    model, node = pretrain.model_from_init(cfg.init, cfg.model, MelodyEncoding())
    assert model.config.dropout == node["dropout"] == 0.3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.hidden_size=512"],
            "holds model=lstm with hidden_size=256, the config asks for model.hidden_size=512",
        ),
        (["model=transformer"], "holds model=lstm, the config asks for model=transformer"),
        (
            ["encoding.min_pitch=36"],
            "was trained on another encoding: min_pitch=48 \\(the config: 36\\)",
        ),
    ],
    ids=["size", "architecture", "encoding"],
)
def test_init_mismatch_is_one_line_naming_both_values(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    cfg = init_cfg(tmp_path, "init=pretrained:note_lstm", *overrides)
    with pytest.raises(ConfigError, match=f"^init=pretrained:note_lstm {message}") as error:
        pretrain.run(cfg, corpus=synthetic_corpus())
    assert "\n" not in str(error.value)
    assert not (tmp_path / "last.pt").exists()


def test_init_takes_the_fine_tuning_warmup_then_the_decay(tmp_path: Path) -> None:
    from rlmusic.pretraining.distributed import setup
    from rlmusic.pretraining.loop import Pretrainer

    corpus = synthetic_corpus()
    scratch = pretrain.train_config(init_cfg(tmp_path))
    assert (scratch.lr, scratch.warmup_steps) == (2e-3, 200)  # conf/pretrain.yaml's train.*
    cfg = init_cfg(
        tmp_path, "init=pretrained:note_lstm", "train.init_warmup_steps=4", "train.epochs=3"
    )
    train = pretrain.train_config(cfg)
    assert (train.lr, train.warmup_steps) == (cfg.train.init_lr, 4) == (1e-3, 4)
    model, _ = pretrain.model_from_init(cfg.init, cfg.model, MelodyEncoding())
    trainer = Pretrainer(
        model,
        MelodyEncoding(),
        corpus.tunes("train"),
        corpus.tunes("valid"),
        train,
        tmp_path,
        0,
        setup("cpu"),
        progress=False,
        resume=False,
    )
    lrs = [train.lr * trainer.scheduler.lr_lambdas[0](s) for s in range(trainer.total_steps + 1)]
    trainer.close()
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])  # linear warmup from 0
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert lrs[-1] == pytest.approx(1e-3 * train.min_lr_ratio)  # then the cosine to its floor


def test_a_run_directory_resumes_only_from_the_same_init(tmp_path: Path) -> None:
    corpus = synthetic_corpus()
    pretrain.run(init_cfg(tmp_path, "train.max_steps=1"), corpus=corpus)  # from scratch
    with pytest.raises(
        CheckpointError,
        match=r"started from init=None, this command from init=pretrained:note_lstm",
    ):
        pretrain.run(init_cfg(tmp_path, "init=pretrained:note_lstm"), corpus=corpus)


def test_a_model_group_named_on_the_command_line_must_match_init(tmp_path: Path) -> None:
    # model=lstm is the default group: only the command line tells that the user chose it
    command = [
        sys.executable,
        "-m",
        "rlmusic.cli",
        "pretrain",
        "init=pretrained:music_transformer",
        "model=lstm",
        f"hydra.run.dir={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert (
        "init=pretrained:music_transformer holds model=transformer, the config asks for model=lstm"
        in result.stderr
    )


def test_transposition_keeps_each_chorale_token_in_its_voice_block() -> None:
    from rlmusic.data.chorale_encoding import ChoraleEncoding

    enc = ChoraleEncoding()
    bos, block = enc.vocab_size, enc.voice_size
    top, low = enc.pitch_to_token(84, 0), enc.pitch_to_token(40, 1)  # local 50 (the top) and 6
    tenor_hold, bass_off = 2 * block + enc.NO_EVENT, 3 * block + enc.NOTE_OFF
    window = [top, low, tenor_hold, bass_off]
    inputs, targets = np.array([[bos, *window]]), np.array([[*window, -100]])
    # the soprano's C6 is its block's top pitch: only shifts down to -4 (the alto's E2 -> C2)
    assert transpose_windows(inputs, targets, np.array([0.99]), 5, 2, bos, block).tolist() == [0]
    assert inputs.tolist() == [[bos, *window]]
    assert transpose_windows(inputs, targets, np.array([0.0]), 5, 2, bos, block).tolist() == [-4]
    moved = [top - 4, low - 4, tenor_hold, bass_off]  # holds, rests and BOS stay
    assert inputs.tolist() == [[bos, *moved]] and targets.tolist() == [[*moved, -100]]
    assert (np.array(moved) // block).tolist() == [0, 1, 2, 3]  # each still its voice's token
    # read as one block, the soprano's top pitch could move into the alto's block
    one_block = np.array([[bos, *window]]), np.array([[*window, -100]])
    assert transpose_windows(*one_block, np.array([0.99]), 5, 2, bos).tolist() == [5]
    assert one_block[0][0, 1] // block == 1
