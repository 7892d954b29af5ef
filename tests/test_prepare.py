"""Corpus preparation: mixed good/broken inputs, time bounds, caching, splits, real collections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlmusic.data import (
    Corpus,
    CorpusError,
    MelodyEncoding,
    MelodyLoadError,
    load_melodies,
    load_melody,
    prepare_corpus,
)
from rlmusic.data.prepare import process_item
from rlmusic.data.sources import WorkItem
from rlmusic.data.summary import format_summary, summarize
from tests.conftest import C_MAJOR_TUNE, D_MAJOR_TUNE, write_midi


def cfg(tmp_path: Path, **overrides: object) -> dict:
    base = {
        "source": "midi_dir",
        "cache_dir": str(tmp_path / "cache"),
        "split_seed": 0,
        "workers": 1,
        "timeout_s": 20,
        "min_notes": 4,
    }
    return {**base, **overrides}


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "midi"
    write_midi(folder / "good.mid", C_MAJOR_TUNE)
    write_midi(folder / "nested" / "deeper" / "good_in_d.midi", D_MAJOR_TUNE + [(69, 12, 16)])
    (folder / "empty.mid").write_bytes(b"")
    full = write_midi(tmp_path / "whole.mid", C_MAJOR_TUNE).read_bytes()
    (folder / "truncated.mid").write_bytes(full[: len(full) // 2])
    (folder / "readme.mid").write_text("this is text, not MIDI")
    write_midi(folder / "drums.mid", C_MAJOR_TUNE, drum=True)
    write_midi(folder / "silent.mid", [])
    write_midi(folder / "tiny.mid", C_MAJOR_TUNE[:2])
    (folder / "notes.txt").write_text("not music")
    (folder / ".hidden.mid").write_bytes(b"")  # dotfiles are not inputs
    return folder


def test_mixed_folder_keeps_good_tunes_and_names_each_broken_one(
    tmp_path: Path, mixed_folder: Path
) -> None:
    corpus = prepare_corpus(cfg(tmp_path, path=str(mixed_folder)), MelodyEncoding(), progress=False)
    assert sorted(corpus.metadata["tune_id"].tolist()) == [
        "good.mid",
        "nested/deeper/good_in_d.midi",
    ]
    keys = dict(zip(corpus.metadata["tune_id"].tolist(), corpus.metadata["key"].tolist()))
    assert keys == {"good.mid": "C major", "nested/deeper/good_in_d.midi": "D major"}
    reasons = {name: reason.split(":")[0] for name, reason in corpus.rejected}
    assert reasons == {
        "empty.mid": "empty file",
        "truncated.mid": "corrupt MIDI",
        "readme.mid": "not a MIDI file",
        "drums.mid": "drum tracks only",
        "silent.mid": "no notes",
        "tiny.mid": "too short",
        "notes.txt": "unsupported format",
    }
    text = format_summary(summarize(corpus), show_all_rejected=True)
    for name in reasons:
        assert name in text
    assert "tunes kept: 2" in text


def test_a_folder_with_nothing_usable_is_an_error_not_an_empty_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.mid").write_bytes(b"")
    (folder / "b.mid").write_text("nope")
    with pytest.raises(
        CorpusError,
        match=r"no usable tune in .*bad.*2 inputs rejected: empty file, not a MIDI file",
    ):
        prepare_corpus(cfg(tmp_path, path=str(folder)), MelodyEncoding(), progress=False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"path": "/no/such/folder"}, "is not a folder"),
        ({"path": None}, "needs data.path"),
        (
            {"source": "beatles"},
            "unknown data.source 'beatles'; known: essen, oneills, ryans, bach, all, midi_dir",
        ),
        ({"workers": 0}, "data.workers must be >= 1"),
    ],
)
def test_bad_configuration_is_named(
    tmp_path: Path, mixed_folder: Path, overrides: dict, message: str
) -> None:
    with pytest.raises(CorpusError, match=message):
        prepare_corpus(
            cfg(tmp_path, **{"path": str(mixed_folder), **overrides}),
            MelodyEncoding(),
            progress=False,
        )


def test_overfull_bar_is_rejected_as_absurd() -> None:
    item = WorkItem(
        "test", "overfull", "", abc_text="X:1\nT:overfull\nM:4/4\nL:1/8\nK:C\nC99999 |\n"
    )
    result = process_item(item, MelodyEncoding(), min_notes=1, timeout_s=20)
    assert (result.tokens, result.reason) == (None, "absurd duration")
    assert "199998 steps" in result.detail


def test_a_parse_that_hangs_is_cut_off_by_the_time_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    def hang(text: str, where: str = "") -> list:
        while True:  # some music21 versions spin like this on overfull bars
            time.sleep(0.01)

    monkeypatch.setattr("rlmusic.data.prepare.parse_abc", hang)
    item = WorkItem("test", "hangs", "", abc_text="X:1\nK:C\nC |\n")
    started = time.perf_counter()
    result = process_item(item, MelodyEncoding(), min_notes=1, timeout_s=0.5)
    assert (result.tokens, result.reason) == (None, "timeout")
    assert time.perf_counter() - started < 5


def test_the_time_bound_gives_an_enclosing_timer_its_time_back() -> None:
    import signal

    from rlmusic.data.prepare import time_bounded

    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        fired.append(signum)

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)  # someone else's bound, e.g. a test timeout
        with time_bounded(5.0):
            assert 4.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 5.0
        remaining = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 25.0 < remaining <= 30.0 and signal.getsignal(signal.SIGALRM) is handler
        assert fired == []
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_worker_processes_give_the_same_corpus(tmp_path: Path, mixed_folder: Path) -> None:
    for i in range(40):  # enough inputs to use the pool
        write_midi(
            mixed_folder / "many" / f"t{i:02d}.mid",
            [(p + i % 7, s, e) for p, s, e in C_MAJOR_TUNE] + [(60 + i % 12, 12, 13)],
        )
    serial = prepare_corpus(
        cfg(tmp_path, path=str(mixed_folder), cache_dir=str(tmp_path / "c1")),
        MelodyEncoding(),
        progress=False,
    )
    parallel = prepare_corpus(
        cfg(tmp_path, path=str(mixed_folder), cache_dir=str(tmp_path / "c2"), workers=2),
        MelodyEncoding(),
        progress=False,
    )
    assert serial.metadata["tune_id"].tolist() == parallel.metadata["tune_id"].tolist()
    assert all(np.array_equal(a, b) for a, b in zip(serial.tokens, parallel.tokens))
    assert serial.rejected == parallel.rejected


def test_cache_is_reused_and_invalidated_by_changes(tmp_path: Path, mixed_folder: Path) -> None:
    config = cfg(tmp_path, path=str(mixed_folder))
    first = prepare_corpus(config, MelodyEncoding(), progress=False)
    cache_files = sorted((tmp_path / "cache").glob("*.npz"))
    assert len(cache_files) == 1
    again = prepare_corpus(config, MelodyEncoding(), progress=False)
    assert sorted((tmp_path / "cache").glob("*.npz")) == cache_files
    assert all(np.array_equal(a, b) for a, b in zip(first.tokens, again.tokens))
    # a changed input file, and a changed encoding, each prepare anew
    write_midi(mixed_folder / "good.mid", C_MAJOR_TUNE + [(72, 12, 16)])
    changed = prepare_corpus(config, MelodyEncoding(), progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2

    def good_length(corpus: Corpus) -> int:
        return len(corpus.tokens[corpus.metadata["tune_id"].tolist().index("good.mid")])

    assert (good_length(first), good_length(changed)) == (48, 64)
    prepare_corpus(config, MelodyEncoding(steps_per_quarter=2), progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


def test_a_damaged_cache_is_rebuilt(tmp_path: Path, mixed_folder: Path) -> None:
    config = cfg(tmp_path, path=str(mixed_folder))
    prepare_corpus(config, MelodyEncoding(), progress=False)
    (cache,) = (tmp_path / "cache").glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:100])
    assert len(prepare_corpus(config, MelodyEncoding(), progress=False)) == 2
    Corpus.load(cache)  # rewritten whole


def test_corpus_save_load_round_trip(tmp_path: Path, encoding: MelodyEncoding) -> None:
    tunes = [np.array([14, 1, 16, 0], np.uint8), np.array([2, 3, 4, 5, 6], np.uint8)]
    corpus = Corpus.from_tunes(tunes, encoding, rejected=[("x.mid", "empty file")])
    corpus.save(tmp_path / "c.npz")
    loaded = Corpus.load(tmp_path / "c.npz")
    assert loaded.encoding == encoding and loaded.rejected == corpus.rejected
    assert [t.tolist() for t in loaded.tokens] == [t.tolist() for t in tunes]
    assert loaded.split.tolist() == corpus.split.tolist()
    with pytest.raises(CorpusError, match="not a readable rlmusic corpus"):
        (tmp_path / "junk.npz").write_bytes(b"junk")
        Corpus.load(tmp_path / "junk.npz")


def test_saving_leaves_another_writers_temporary_file_alone(
    tmp_path: Path, encoding: MelodyEncoding
) -> None:
    # two processes preparing one shared cache: each must rename its own temporary file
    corpus = Corpus.from_tunes([np.array([14, 1, 16, 0], np.uint8)], encoding)
    other = tmp_path / "c.npz.tmp.npz"  # the name every writer used before
    other.write_bytes(b"another process is writing this")
    corpus.save(tmp_path / "c.npz")
    assert other.read_bytes() == b"another process is writing this"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz", "c.npz.tmp.npz"]
    assert len(Corpus.load(tmp_path / "c.npz")) == 1


def test_split_is_seeded_by_tune_and_stable(encoding: MelodyEncoding) -> None:
    tunes = [np.array([14, 1], np.uint8)] * 2000
    a = Corpus.from_tunes(tunes, encoding, seed=0)
    b = Corpus.from_tunes(tunes, encoding, seed=0)
    c = Corpus.from_tunes(tunes, encoding, seed=1)
    assert a.split.tolist() == b.split.tolist()
    assert a.split.tolist() != c.split.tolist()
    shares = {s: (a.split == s).mean() for s in ("train", "valid", "test")}
    assert 0.03 < shares["valid"] < 0.07 and 0.03 < shares["test"] < 0.07
    # adding tunes never moves the others: the split is a hash of the tune id
    bigger = Corpus.from_tunes(tunes + tunes[:10], encoding, seed=0)
    assert bigger.split[:2000].tolist() == a.split.tolist()


def test_load_melody_single_file_api(tmp_path: Path, mixed_folder: Path) -> None:
    c_tokens = load_melody(mixed_folder / "good.mid")
    d_tokens = load_melody(mixed_folder / "nested" / "deeper" / "good_in_d.midi")
    np.testing.assert_array_equal(c_tokens, d_tokens[: len(c_tokens)])  # D major transposed to C
    assert c_tokens[0] == MelodyEncoding().pitch_to_token(60)
    for name, reason in [
        ("empty.mid", "empty file"),
        ("truncated.mid", "corrupt MIDI"),
        ("drums.mid", "drum tracks only"),
        ("missing.mid", "no such file"),
    ]:
        with pytest.raises(MelodyLoadError, match=rf"{name}: {reason}"):
            load_melody(mixed_folder / name)


def test_a_multi_tune_abc_file_gives_every_good_tune_as_load_melodies_does(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "abc"
    folder.mkdir()
    book = (
        "M:4/4\nL:1/8\n\n"  # a file header: every tune's meter and unit length
        "X:1\nT:Broken\nK:Xyz\nCDEF GABc |\n\n"
        "X:2\nT:Good\nK:G\nGABc dedB | G8 |\n\n"
        "X:3\nT:Absurd\nK:C\nC9999999999 |\n\n"
        "X:4\nT:Also good\nK:Am\nABcd e2d2 | c2B2 A4 |\n"
    )
    (folder / "book.abc").write_text(book)
    corpus = prepare_corpus(cfg(tmp_path, path=str(folder)), MelodyEncoding(), progress=False)
    assert corpus.metadata["tune_id"].tolist() == ["book.abc#2", "book.abc#4"]
    assert corpus.metadata["title"].tolist() == ["Good", "Also good"]
    assert [(name, reason.split(":")[0]) for name, reason in corpus.rejected] == [
        ("book.abc#1", "unknown key"),
        ("book.abc#3", "absurd duration"),
    ]
    tunes, rejected = load_melodies(folder / "book.abc", min_notes=4)
    assert all(np.array_equal(a, t.tokens) for a, t in zip(corpus.tokens, tunes, strict=True))
    assert [r.number for r in rejected] == ["1", "3"]


@pytest.mark.parametrize(
    ("source", "limit"), [("essen", 40), ("oneills", 15), ("ryans", 15), ("bach", 4)]
)
def test_real_collections_prepare_into_c(tmp_path: Path, source: str, limit: int) -> None:
    corpus = prepare_corpus(
        {
            "source": source,
            "cache_dir": str(tmp_path),
            "split_seed": 0,
            "workers": 1,
            "limit": limit,
            "min_notes": 8,
        },
        MelodyEncoding(),
        progress=False,
    )
    assert len(corpus) >= limit * 0.8
    pitches = np.concatenate([MelodyEncoding().pitches(t) for t in corpus.tokens])
    pitches = pitches[pitches >= 0]
    diatonic = np.isin(pitches % 12, [0, 2, 4, 5, 7, 9, 11]).mean()
    assert diatonic > 0.9, f"{source}: only {diatonic:.0%} of notes in C major / A minor"
    assert set(corpus.metadata["source"].tolist()) == {source}
