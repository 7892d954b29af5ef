"""One held-out split that never moves with the run's seed (issue 33).

``compare``, ``evaluate`` and a fine-tune with a refreshed critic, each at ``seed=0`` and
``seed=1`` on a small MIDI corpus: the held-out tunes they use are exactly the test split of
``data.split_seed`` (computed here from the tune ids, independently of the code under test),
the same at both seeds, recorded in every result file, and never among the refreshed critic's
real tunes. ``models.real=heldout`` shows the same pieces at both seeds.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from rlmusic.config import ConfigError
from rlmusic.data.corpus import split_of
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.prepare import prepare_corpus
from rlmusic.data.split import ids_sha1
from rlmusic.evaluation import two_sample_critic as critic_test
from rlmusic.evaluation.two_sample_critic import Side
from rlmusic.tasks import compare, evaluate, finetune
from tests.conftest import make_tiny_checkpoint
from tests.critic_helpers import tiny_critic
from tests.test_compare_task import write_corpus

ENC = MelodyEncoding()
REFRESH = importlib.import_module("rlmusic.critics.refresh")  # (the package exports a `refresh`)
VALID, TEST = 0.1, 0.3
LENGTH = 16
SEEDS = (0, 1)


@dataclass
class Corpus:
    """The test corpus: its data overrides and, per tune id, its tokens and expected split."""

    overrides: list[str]
    ids_of: dict[bytes, str]  # whole tune's tokens -> tune id
    test_ids: set[str]  # split_seed 0's test split, from the ids alone
    train_ids: set[str]

    def ids(self, tunes: list[np.ndarray]) -> list[str]:
        return [self.ids_of[np.asarray(t, np.uint8).tobytes()] for t in tunes]

    def opening_of_test_tune(self, row: np.ndarray) -> bool:
        return any(
            self.ids_of[k] in self.test_ids and k[:LENGTH] == np.asarray(row, np.uint8).tobytes()
            for k in self.ids_of
        )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    tmp = tmp_path_factory.mktemp("heldout")
    folder = write_corpus(tmp / "corpus", tunes=24)
    data = {
        "source": "midi_dir",
        "path": str(folder),
        "cache_dir": str(tmp / "cache"),
        "valid_fraction": VALID,
        "test_fraction": TEST,
        "min_notes": 4,
        "workers": 1,
    }
    prepared = prepare_corpus(data, ENC, progress=False)
    ids = [str(i) for i in prepared.metadata["tune_id"]]
    split = {i: split_of(i, 0, VALID, TEST) for i in ids}  # the split's definition, by hand
    corpus = Corpus(
        ["data=midi_dir", *(f"data.{k}={v}" for k, v in data.items() if k != "source")],
        {t.tobytes(): i for t, i in zip(prepared.tokens, ids)},
        {i for i in ids if split[i] == "test"},
        {i for i in ids if split[i] == "train"},
    )
    # the corpus must be able to tell a moving split: seed 1 would hold out other tunes
    assert corpus.test_ids and {i for i in ids if split_of(i, 1, VALID, TEST) == "test"} != (
        corpus.test_ids
    )
    return corpus


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("model"))


def composed(task: str, overrides: list[str]):
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(task, overrides=overrides)


def spy(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list:
    """Wrap ``owner.name``: each call's return value is appended to the returned list."""
    calls: list = []
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(original(*args, **kwargs))
        return calls[-1]

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def assert_recorded(record: dict, corpus: Corpus) -> None:
    assert record["split_seed"] == 0
    assert (record["valid_fraction"], record["test_fraction"]) == (VALID, TEST)
    assert record["n_test"] == len(corpus.test_ids) and record["n_train"] == len(corpus.train_ids)
    assert record["test_ids_sha1"] == ids_sha1(corpus.test_ids)


