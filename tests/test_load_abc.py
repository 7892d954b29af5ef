"""Standard ABC: multi-tune files tune by tune, file headers, ABC 2.1 defaults, time bounds."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import numpy as np
import pytest

from rlmusic.data import (
    MelodyEncoding,
    MelodyLoadError,
    MelodyWarning,
    RejectedTune,
    load_melodies,
    load_melody,
)
from rlmusic.data.readers import parse_abc, split_abc_tunes


def tune(number: int, body: str, key: str = "C", header: str = "M:4/4\nL:1/8\n") -> str:
    return f"X:{number}\nT:Tune {number}\n{header}K:{key}\n{body}\n\n"


def lengths(text: str) -> list[float]:
    """Quarter-note lengths of the first tune in ``text``, as the splitter hands it on."""
    return [n.end - n.start for n in parse_abc(split_abc_tunes(text)[0].text)]


@pytest.mark.parametrize(
    ("meter", "unit"),
    [
        ("M:2/4\n", 0.25),  # 0.5 < 0.75: sixteenths
        ("M:5/8\n", 0.25),
        ("M:2+3/8\n", 0.25),
        ("M:3/4\n", 0.5),  # exactly 0.75: eighths
        ("M:6/8\n", 0.5),
        ("M:4/4\n", 0.5),
        ("M:C\n", 0.5),
        ("M:C|\n", 0.5),
        ("M:none\n", 0.5),  # free meter
        ("", 0.5),  # no M: is free meter in ABC 2.1
    ],
)
def test_no_unit_length_follows_the_abc_2_1_default(meter: str, unit: float) -> None:
    assert lengths(tune(1, "CDEF G2A2 |", header=meter)) == [unit] * 4 + [2 * unit] * 2


def test_a_tune_without_l_or_m_loads(tmp_path: Path) -> None:
    # music21 rejects it ("no active default note length"); ABC 2.1 defines it: L:1/8
    path = tmp_path / "bare.abc"
    path.write_text("X:1\nT:Bare\nK:G\nGABc d2B2 | G8 |\n")
    notes = MelodyEncoding().decode(load_melody(path))
    assert [n.end - n.start for n in notes] == [2, 2, 2, 2, 4, 4, 16]  # 16th-note steps


def test_file_header_fields_apply_to_every_tune_that_does_not_set_them() -> None:
    text = (
        "%abc-2.1\n%%propagate-accidentals pitch\nM:2/4\nL:1/16\nT:not a file header field\n\n"
        "Free text between the header and the tunes.\n\n"
        + tune(1, "CDEF |", header="")  # inherits L:1/16
        + tune(2, "CDEF |", header="L:1/8\n")  # its own L: wins
        + tune(3, "CDEF |", header="M:6/8\n")  # its own M:, the header's L:
    )
    tunes = split_abc_tunes(text)
    assert [t.number for t in tunes] == ["1", "2", "3"]
    assert [t.title for t in tunes] == ["Tune 1", "Tune 2", "Tune 3"]
    assert [lengths(t.text) for t in tunes] == [[0.25] * 4, [0.5] * 4, [0.25] * 4]
    assert all("%%propagate-accidentals pitch" in t.text for t in tunes)
    assert not any("not a file header field" in t.text for t in tunes)  # T: is per tune
    assert tunes[1].text.count("M:2/4") == 1 and "M:2/4" not in tunes[2].text


def test_header_meter_sets_the_default_unit_length() -> None:
    tunes = split_abc_tunes(
        "M:2/4\n\n" + tune(1, "CDEF |", header="") + tune(2, "CDEF |", header="M:3/4\n")
    )
    assert [lengths(t.text) for t in tunes] == [[0.25] * 4, [0.5] * 4]


def test_a_wrapped_field_line_in_the_tune_header_is_dropped_with_a_warning(
    tmp_path: Path,
) -> None:
    # Essen's han1.abc#279: an N: line wrapped in two, its tail read as notes before L: is known
    header = "N: bearbeitet und gedruckt in\nng Ribao gedruckt. Von\nM:2/4\nL:1/16\n"
    path = tmp_path / "wrapped.abc"
    path.write_text(tune(279, "c2c4d2 | G6c2 | F2F2E2D2 | G8 |", key="F", header=header))
    pattern = r"wrapped\.abc, tune X:279 \(Tune 279\): dropped 1 tune-header line.*'ng Ribao"
    with pytest.warns(MelodyWarning, match=pattern):
        tokens = load_melody(path)
    assert len(MelodyEncoding().decode(tokens)) == 10


TUNEBOOK = (
    tune(1, "CDEF GABc |", key="Xyz")  # unknown key: the first tune is broken
    + tune(2, "GABc dedB | G8 |", key="G")
    + tune(3, "C9999999999 |")  # legal ABC, absurd length
    + tune(4, "ABcd e2d2 | c2B2 A4 |", key="Am")
    + tune(5, "(3C9999999DE |")  # music21 fails on it
)


@pytest.fixture
def tunebook(tmp_path: Path) -> Path:
    path = tmp_path / "tunebook.abc"
    path.write_text(TUNEBOOK)
    return path


def test_load_melodies_keeps_every_good_tune_and_reports_the_rest(tunebook: Path) -> None:
    tunes, rejected = load_melodies(tunebook)
    assert [(t.number, t.title) for t in tunes] == [("2", "Tune 2"), ("4", "Tune 4")]
    assert all(t.tokens.dtype == np.uint8 and len(t.tokens) > 0 for t in tunes)
    assert [(r.file, r.number, r.title, r.reason) for r in rejected] == [
        (str(tunebook), "1", "Tune 1", "unknown key"),
        (str(tunebook), "3", "Tune 3", "absurd duration"),
        (str(tunebook), "5", "Tune 5", "parse error"),
    ]
    assert str(rejected[0]) == f"{tunebook}, tune X:1 (Tune 1): unknown key (K:Xyz)"


def test_tunes_of_a_tunebook_load_as_they_would_alone(tmp_path: Path, tunebook: Path) -> None:
    alone = tmp_path / "alone.abc"
    alone.write_text(tune(4, "ABcd e2d2 | c2B2 A4 |", key="Am"))
    tunes, _ = load_melodies(tunebook)
    np.testing.assert_array_equal(tunes[1].tokens, load_melody(alone))


def test_load_melody_names_the_file_and_the_tune(tunebook: Path) -> None:
    with pytest.warns(MelodyWarning, match=r"holds 5 tunes; load_melody reads the first \(X:1\)"):
        with pytest.raises(MelodyLoadError) as error:
            load_melody(tunebook)
    assert str(error.value) == f"{tunebook}, tune X:1 (Tune 1): unknown key (K:Xyz)"


def test_missing_file_raises_and_empty_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(MelodyLoadError, match=r"nope\.abc: no such file"):
        load_melodies(tmp_path / "nope.abc")
    (tmp_path / "empty.abc").write_text("% only a comment\n")
    tunes, rejected = load_melodies(tmp_path / "empty.abc")
    assert tunes == [] and [str(r) for r in rejected] == [
        f"{tmp_path / 'empty.abc'}: parse error (no X: tune header)"
    ]


def test_an_absurdly_long_note_fails_cleanly_within_10_s(tmp_path: Path) -> None:
    # C9999999999 is 2e10 sixteenth-note steps: tokens for it would be 20 GB, filled in C
    path = tmp_path / "long.abc"
    path.write_text(tune(7, "CDEF C9999999999 |", header="M:4/4\n"))
    started = time.perf_counter()
    with pytest.raises(MelodyLoadError, match=r"long\.abc, tune X:7 \(Tune 7\): absurd duration"):
        load_melody(path)
    tunes, rejected = load_melodies(path)
    assert tunes == [] and rejected[0].reason == "absurd duration"
    assert time.perf_counter() - started < 10


def test_every_parse_of_the_file_loaders_is_time_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hang(text: str, where: str = "") -> list:
        while True:
            time.sleep(0.01)

    monkeypatch.setattr("rlmusic.data.prepare.parse_abc", hang)
    path = tmp_path / "hangs.abc"
    path.write_text(tune(1, "CDEF |") + tune(2, "GABc |"))
    started = time.perf_counter()
    with pytest.warns(MelodyWarning, match="holds 2 tunes"):
        with pytest.raises(MelodyLoadError, match=r"hangs\.abc, tune X:1 .*timeout"):
            load_melody(path, timeout_s=0.3)
    tunes, rejected = load_melodies(path, timeout_s=0.3)
    assert tunes == [] and [(r.number, r.reason) for r in rejected] == [
        ("1", "timeout"),
        ("2", "timeout"),
    ]
    assert time.perf_counter() - started < 5


def test_the_default_time_bound_keeps_loaders_under_10_s() -> None:
    for loader in (load_melody, load_melodies):
        assert inspect.signature(loader).parameters["timeout_s"].default <= 8


def test_byte_order_mark_and_latin_1_files(tmp_path: Path) -> None:
    (tmp_path / "bom.abc").write_bytes(b"\xef\xbb\xbf" + tune(1, "CDEF |").encode())
    (tmp_path / "latin1.abc").write_bytes(
        tune(1, "CDEF |").replace("Tune", "Caf\xe9").encode("latin-1")
    )
    assert load_melodies(tmp_path / "bom.abc").tunes[0].number == "1"  # X: seen past the BOM
    assert load_melodies(tmp_path / "latin1.abc").tunes[0].title == "Caf\xe9 1"


def test_rejected_tune_reads_well_for_whole_files() -> None:
    whole = RejectedTune("song.mid", "", "song", "corrupt MIDI", "EOFError")
    assert str(whole) == "song.mid: corrupt MIDI (EOFError)"
    assert str(RejectedTune("b.abc", "3", "", "too short")) == "b.abc, tune X:3: too short"
