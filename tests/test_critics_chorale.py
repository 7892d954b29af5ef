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
from rlmusic.data.encoding import FIRST_PITCH_TOKEN, MelodyEncoding, Note
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
    """Random strikes and holds, each voice's token in its own block of the vocabulary."""
    local = rng.integers(FIRST_PITCH_TOKEN, CHORALE.voice_size, 4 * steps)
    local[rng.random(len(local)) < 0.5] = CHORALE.NO_EVENT  # holds: few steps strike all four
    for bar in range(0, 4 * steps, 64):
        if rng.random() < 0.7:  # most bars open with a chord
            local[bar : bar + 4] = rng.integers(FIRST_PITCH_TOKEN, CHORALE.voice_size, 4)
    return local + CHORALE.voice_size * (np.arange(len(local)) % 4)


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
    blocks = CHORALE.voice_size
    misread = set()  # (tune, offset): a lower voice's hold read as a strike without the blocks
    for i, tune in enumerate(tunes):
        offsets = window_offsets(tune, 64, start, 16, 4, voice_size=blocks)
        found += len(offsets)
        assert (offsets % 4 == 0).all()
        if start != "any":  # every voice strikes at the window's first step
            assert all(CHORALE.is_onset(tune[o : o + 4]).all() for o in offsets)
            held = [
                o
                for o in range(0, len(tune) - 63, 4)
                if (CHORALE.local(tune[o : o + 4]) == CHORALE.NO_EVENT).any()
            ]
            assert not set(held) & set(offsets.tolist())
            unblocked = window_offsets(tune, 64, start, 16, 4)  # tokens read as melody tokens
            misread |= {(i, o) for o in set(held) & set(unblocked.tolist())}
        if start == "bar":
            assert (offsets % 64 == 0).all()
    assert found >= 10
    # without voice_size a lower voice's hold (52, 103, 154) looks like a strike
    assert bool(misread) == (start != "any")
    windows = cut_windows(tunes, 64, 40, np.random.default_rng(2), start, 16, 4, blocks)
    assert windows.shape[1] == 64
    for row in windows:  # each row is a tune's window at a step boundary
        assert any(
            (tune[o : o + 64] == row).all() for tune in tunes for o in range(0, len(tune) - 63, 4)
        )
    with pytest.raises(ValueError, match="not whole steps of 4"):
        cut_windows(tunes, 62, 4, rng, start, 16, 4, blocks)


def test_onset_windows_of_an_encoded_chorale_by_hand() -> None:
    voices = [
        [Note(72, 0, 4), Note(74, 4, 6), Note(76, 6, 8)],
        [Note(67, 0, 6), Note(69, 6, 8)],  # holds through step 4
        [Note(64, 0, 4), Note(65, 4, 6), Note(67, 6, 8)],
        [Note(48, 0, 2), Note(50, 2, 4), Note(53, 4, 6), Note(48, 6, 8)],
    ]  # all four strike at steps 0 and 6 only
    tune = CHORALE.encode_voices(voices, steps=8).astype(np.int64)
    blocks = CHORALE.voice_size
    assert window_offsets(tune, 8, "any", 16, 4, voice_size=blocks).tolist() == list(
        range(0, 25, 4)
    )
    assert window_offsets(tune, 8, "onset", 16, 4, voice_size=blocks).tolist() == [0, 24]
    assert window_offsets(tune, 8, "bar", 6, 4, voice_size=blocks).tolist() == [0, 24]
    assert window_offsets(tune, 8, "bar", 16, 4, voice_size=blocks).tolist() == [0]
    # read as melody tokens, the alto's hold at step 4 (token 52) would pass for a strike
    assert window_offsets(tune, 8, "onset", 16, 4).tolist() == [0, 16, 24]


def test_fit_length_pads_whole_silent_steps() -> None:
    blocks = CHORALE.voice_size
    piece = CHORALE.encode_voices([[], [], [], []], steps=0)
    assert fit_length(piece, 8, 4, blocks).tolist() == [0, 51, 102, 153, 1, 52, 103, 154]
    assert fit_length(piece, 8, 4, blocks).tolist() == CHORALE.silence(2).tolist()
    chord = [CHORALE.pitch_to_token(p, v) for v, p in enumerate((72, 67, 64, 48))]
    struck = np.array([*chord, CHORALE.NO_EVENT, 52])  # a step and a half: the half is dropped
    assert fit_length(struck, 8, 4, blocks).tolist() == [*chord, 0, 51, 102, 153]
    melody = np.array([14, 1, 16])  # a melody's rest is one token a step, as always
    assert fit_length(melody, 5, 1, MelodyEncoding().voice_size).tolist() == [14, 1, 16, 0, 1]


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
    with pytest.raises(ValueError, match="vocab_size 38 is not its chorale encoding's 204"):
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
    assert CHORALE.is_onset(real[:, :4]).all()
    assert (real // CHORALE.voice_size == np.arange(64) % 4).all()  # each token in its block
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
