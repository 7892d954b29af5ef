"""The blind listening page: seeded sides and opaque ids, the files beside it, and its answers in
the critics' preference format (read back by ``load_preferences``). The browser itself clicks
through the page in tests/test_browser_pages.py."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from rlmusic.critics import load_preferences
from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation import audio
from rlmusic.evaluation.columns import MIDI, Column
from rlmusic.evaluation.listening import blind_pairs, key_path, write_listening_page
from tests.conftest import C_MAJOR_TUNE, make_tiny_checkpoint, write_midi

ENC = MelodyEncoding()


def two_columns(pairs: int) -> tuple[Column, Column]:
    rng = np.random.default_rng(0)
    notes = rng.integers(14, 30, (pairs, 16))
    holds = np.tile([14, 1, 1, 1], (pairs, 4)) + np.arange(pairs)[:, None] * (
        np.arange(16) % 4 == 0
    )
    return Column("tuned", "run/x", MIDI, notes), Column("supervised", "pretrained:y", MIDI, holds)


class PairSections(HTMLParser):
    """The ``data-*`` attributes of the page's pair sections, as its script reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "section" and "pair" in values.get("class", "").split():
            self.pairs.append(values)


def test_pairs_are_seeded_and_blind() -> None:
    pairs = blind_pairs(20, seed=0)
    assert pairs == blind_pairs(20, seed=0) and pairs != blind_pairs(20, seed=1)
    assert [p.pair_id for p in pairs][:2] == ["p00", "p01"]
    assert {p.a[1] for p in pairs} == {0, 1}  # either model can be A
    assert all({p.a[1], p.b[1]} == {0, 1} and p.a[2] == p.b[2] for p in pairs)  # piece i of each
    ids = [p.a[0] for p in pairs] + [p.b[0] for p in pairs]
    assert len(set(ids)) == 40
    first_model = sorted(s for p in pairs for s, column, _ in (p.a, p.b) if column == 0)
    assert first_model != sorted(ids)[:20]  # the ids do not sort by model


