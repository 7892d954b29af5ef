"""The preference-file loader: both formats, the byte-order mark, and every bad-record case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlmusic.critics import (
    PreferenceFileError,
    PreferenceFileWarning,
    load_preferences,
)
from tests.conftest import C_MAJOR_TUNE, write_midi


def record(pair_id: object, a: object, b: object, preferred: object, **extra: object) -> dict:
    return {"pair_id": pair_id, "sample_a": a, "sample_b": b, "preferred": preferred, **extra}


GOOD = [
    record("p1", "a_001", "b_001", "a"),
    record("p2", "a_002", "b_002", "b"),
    record(3, "a_003", "b_003", "tie"),
]


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    folder.mkdir()
    for name in ("a_001", "b_001", "a_002", "b_002", "a_003", "b_003"):
        (folder / f"{name}.mid").write_bytes(b"")  # the loader only checks that they exist
    return folder


def write_json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=2))
    return path


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def rejected(path: Path, **kwargs) -> PreferenceFileError:
    with pytest.raises(PreferenceFileError) as info:
        load_preferences(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value


@pytest.mark.parametrize("writer", [write_json, write_jsonl], ids=["json_array", "jsonl"])
def test_both_formats_load_with_ids_resolved_in_the_samples_dir(
    tmp_path: Path, samples: Path, writer
) -> None:
    prefs = load_preferences(writer(tmp_path / "prefs", GOOD), samples_dir=samples)
    assert [(p.pair_id, p.preferred, p.index) for p in prefs] == [
        ("p1", "a", 0),
        ("p2", "b", 1),
        ("3", "tie", 2),
    ]
    assert prefs[0].sample_a == samples / "a_001.mid" and prefs[1].winner == samples / "b_002.mid"
    assert prefs[2].winner is None


def test_a_byte_order_mark_is_accepted(tmp_path: Path, samples: Path) -> None:
    for name, text in (("a.json", json.dumps(GOOD)), ("b.jsonl", json.dumps(GOOD[0]))):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert load_preferences(path, samples_dir=samples)[0].pair_id == "p1"


def test_extra_fields_are_ignored(tmp_path: Path, samples: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl", [record("p1", "a_001", "b_001", "a", rater=7, why="x")]
    )
    assert load_preferences(path, samples_dir=samples)[0].pair_id == "p1"


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"pair_id": "p1",\n   "sample_a": "x" "sample_b": "y"}\n]')
    error = rejected(path)
    assert "line 3, column 20" in str(error)
    lines = tmp_path / "broken.jsonl"
    lines.write_text(json.dumps(GOOD[0]) + "\n\n" + '{"pair_id": "p2", oops}\n')
    error = rejected(lines)
    assert "record 1 (line 3): invalid JSON at line 3, column 19" in str(error)


def test_every_bad_record_is_listed_with_its_index_and_reason(
    tmp_path: Path, samples: Path
) -> None:
    records = [
        GOOD[0],
        {"pair_id": "p2", "sample_a": "a_002", "preferred": "a"},  # 1: missing field
        record("p3", "a_003", 17, "a"),  # 2: wrong type
        record(["p4"], "a_003", "b_003", "a"),  # 3: wrong type of pair_id
        record("p5", "a_003", "b_003", "A"),  # 4: not a verdict
        record("p6", "a_003", "nobody", "b"),  # 5: unknown sample
        record("p1", "a_002", "b_002", "a"),  # 6: duplicate pair_id
        record("p7", "b_001", "a_001", "b"),  # 7: the same pair (swapped) and verdict as 0
        "p8",  # 8: not an object
        record("p9", "a_002", "a_002", "a"),  # 9: a sample against itself
    ]
    error = rejected(write_json(tmp_path / "p.json", records), samples_dir=samples)
    reasons = dict(error.problems)
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert reasons[1] == "missing field 'sample_b'"
    assert reasons[2] == "sample_b must be a non-empty string, got number"
    assert reasons[3] == "pair_id must be a string or an integer, got array"
    assert reasons[4] == "preferred must be 'a', 'b' or 'tie', got 'A'"
    assert reasons[5].startswith("unknown sample 'nobody'")
    assert reasons[6] == "duplicate pair_id 'p1' (record 0)"
    assert reasons[7] == "duplicate pair: same samples and verdict as record 0"
    assert reasons[8] == "not a JSON object (got string)"
    assert reasons[9] == "sample_a and sample_b are the same sample"
    assert "9 bad record(s) of 10" in str(error)
    for index in reasons:
        assert f"record {index}: " in str(error)


def test_a_conflicting_pair_rejects_both_records(tmp_path: Path, samples: Path) -> None:
    records = [GOOD[0], GOOD[1], record("p9", "b_001", "a_001", "a")]  # 2 says b_001 wins
    error = rejected(write_jsonl(tmp_path / "p.jsonl", records), samples_dir=samples)
    assert dict(error.problems) == {
        0: "conflicting pair: record 2 judged the same samples otherwise",
        2: "conflicting pair: record 0 judged the same samples otherwise",
    }
    assert "record 2 (line 3)" in str(error)


def test_unknown_samples_are_only_checked_with_a_samples_dir(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", [record("p1", "x.mid", "y.mid", "a")])
    prefs = load_preferences(path)  # MIDI paths, checked when their tokens are loaded
    assert prefs[0].sample_a == tmp_path / "x.mid"
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert "unknown sample 'x.mid'" in str(rejected(path, samples_dir=empty))
    assert f"samples_dir {tmp_path / 'nope'} is not a folder" in str(
        rejected(path, samples_dir=tmp_path / "nope")
    )


def test_skip_bad_keeps_the_good_records_and_warns_once_per_dropped_one(
    tmp_path: Path, samples: Path
) -> None:
    records = [
        GOOD[0],
        record("p2", "a_002", None, "a"),
        GOOD[2],
        record("p1", "a_002", "b_002", "b"),
    ]
    path = write_jsonl(tmp_path / "p.jsonl", records)
    with pytest.warns(PreferenceFileWarning) as caught:
        prefs = load_preferences(path, samples_dir=samples, skip_bad=True)
    assert [p.index for p in prefs] == [0, 2]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "dropped record 1 (line 2): sample_b must be a non-empty string, got null" in messages[0]
    assert "dropped record 3 (line 4): duplicate pair_id 'p1' (record 0)" in messages[1]
    assert all(str(path) in m for m in messages)


def test_files_with_no_usable_record_are_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert "empty preference file" in str(rejected(empty))
    assert "no usable record" in str(rejected(write_json(tmp_path / "e.json", [])))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"pair_id": "p1"}])
    with pytest.warns(PreferenceFileWarning):
        assert "no usable record (of 1)" in str(rejected(bad, skip_bad=True))
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'[{"pair_id": "\xe9"}]')
    assert "not UTF-8" in str(rejected(latin))


def test_midi_path_samples_load_as_tokens(tmp_path: Path, encoding) -> None:
    from rlmusic.critics import pairs_from_preferences
    from rlmusic.data import load_melody

    low = write_midi(tmp_path / "clips" / "low.mid", C_MAJOR_TUNE)
    write_midi(tmp_path / "clips" / "mid.mid", [(p + 7, s, e) for p, s, e in C_MAJOR_TUNE])
    high = write_midi(
        tmp_path / "clips" / "high.midi", [(p + 12, s, e) for p, s, e in C_MAJOR_TUNE]
    )
    records = [
        record("p1", str(low), "clips/high.midi", "b"),  # an absolute and a relative path
        record("p2", "clips/high", "clips/mid", "tie"),  # ids: the suffix is found
    ]
    prefs = load_preferences(write_json(tmp_path / "p.json", records))
    assert prefs[0].sample_b == high and prefs[1].sample_a == high
    samples, pairs, outcome = pairs_from_preferences(prefs, encoding)
    assert len(samples) == 3 and pairs.tolist() == [[0, 1], [1, 2]]
    assert outcome.tolist() == [0.0, 0.5]
    assert samples[0].tolist() == load_melody(low, encoding).tolist()
