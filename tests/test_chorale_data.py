"""The chorale corpus: the reader on real chorales, refusals, the split, the cache, bar windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.chorales import chorale_paths, read_chorale, to_steps
from rlmusic.data.corpus import CorpusError
from rlmusic.data.encoding import MelodyEncoding, Note
from rlmusic.data.prepare import prepare_corpus
from rlmusic.data.readers import RejectedInput
from rlmusic.data.split import HeldOutSplit
from rlmusic.data.summary import format_summary, summarize
from rlmusic.pretraining.windows import (
    WindowError,
    check_window,
    epoch_windows,
    steps_per_epoch,
    transpose_windows,
    window_alignment,
)

ENC = ChoraleEncoding()


def token(pitch: int, voice: int) -> int:
    """A strike of ``pitch`` by ``voice`` (0 soprano .. 3 bass): each voice has its own block."""
    return voice * ENC.voice_size + pitch - ENC.min_pitch + ENC.FIRST_PITCH_TOKEN


def step(local: int) -> list[int]:
    """One step of all four voices doing the same event (NOTE_OFF 0 or NO_EVENT 1)."""
    return [voice * ENC.voice_size + local for voice in range(4)]


# ---- the reader --------------------------------------------------------------------------------
def test_a_chorale_without_anacrusis_is_transposed_from_g_minor_to_a_minor() -> None:
    tune = read_chorale("bach/bwv10.7", ENC)
    # the score opens S D5, A G4, T Bb3, B G3 (half notes); g minor -> a minor is +2
    assert (tune.key, tune.transposition, tune.anacrusis_steps) == ("G minor", 2, 0)
    assert [v[0] for v in tune.voices] == [
        Note(76, 0, 8),
        Note(69, 0, 8),
        Note(60, 0, 8),
        Note(57, 0, 8),
    ]
    opening = [token(76, 0), token(69, 1), token(60, 2), token(57, 3)]
    assert tune.tokens[:8].tolist() == opening + step(ENC.NO_EVENT)
    assert tune.tokens.dtype == np.uint8 and len(tune.tokens) == 4 * tune.steps
    assert ENC.decode_voices(tune.tokens) == tune.voices
    assert tune.name == "bwv10.7"


def test_an_anacrusis_is_dropped_so_a_chorale_starts_on_a_full_bar() -> None:
    tune = read_chorale("bach/bwv101.7", ENC)
    # a one-beat pickup (S A4, A F4, T D4, B D3 in d minor; -5 to a minor) is dropped: step 0
    # is the first full bar's downbeat, every voice striking (no silent opening to learn)
    assert (tune.key, tune.transposition, tune.anacrusis_steps) == ("D minor", -5, 12)
    assert ENC.is_onset(tune.tokens[:4]).all()
    assert ENC.decode_voices(tune.tokens) == tune.voices
    # measure 1 of the score, a quarter-note E major chord (V of a minor): S E4, A B3, T E3, B G#2
    assert [v[0] for v in tune.voices] == [
        Note(64, 0, 4),
        Note(59, 0, 4),
        Note(52, 0, 4),
        Note(44, 0, 4),
    ]
    assert tune.steps == 204 - 16  # the pickup bar goes; the final bar keeps its three beats


def test_32nd_notes_merge_into_the_16th_they_start_in() -> None:
    tune = read_chorale("bach/bwv36.4-2", ENC)
    assert tune.merged_notes == 1
    for line in tune.voices:  # still monophonic, on the grid
        assert all(a.end <= b.start for a, b in zip(line, line[1:]))
    q = __import__("fractions").Fraction
    line, merged = to_steps([(61, q(23, 4), q(47, 8)), (62, q(47, 8), q(6))], 4, 0)
    assert (line, merged) == ([Note(61, 23, 24)], 1)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("bach/bwv269", "not 4/4"),
        ("bach/bwv8.6", "not four parts"),  # with a continuo part
        ("bach/bwv48.3", "irregular bars"),  # a one-beat bar shifts the bar lines
    ],
)
def test_chorales_outside_the_corpus_are_refused_with_their_reason(name: str, reason: str) -> None:
    with pytest.raises(RejectedInput) as caught:
        read_chorale(name, ENC)
    assert caught.value.reason == reason


def test_a_chorale_that_fits_no_octave_of_the_range_is_refused() -> None:
    narrow = ChoraleEncoding(min_pitch=48, max_pitch=72)
    with pytest.raises(RejectedInput, match=r"out of range: pitches 43\.\.77 in G minor"):
        read_chorale("bach/bwv10.7", narrow)


def test_chorale_paths_are_deduplicated_sorted_files() -> None:
    paths = chorale_paths()
    assert paths == sorted(set(paths))
    assert len(paths) >= 300
    assert all(Path(p).is_file() for p in paths)
    names = [Path(p).name for p in paths]
    # the iterator's names that music21 resolves to several files resolve to one each
    assert "bwv244.3.mxl" in names and names.count("bwv244.3.mxl") == 1


# ---- the corpus --------------------------------------------------------------------------------
def chorale_cfg(tmp_path: Path, **overrides: object) -> dict:
    return {
        "source": "chorales",
        "cache_dir": str(tmp_path),
        "split_seed": 0,
        "valid_fraction": 0.1,
        "test_fraction": 0.1,
        "workers": 1,
        "timeout_s": 20,
        "min_notes": 32,
        "limit": 8,
        **overrides,
    }


def test_the_corpus_round_trips_through_its_cache(tmp_path: Path) -> None:
    first = prepare_corpus(chorale_cfg(tmp_path), ENC, progress=False)
    assert len(list(tmp_path.glob("chorales-*.npz"))) == 1
    again = prepare_corpus(chorale_cfg(tmp_path), ENC, progress=False)  # from the cache
    assert again.encoding == ENC
    assert first.metadata["tune_id"].tolist() == again.metadata["tune_id"].tolist()
    for a, b in zip(first.tokens, again.tokens, strict=True):
        np.testing.assert_array_equal(a, b)
    kept = first.metadata["tune_id"].tolist()
    assert kept[0] == "bwv10.7"
    np.testing.assert_array_equal(first.tokens[0], read_chorale("bach/bwv10.7", ENC).tokens)
    summary = summarize(first)
    assert summary.voices == ("soprano", "alto", "tenor", "bass")
    assert summary.steps == sum(len(t) for t in first.tokens) // 4
    assert summary.bars == summary.steps / 16
    text = format_summary(summary)
    assert f"steps: {summary.steps}" in text and "soprano" in text and "bass" in text


def test_the_split_is_by_chorale_name_and_ignores_the_run_seed(tmp_path: Path) -> None:
    corpus = prepare_corpus(chorale_cfg(tmp_path), ENC, progress=False)
    names = corpus.metadata["tune_id"].tolist()
    expected = HeldOutSplit(seed=0, valid_fraction=0.1, test_fraction=0.1).assign(names)
    np.testing.assert_array_equal(corpus.split, expected)

    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="rlmusic.conf", version_base="1.3"):
        for seed in (0, 7):
            cfg = compose("pretrain", overrides=["data=chorales", f"seed={seed}"])
            assert cfg.data.split_seed == 0 and cfg.encoding.kind == "chorale"
            assert HeldOutSplit.from_cfg(cfg.data) == HeldOutSplit(0, 0.1, 0.1)


def test_a_corpus_read_with_the_other_domains_encoding_is_a_one_line_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(CorpusError, match="data=chorales .* use encoding=chorale"):
        prepare_corpus(chorale_cfg(tmp_path), MelodyEncoding(), progress=False)
    with pytest.raises(CorpusError, match="data=essen .* use encoding=rl_tuner"):
        prepare_corpus(chorale_cfg(tmp_path, source="essen"), ENC, progress=False)
    assert not list(tmp_path.iterdir())  # refused before any parse


# ---- whole-bar windows ---------------------------------------------------------------------------
def old_epoch_windows(lengths: list[int], window: int, seed: int, epoch: int) -> np.ndarray:
    """The melody windows exactly as they were before alignment existed."""
    rng = np.random.default_rng([seed, epoch])
    rows = [(i, 0) for i in range(len(lengths))]
    for i, n in enumerate(lengths):
        if n > window:
            offsets = rng.integers(1, n - window + 1, size=n // window)
            rows += [(i, int(o)) for o in offsets]
    rows_np = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return rows_np[rng.permutation(len(rows_np))]


def test_melody_windows_are_unchanged() -> None:
    lengths = [5, 24, 25, 100, 333, 64]
    assert window_alignment(MelodyEncoding()) == 1
    for seed, epoch in ((0, 0), (3, 7)):
        np.testing.assert_array_equal(
            epoch_windows(lengths, 24, seed, epoch), old_epoch_windows(lengths, 24, seed, epoch)
        )


def test_chorale_windows_start_on_bar_lines_and_depend_only_on_seed_and_epoch() -> None:
    align = window_alignment(ENC)
    assert align == 64
    lengths = [64 * 12, 64 * 5 + 8, 256, 300, 64 * 30]
    rows = epoch_windows(lengths, 256, seed=1, epoch=2, align=align)
    np.testing.assert_array_equal(rows, epoch_windows(lengths, 256, 1, 2, align))
    assert not np.array_equal(rows, epoch_windows(lengths, 256, 1, 3, align))
    assert sorted(rows[rows[:, 1] == 0][:, 0].tolist()) == list(range(len(lengths)))
    for tune, offset in rows.tolist():
        assert offset % 64 == 0
        assert offset + 256 <= lengths[tune]  # all L+1 tokens inside [BOS] + tune
    # a tune with no whole bar to spare (256, 300 tokens) gets its opening window only
    assert (rows[:, 0] == 2).sum() == 1 and (rows[:, 0] == 3).sum() == 1
    assert steps_per_epoch(lengths, 256, 1, align) == len(rows)


def test_a_window_must_hold_whole_steps() -> None:
    with pytest.raises(
        WindowError, match=r"train\.window=130 is not a multiple .* 4 tokens a step"
    ):
        check_window(130, ENC)
    check_window(128, ENC)
    check_window(130, MelodyEncoding())


def test_transposition_keeps_every_pitch_in_the_vocabulary() -> None:
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, ENC.vocab_size, size=(16, 64))
    inputs[:, 0] = ENC.vocab_size  # BOS stays
    targets = np.concatenate([inputs[:, 1:], np.full((16, 1), -100)], axis=1)
    before_x, before_y = inputs.copy(), targets.copy()
    shifts = transpose_windows(
        inputs, targets, rng.random(16), 5, 2, ENC.vocab_size, ENC.voice_size
    )
    assert np.abs(shifts).max() <= 5
    pitch = before_x % ENC.voice_size >= 2
    pitch &= before_x < ENC.vocab_size
    np.testing.assert_array_equal(inputs[~pitch], before_x[~pitch])
    np.testing.assert_array_equal(inputs - before_x, np.where(pitch, shifts[:, None], 0))
    # every pitch stays a pitch of its own voice
    np.testing.assert_array_equal(
        inputs[pitch] // ENC.voice_size, before_x[pitch] // ENC.voice_size
    )
    assert (inputs[pitch] % ENC.voice_size).min() >= 2
    np.testing.assert_array_equal(targets[:, :-1], inputs[:, 1:])
    assert (targets[:, -1] == -100).all() and (before_y[:, -1] == -100).all()
