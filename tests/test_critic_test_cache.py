"""The critic test's cache (rlmusic.evaluation.critic_test_cache) and its progress output
(rlmusic.evaluation.progress): a figure is trained once, read back unchanged, trained again
when anything that decides it changes, and rebuilt with one warning when its file is damaged."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation import two_sample_critic
from rlmusic.evaluation.critic_test_cache import CriticTestCache, digest
from rlmusic.evaluation.progress import critic_bar, stage
from rlmusic.evaluation.two_sample_critic import CriticTest, CriticTestConfig

ENC = MelodyEncoding()
TINY = CriticTestConfig(
    steps=20, embed_dim=8, channels=8, dilations=[1, 2], samples=40, real_windows=200
)


def tunes(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(14, 26, 30) for _ in range(24)]


def pieces(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(100 + seed).integers(14, 20, (40, 16))


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the critics trained (one entry per training)."""
    calls: list[int] = []
    train = two_sample_critic.train_discriminator

    def counted(*args, **kwargs):
        calls.append(1)
        return train(*args, **kwargs)

    monkeypatch.setattr(two_sample_critic, "train_discriminator", counted)
    return calls


def make(cache_dir: Path, cfg: CriticTestConfig = TINY, seed: int = 0, data: int = 0) -> CriticTest:
    cache = CriticTestCache.under(cache_dir) if cfg.cache else None
    return CriticTest(tunes(data), ENC.vocab_size, 16, cfg, seed, resamples=30, cache=cache)


def test_a_figure_is_trained_once_and_read_back_unchanged(
    tmp_path: Path, trainings: list[int]
) -> None:
    first = make(tmp_path).accuracy(pieces())
    sanity = make(tmp_path).sanity()
    assert len(trainings) == 2
    files = sorted((tmp_path / "critic_test").glob("*.json"))
    assert len(files) == 2
    # a fresh test (another comparison) of the same rows reads both, trains nothing
    again, figures = make(tmp_path).accuracy(pieces())
    assert make(tmp_path).sanity()[0] == sanity[0]
    assert len(trainings) == 2
    assert again == first[0]
    assert figures["balanced_accuracy"] == pytest.approx(first[1]["balanced_accuracy"])
    assert again.value == pytest.approx(figures["balanced_accuracy"])


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"pieces": 1}, id="other pieces"),
        pytest.param({"data": 1}, id="other held-out tunes"),
        pytest.param({"seed": 1}, id="other seed"),
        pytest.param({"cfg": replace(TINY, steps=21)}, id="other steps"),
        pytest.param({"cfg": replace(TINY, lr=1e-3)}, id="other lr"),
        pytest.param({"cfg": replace(TINY, holdout=0.4)}, id="other holdout"),
        pytest.param({"code": "edited"}, id="other code"),
    ],
)
def test_anything_that_decides_the_figure_is_a_miss(
    tmp_path: Path, trainings: list[int], monkeypatch: pytest.MonkeyPatch, change: dict
) -> None:
    make(tmp_path).accuracy(pieces())
    if "code" in change:
        monkeypatch.setattr(two_sample_critic, "code_version", lambda: change["code"])
    test = make(tmp_path, change.get("cfg", TINY), change.get("seed", 0), change.get("data", 0))
    test.accuracy(pieces(change.get("pieces", 0)))
    assert len(trainings) == 2
    assert len(list((tmp_path / "critic_test").glob("*.json"))) == 2


