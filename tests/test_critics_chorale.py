"""Critics on chorales: windows of whole steps (a chorale's start on its soprano token, an onset
is every voice striking), melody windows as they always were, the two-sample test and the
``auto`` realism critic trained on the chorale corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from rlmusic.critics import cut_windows, discriminator_term, load_cnn_critic
from rlmusic.critics.auto import resolve_auto_critics
from rlmusic.critics.data import fit_length, window_offsets
from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import FIRST_PITCH_TOKEN, MelodyEncoding
from rlmusic.evaluation.two_sample_critic import CriticTest
from rlmusic.evaluation.two_sample_critic_config import CriticTestConfig
from rlmusic.models import LSTMConfig, NoteLSTM, save_checkpoint
from rlmusic.rewards.base import RewardError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHORALE = ChoraleEncoding()


def old_window_offsets(tune: np.ndarray, length: int, start: str, steps_per_bar: int) -> np.ndarray:
    """The melody windows as they were before encodings had steps of several tokens."""
    offsets = np.arange(max(len(tune) - length + 1, 0))
    if start != "any":
        offsets = offsets[np.asarray(tune)[offsets] >= FIRST_PITCH_TOKEN]
    if start == "bar":
        offsets = offsets[offsets % steps_per_bar == 0]
    return offsets


def random_chorale(rng: np.random.Generator, steps: int) -> np.ndarray:
    tokens = rng.integers(FIRST_PITCH_TOKEN, CHORALE.vocab_size, 4 * steps)
    tokens[rng.random(len(tokens)) < 0.5] = CHORALE.NO_EVENT  # holds: few steps strike all four
    for bar in range(0, 4 * steps, 64):
        if rng.random() < 0.7:  # most bars open with a chord
            tokens[bar : bar + 4] = rng.integers(FIRST_PITCH_TOKEN, CHORALE.vocab_size, 4)
    return tokens


@pytest.mark.parametrize("start", ["any", "onset", "bar"])
def test_melody_windows_are_unchanged(start: str) -> None:
    rng = np.random.default_rng(0)
    tunes = [rng.integers(0, 38, int(rng.integers(20, 90))) for _ in range(12)]
    for tune in tunes:
        new = window_offsets(tune, 16, start, 16)
        assert new.tolist() == old_window_offsets(tune, 16, start, 16).tolist()
    a = cut_windows(tunes, 16, 50, np.random.default_rng(3), start)
    b = cut_windows(tunes, 16, 50, np.random.default_rng(3), start, 16, 1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("start", ["any", "onset", "bar"])
def test_chorale_windows_start_on_a_step_and_are_whole_steps(start: str) -> None:
    rng = np.random.default_rng(1)
    tunes = [random_chorale(rng, int(rng.integers(40, 120))) for _ in range(10)]
    found = 0
    for tune in tunes:
        offsets = window_offsets(tune, 64, start, 16, 4)
        found += len(offsets)
        assert (offsets % 4 == 0).all()
        if start != "any":  # every voice strikes at the window's first step
            assert all((tune[o : o + 4] >= FIRST_PITCH_TOKEN).all() for o in offsets)
            held = [o for o in range(0, len(tune) - 63, 4) if (tune[o : o + 4] == 1).any()]
            assert not set(held) & set(offsets.tolist())
        if start == "bar":
            assert (offsets % 64 == 0).all()
    assert found >= 10
    windows = cut_windows(tunes, 64, 40, np.random.default_rng(2), start, 16, 4)
    assert windows.shape[1] == 64
    for row in windows:  # each row is a tune's window at a step boundary
        assert any(
            (tune[o : o + 64] == row).all() for tune in tunes for o in range(0, len(tune) - 63, 4)
        )
    with pytest.raises(ValueError, match="not whole steps of 4"):
        cut_windows(tunes, 62, 4, rng, start, 16, 4)


def test_fit_length_pads_whole_silent_steps() -> None:
    piece = CHORALE.encode_voices([[], [], [], []], steps=0)
    assert fit_length(piece, 8, 4).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    struck = np.array([30, 25, 20, 14, 1, 1])  # a step and a half: the half is dropped
    assert fit_length(struck, 8, 4).tolist() == [30, 25, 20, 14, 0, 0, 0, 0]


def test_critic_test_cuts_chorale_windows_on_steps_and_checks_the_encoding() -> None:
    rng = np.random.default_rng(4)
    tunes = [random_chorale(rng, 48) for _ in range(12)]
    cfg = CriticTestConfig(steps=5, batch_size=8, samples=8, real_windows=60, window_start="any")
    test = CriticTest(tunes, CHORALE.vocab_size, 64, cfg, resamples=20, encoding=CHORALE)
    for row in np.concatenate([test.real.fit, test.real.held]):
        assert any((t[o : o + 64] == row).all() for t in tunes for o in range(0, len(t) - 63, 4))
    unaligned = CriticTest(tunes, CHORALE.vocab_size, 64, cfg, resamples=20)  # no encoding
    starts = {
        o % 4
        for row in unaligned.real.fit
        for t in tunes
        for o in range(len(t) - 63)
        if (t[o : o + 64] == row).all()
    }
    assert starts - {0}, "without the encoding windows start anywhere: the guard is needed"
    accuracy, _ = test.accuracy(rng.integers(0, CHORALE.vocab_size, (10, 64)))
    assert 0.0 <= accuracy.value <= 1.0
    with pytest.raises(ValueError, match="vocab_size 38 is not its chorale encoding's 51"):
        CriticTest(tunes, 38, 64, cfg, encoding=CHORALE)
    with pytest.raises(ValueError, match="62 tokens are not whole chorale steps"):
        CriticTest(tunes, CHORALE.vocab_size, 62, cfg, encoding=CHORALE)


# ---- the auto realism critic on the chorale corpus ---------------------------------------------
def chorale_data(tmp_path: Path) -> dict[str, Any]:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose(
            "train_critic",
            overrides=[
                "data=chorales",
                "data.limit=24",
                f"data.cache_dir={tmp_path / 'cache'}",
                "data.workers=1",
            ],
        )
    assert cfg.encoding.kind == "chorale"
    return OmegaConf.to_container(cfg.data, resolve=True)


def tiny_chorale_generator(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    config = LSTMConfig(vocab_size=CHORALE.vocab_size, embed_dim=8, hidden_size=16, num_layers=1)
    return save_checkpoint(tmp_path / "chorale_lstm.safetensors", NoteLSTM(config), CHORALE)


def test_the_auto_realism_critic_trains_on_chorale_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rlmusic.critics.training as training

    seen: dict[str, np.ndarray] = {}
    train = training.train_discriminator

    def spy(real, fake, *args, **kwargs):
        seen["real"], seen["fake"] = real, fake
        return train(real, fake, *args, **kwargs)

    monkeypatch.setattr(training, "train_discriminator", spy)
    start = tiny_chorale_generator(tmp_path)
    reward = {
        "extra": {
            "realism": {
                "name": "discriminator",
                "checkpoint": "auto",
                "weight": 1.0,
                "auto": {"steps": 20, "windows": 64, "samples": 32, "length": 16},
            }
        }
    }
    resolved, (choice,) = resolve_auto_critics(
        reward, chorale_data(tmp_path), str(start), train=True
    )
    assert choice.source == "trained" and choice.trained["real"]["data"] == "chorales"
    # real windows: 16 steps of 4 voices, starting where every voice strikes
    real, fake = seen["real"], seen["fake"]
    assert real.shape[1] == fake.shape[1] == 64
    assert (real[:, :4] >= FIRST_PITCH_TOKEN).all()
    path = resolved["extra"]["realism"]["checkpoint"]
    model, encoding, _ = load_cnn_critic(path, "discriminator")
    assert encoding == CHORALE and model.vocab_size == CHORALE.vocab_size
    term = discriminator_term(path, encoding=CHORALE)
    assert term(real[:3]).shape == (3, 64)
    with pytest.raises(RewardError, match="another token grid"):
        discriminator_term(path, encoding=MelodyEncoding(min_pitch=36, max_pitch=84))


def test_a_refresh_cuts_chorale_windows_on_steps(tmp_path: Path) -> None:
    from rlmusic.critics import CausalCNN, CriticConfig, save_cnn_critic
    from rlmusic.critics.refresh import refresh_hook
    from rlmusic.rewards.composite import CompositeReward, WeightedTerm

    torch.manual_seed(0)
    tiny = CriticConfig(vocab_size=CHORALE.vocab_size, embed_dim=8, channels=8, dilations=[1, 2])
    path = save_cnn_critic(tmp_path / "c.safetensors", CausalCNN(tiny), "discriminator", CHORALE,
                           {"accuracy": 0.5}, {})  # fmt: skip
    term = discriminator_term(str(path), encoding=CHORALE)
    seen: list[np.ndarray] = []
    refresh = term.refresh
    term.refresh = lambda real, fake, *a, **k: (seen.append(real), refresh(real, fake, *a, **k))[1]
    reward = CompositeReward([WeightedTerm("realism", term, 1.0)])
    tunes = [random_chorale(np.random.default_rng(i), 40) for i in range(6)]
    hook = refresh_hook(reward, tunes, 32, every=1, steps=2, samples=16, seed=0)
    policy = NoteLSTM(LSTMConfig(vocab_size=CHORALE.vocab_size, embed_dim=8, hidden_size=8,
                                 num_layers=1, dropout=0.0))  # fmt: skip
    hook(1, policy)
    (real,) = seen
    assert real.shape == (16, 32)
    for row in real:  # from a tune, at a step's first token
        assert any((t[o : o + 32] == row).all() for t in tunes for o in range(0, len(t) - 31, 4))