def assert_no_answer_key_in(folder: Path, *secrets: str) -> None:
    """No file under ``folder`` (what listeners are served) is a key or names a model."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files and not any(p.suffix == ".json" for p in files), files
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"{path} names {secret!r}"


def test_page_files_and_a_preference_round_trip(tmp_path: Path) -> None:
    columns = two_columns(6)
    out = tmp_path / "page"
    page = write_listening_page(columns, ENC, out, pairs=6, seed=0)
    assert page == out / "listen.html"
    # the answer key lies beside the served folder, never in it
    assert key_path(out) == tmp_path / "page.key.json"
    assert {p.name for p in out.iterdir()} == {"listen.html", "samples", "audio"}
    assert_no_answer_key_in(out, "tuned", "supervised", "run/x", "pretrained:y")
    key = json.loads(key_path(out).read_text())
    assert len(key["samples"]) == 12 and set(key["pairs"]) == {f"p{i:02d}" for i in range(6)}
    for sample_id, where in key["samples"].items():
        assert (out / "samples" / f"{sample_id}.mid").is_file()
        assert (out / "audio" / f"{sample_id}.wav").read_bytes()[:4] == b"RIFF"
        assert audio.read_wav(out / "audio" / f"{sample_id}.wav")[1] == 44100
        assert where["model"] in ("tuned", "supervised")
    text = page.read_text()
    assert f"Audio: {html.escape(audio.renderer().describe(ENC))}." in text  # auto: the piano
    assert "tuned" not in text and "supervised" not in text  # the page never names a model
    assert text.count("data:image/png;base64,") == 12 and "localStorage" in text

    sections = PairSections()
    sections.feed(text)
    verdicts = ["a", "b", "tie"]
    records = [
        {
            "pair_id": s["data-pair-id"],
            "sample_a": s["data-sample-a"],
            "sample_b": s["data-sample-b"],
            "preferred": verdicts[i % 3],
        }
        for i, s in enumerate(sections.pairs)
    ]
    answers = tmp_path / "preferences.json"
    answers.write_text(json.dumps(records, indent=2))
    loaded = load_preferences(answers, samples_dir=out / "samples")
    assert [p.pair_id for p in loaded] == sorted(key["pairs"])
    for preference, section in zip(loaded, sections.pairs):
        assert preference.sample_a == out / "samples" / f"{section['data-sample-a']}.mid"
        shown_a = key["samples"][section["data-sample-a"]]["model"]
        assert key["pairs"][preference.pair_id]["a"] == shown_a  # the key says who was A
    assert [p.winner is None for p in loaded] == [v == "tie" for v in verdicts * 2]


# what synth=auto at program=40 plays, by what is installed (auto's order: midirenderer,
# FluidSynth, then sine waves), as the page names it
AUTO_AUDIO_AT_PROGRAM_40 = {
    "midirenderer": "Audio: midirenderer (RustySynth), TimGM6mb.sf2, program 40 (Violin), 44.1 kHz.",
    "fluidsynth": "Audio: FluidSynth, TimGM6mb.sf2, program 40 (Violin), 44.1 kHz.",
    "sine": "Audio: sine waves (pretty_midi's PrettyMIDI.synthesize), 44.1 kHz; midirenderer is "
    "not installed (pip install 'midirenderer>=0.1.3,<0.2' on Linux x86_64, macOS or Windows; "
    "elsewhere pip install 'rlmusic[audio]' for FluidSynth).",
}


def test_listen_cli_takes_models_without_a_plus(tmp_path: Path) -> None:
    checkpoint = make_tiny_checkpoint(tmp_path)
    for i in range(3):
        write_midi(tmp_path / "midi" / f"m{i}.mid", [(p + i, s, e) for p, s, e in C_MAJOR_TUNE])
    out = tmp_path / "page"
    done = subprocess.run(
        [
            sys.executable, "-m", "rlmusic.cli", "listen", f"models.tuned_one={checkpoint}",
            f"models.real_tunes={tmp_path / 'midi'}", "pairs=2", "length=16", "program=40",
            "device=cpu", f"out={out}", f"hydra.run.dir={tmp_path / 'hydra'}",
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"listening page: {out / 'listen.html'}" in done.stdout
    # the served folder holds no answer key; the key the command names maps every pair
    assert_no_answer_key_in(out, "tuned_one", "real_tunes", str(checkpoint), str(tmp_path / "midi"))
    printed = [line for line in done.stdout.splitlines() if line.startswith("answer key: ")]
    assert len(printed) == 1
    key_file = Path(printed[0].removeprefix("answer key: ").split(" (")[0])
    assert key_file == out.parent / "page.key.json" and key_file.is_file()
    key = json.loads(key_file.read_text())
    assert set(key["pairs"]) == {"p00", "p01"}
    assert {tuple(sorted(p.values())) for p in key["pairs"].values()} == {
        ("real_tunes", "tuned_one")
    }  # each pair: one piece of each model
    assert set(key["samples"]) == {p.stem for p in (out / "samples").glob("*.mid")}
    assert {s["spec"] for s in key["samples"].values()} == {str(checkpoint), str(tmp_path / "midi")}
    assert all(audio.read_wav(w)[1] == 44100 for w in (out / "audio").glob("*.wav"))
    installed = next((s for s in audio.SOUNDFONT_SYNTHS if audio.available(s)), "sine")
    page = html.unescape((out / "listen.html").read_text())
    assert AUTO_AUDIO_AT_PROGRAM_40[installed] in page  # synth=auto, program=40: the violin


def test_a_key_file_inside_the_page_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="would be served with the page"):
        write_listening_page(two_columns(1), ENC, tmp_path, pairs=1, key_file=tmp_path / "k.json")
    assert not (tmp_path / "k.json").exists()


def test_listen_needs_exactly_two_models(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_module

    from rlmusic.tasks import listen

    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("listen", overrides=["+models.only=pretrained:note_lstm", f"out={tmp_path}"])
    with pytest.raises(ValueError, match="exactly two models"):
        listen.run(cfg)


def test_a_chorale_page_plays_the_organ_and_draws_four_voices(tmp_path: Path) -> None:
    import pretty_midi

    chorale = ChoraleEncoding()
    rng = np.random.default_rng(1)
    pieces = rng.integers(0, chorale.vocab_size, (2, 2, 4 * 16))  # two models, two 16-step pieces
    columns = tuple(Column(n, f"run/{n}", MIDI, p) for n, p in zip(("x", "y"), pieces))
    renderer = audio.renderer("sine")  # the program is the encoding's: the organ
    page = write_listening_page(columns, chorale, tmp_path / "page", pairs=2, renderer=renderer)
    text = html.unescape(page.read_text())
    assert "two short chorales" in text
    assert f"Audio: {audio.renderer('sine').describe(chorale)}." in text
    key = json.loads(key_path(tmp_path / "page").read_text())
    for sample_id in key["samples"]:
        midi = pretty_midi.PrettyMIDI(str(tmp_path / "page" / "samples" / f"{sample_id}.mid"))
        assert [i.name for i in midi.instruments] == ["soprano", "alto", "tenor", "bass"]
        assert {i.program for i in midi.instruments} == {19}  # church organ
        samples, rate = audio.read_wav(tmp_path / "page" / "audio" / f"{sample_id}.wav")
        # 16 steps at 80 qpm: 3 s and the release tail, not 64 tokens' 12 s
        assert len(samples) == int(round((16 * 60 / 80 / 4 + audio.TAIL) * rate))