# ---- compare ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def comparisons(corpus: Corpus, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """``rlmusic compare models.tiny=<ckpt> models.real=heldout seed=S`` for S in 0, 1: what
    each used (held-out tunes, reference and column openings, the critic's tune halves) and
    its metrics.json and tokens."""
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        for seed in SEEDS:
            held, division = spy(mp, compare, "held_out"), spy(mp, compare, "split_heldout")
            halves = spy(mp, critic_test, "split_real_tunes")
            mp.setattr(compare, "charts", lambda *_: ({}, {}))  # matplotlib: most of the time
            out = tmp_path_factory.mktemp(f"compare{seed}")
            cfg = composed(
                "compare",
                [
                    f"+models.tiny={checkpoint}",
                    "+models.real=heldout",
                    f"prior={checkpoint}",
                    f"reward.prior.checkpoint={checkpoint}",
                    f"seed={seed}",
                    "n=16",
                    f"length={LENGTH}",
                    "audio=false",
                    "k=1",
                    "bootstrap.resamples=20",
                    "critic.steps=2",
                    "critic.batch_size=8",
                    "critic.embed_dim=4",
                    "critic.channels=4",
                    "critic.dilations=[1]",
                    "critic.samples=20",
                    "critic.real_windows=100",
                    "overlap.distances=50",
                    "device=cpu",
                    f"out={out}",
                    *corpus.overrides,
                ],
            )
            compare.run(cfg)
            with np.load(out / "tokens.npz") as tokens:
                real = tokens["real"]
            runs[seed] = {
                "held": held[-1].tunes,
                "reference": division[-1][0],
                "column": division[-1][1],
                "halves": halves[-1],
                "real": real,
                "metrics": json.loads((out / "metrics.json").read_text()),
            }
            mp.undo()
    return runs


def test_compare_holds_out_the_split_seed_s_test_tunes_at_every_seed(
    comparisons: dict, corpus: Corpus
) -> None:
    for seed in SEEDS:
        used = corpus.ids(comparisons[seed]["held"])
        assert set(used) == corpus.test_ids, f"seed={seed}: held-out tunes not split_seed 0's"
        assert_recorded(comparisons[seed]["metrics"]["settings"]["data_split"], corpus)
        # the critic test's real sides: held-out tunes only, halved the same way at every seed
        reference, sanity = comparisons[seed]["halves"]
        assert set(corpus.ids(reference + sanity)) <= corpus.test_ids
    assert corpus.ids(comparisons[0]["held"]) == corpus.ids(comparisons[1]["held"])
    for half in (0, 1):
        assert corpus.ids(comparisons[0]["halves"][half]) == corpus.ids(
            comparisons[1]["halves"][half]
        )


def test_compare_heldout_column_and_reference_do_not_move_with_the_seed(
    comparisons: dict, corpus: Corpus
) -> None:
    zero, one = comparisons[0], comparisons[1]
    for seed in SEEDS:
        shown = comparisons[seed]["real"]
        assert len(shown) and all(corpus.opening_of_test_tune(r) for r in shown), f"seed={seed}"
    np.testing.assert_array_equal(zero["real"], one["real"])  # models.real=heldout
    np.testing.assert_array_equal(zero["column"], one["column"])
    np.testing.assert_array_equal(zero["reference"], one["reference"])
    assert zero["metrics"]["histograms"]["held-out"] == one["metrics"]["histograms"]["held-out"]


def test_the_critic_test_divides_tunes_by_the_split_seed_not_the_run_seed() -> None:
    tunes = [np.full(20, 14 + i) for i in range(12)]  # one pitch per tune: a row names its tune
    sides = [Side.of_tunes(tunes, 8, 10_000, 0.3, seed, split_seed=0) for seed in SEEDS]
    assert set(sides[0].held[:, 0]) == set(sides[1].held[:, 0])
    assert set(sides[0].fit[:, 0]) == set(sides[1].fit[:, 0])


# ---- evaluate -----------------------------------------------------------------------------------
def test_evaluate_holds_out_the_split_seed_s_test_tunes_at_every_seed(
    corpus: Corpus, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = spy(monkeypatch, evaluate, "held_out")
    for seed in SEEDS:
        cfg = composed(
            "evaluate",
            [
                f"checkpoint={checkpoint}",
                f"prior={checkpoint}",
                "n=8",
                f"length={LENGTH}",
                f"seed={seed}",
                *corpus.overrides,
            ],
        )
        evaluate.run(cfg, output_dir=tmp_path / str(seed))
        assert set(corpus.ids(held[-1].tunes)) == corpus.test_ids, f"seed={seed}"
        saved = json.loads((tmp_path / str(seed) / "evaluation.json").read_text())
        assert_recorded(saved[0]["data_split"], corpus)
    assert corpus.ids(held[0].tunes) == corpus.ids(held[1].tunes)


# ---- finetune with a refreshed critic -----------------------------------------------------------
def test_a_refreshed_critic_never_learns_a_held_out_tune(
    corpus: Corpus, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    critic = tiny_critic("discriminator", tmp_path / "d.safetensors")
    hooks = spy(monkeypatch, REFRESH, "refresh_hook")
    real = {}
    for seed in SEEDS:
        cfg = composed(
            "finetune",
            [
                f"checkpoint={checkpoint}",
                f"reward.prior.checkpoint={checkpoint}",
                "reward=rl_tuner",
                "reward.rules=[key]",
                f"+reward.extra.realism={{name: discriminator, checkpoint: {critic}}}",
                f"seed={seed}",
                f"length={LENGTH}",
                "algo.iterations=1",
                "algo.batch_size=8",
                "algo.minibatch_size=8",
                "algo.group_size=8",
                "algo.sample_every=0",
                "critic_refresh.every=1",
                "critic_refresh.steps=1",
                "critic_refresh.samples=8",
                "final_eval.enabled=true",
                "final_eval.n=8",
                "n_samples=1",
                "device=cpu",
                *corpus.overrides,
            ],
        )
        finetune.run(cfg, output_dir=tmp_path / f"run{seed}")
        real[seed] = corpus.ids(hooks[-1].real_tunes)
        assert not set(real[seed]) & corpus.test_ids, f"seed={seed}: the critic saw held-out tunes"
        assert set(real[seed]) == corpus.train_ids, f"seed={seed}"
        saved = json.loads((tmp_path / f"run{seed}" / "final_eval.json").read_text())
        assert_recorded(saved["data_split"], corpus)  # what the run was scored against
    assert real[0] == real[1]


def test_the_old_data_seed_key_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.seed was renamed data.split_seed"):
        prepare_corpus({"source": "midi_dir", "path": str(tmp_path), "seed": 1}, ENC)
    assert composed("compare", ["seed=1"]).data.split_seed == 0


def test_a_re_split_corpus_does_not_get_the_shipped_critic() -> None:
    """The shipped discriminator learnt split 0's train tunes: under another split some of
    them are held out, so ``checkpoint: auto`` must train one instead."""
    from rlmusic.critics.auto import shipped_fits

    assert shipped_fits({"source": "all", "split_seed": 0}) == (True, "")
    fits, why = shipped_fits({"source": "all", "split_seed": 3})
    assert not fits and "data.split_seed=3" in why