def test_the_cache_switch_is_not_part_of_the_key(tmp_path: Path, trainings: list[int]) -> None:
    with_cache, without = make(tmp_path), make(tmp_path, replace(TINY, cache=False))
    side = two_sample_critic.Side.of_pieces(pieces(), TINY.holdout, 2)
    assert with_cache.key(side) == without.key(side)
    without.accuracy(pieces())
    assert not (tmp_path / "critic_test").exists()  # cache=false neither reads nor writes


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text[: len(text) // 2], id="cut short"),
        pytest.param(lambda text: "", id="empty"),
        pytest.param(lambda text: json.dumps({"key": "x"}), id="another key"),
        pytest.param(lambda text: text.replace('"value"', '"valu"'), id="a field missing"),
    ],
)
def test_a_damaged_file_is_rebuilt_with_one_warning(
    tmp_path: Path, trainings: list[int], caplog: pytest.LogCaptureFixture, damage
) -> None:
    first, _ = make(tmp_path).accuracy(pieces())
    (path,) = (tmp_path / "critic_test").glob("*.json")
    path.write_text(damage(path.read_text()))
    with caplog.at_level(logging.WARNING, "rlmusic.evaluation.critic_test_cache"):
        rebuilt, _ = make(tmp_path).accuracy(pieces())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    assert (
        str(path) in warnings[0].getMessage() and "computing it again" in warnings[0].getMessage()
    )
    assert rebuilt == first and len(trainings) == 2
    assert make(tmp_path).accuracy(pieces())[0] == first and len(trainings) == 2  # rewritten


def test_digest_tells_shape_dtype_and_values() -> None:
    a = np.arange(6, dtype=np.int64)
    assert digest(a) == digest(a.copy())
    assert len({digest(a), digest(a.reshape(2, 3)), digest(a.astype(np.int32)), digest(a + 1)}) == 4


def test_the_critic_bar_counts_every_step_and_keeps_step_lines_off_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    test = CriticTest(tunes(), ENC.vocab_size, 16, TINY, resamples=30, progress=True)
    with caplog.at_level(logging.INFO):
        test.accuracy(pieces(), "tuned")
    err = capsys.readouterr().err
    assert "critic test: tuned" in err and f"{TINY.steps}/{TINY.steps}" in err
    messages = [r.getMessage() for r in caplog.records]
    assert not any(m.startswith("discriminator step") for m in messages)
    assert any(m.startswith("discriminator: loss") for m in messages)  # the summary stays
    logger = logging.getLogger("rlmusic.critics.discriminator")
    assert not logger.filters  # the bar leaves no filter behind


def test_the_bar_reads_the_step_of_each_line() -> None:
    logger = logging.getLogger("rlmusic.critics.discriminator")
    with critic_bar("x", 50) as bar:
        for step in (10, 20, 50):
            logger.info("discriminator step %d: loss %.4f", step, 0.5)
        assert bar is not None and bar.n == 50


def test_a_stage_says_when_it_starts_while_it_runs_and_when_it_ends(
    capsys: pytest.CaptureFixture,
) -> None:
    with stage("sampling", every=0.05):
        time.sleep(0.23)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "[compare] sampling ..."
    assert len([line for line in lines if line.endswith("s so far")]) >= 2
    assert lines[-1].startswith("[compare] sampling: done in 0.2")
    with stage("quiet", enabled=False):
        pass
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError), stage("failing", every=10):
        raise ValueError("bad input")
    assert capsys.readouterr().err == "[compare] failing ...\n"  # no "done" for a failure


def test_null_sizes_are_the_kinds_own() -> None:
    from rlmusic.data.chorale_encoding import ChoraleEncoding
    from rlmusic.evaluation.two_sample_critic_config import SIZES_BY_KIND

    default = CriticTestConfig()
    assert default.steps is None and default.channels is None
    melody = default.for_kind("melody")
    assert (melody.steps, melody.channels) == (300, 32) == tuple(SIZES_BY_KIND["melody"].values())
    for kind in ("chorale", "other"):
        assert (default.for_kind(kind).steps, default.for_kind(kind).channels) == (1000, 64)
    chosen = replace(default, steps=7, channels=5).for_kind("chorale")
    assert (chosen.steps, chosen.channels) == (7, 5)
    assert CriticTest(tunes(), ENC.vocab_size, 16).cfg == melody
    chorale = ChoraleEncoding()
    tunes4 = [np.tile(t[:, None], (1, 4)).ravel() % chorale.vocab_size for t in tunes()]
    assert CriticTest(tunes4, chorale.vocab_size, 64, encoding=chorale).cfg.steps == 1000
    for name in ("steps", "channels"):
        with pytest.raises(ValueError, match=f"critic.{name} must be >= 1"):
            CriticTestConfig(**{name: 0})
