"""`rlmusic compare` end to end on tiny models and a small MIDI corpus: the columns a spec
names, the report's files (they exist and parse), the critic test, the CLI's open `models`."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module

from rlmusic.config import validate_config
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation import table_rows, two_sample_critic
from rlmusic.evaluation.columns import GENERATOR, HELDOUT, MIDI, spec_kind, split_heldout
from rlmusic.evaluation.comparison import prior_metrics
from rlmusic.evaluation.model_eval import evaluate_samples
from rlmusic.evaluation.two_sample_critic import POWER, SANITY, CriticTest, CriticTestConfig, Side
from rlmusic.models import load_generator
from rlmusic.models.sampling import sample_seeded
from rlmusic.tasks import compare
from tests.conftest import C_MAJOR_TUNE, make_tiny_checkpoint, write_midi

ENC = MelodyEncoding()


def write_corpus(folder: Path, tunes: int = 24) -> Path:
    """``tunes`` different seeded C-major tunes of 12 notes (a half or a whole beat each)."""
    rng = np.random.default_rng(0)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    for i in range(tunes):
        beats = np.cumsum([0.0, *rng.choice([0.5, 1.0], 12)])
        notes = [(int(rng.choice(scale)), s, e) for s, e in zip(beats[:-1], beats[1:])]
        write_midi(
            folder / f"t{i:02d}.mid", [(60, 0.0, 1.0), *[(p, s + 1, e + 1) for p, s, e in notes]]
        )
    return folder


def compare_overrides(tmp: Path, models: dict[str, str], **extra: object) -> list[str]:
    """Overrides for a fast comparison: tiny models, a MIDI corpus, small budgets."""
    checkpoint = models.get("tiny") or next(iter(models.values()))
    options = {
        "prior": checkpoint,
        "reward.prior.checkpoint": checkpoint,
        "n": 24,
        "length": 16,
        "data": "midi_dir",
        "data.path": tmp / "corpus",
        "data.cache_dir": tmp / "cache",
        "data.test_fraction": 0.5,
        "data.min_notes": 4,
        "data.workers": 1,
        "bootstrap.resamples": 40,
        "critic.steps": 20,
        "critic.samples": 40,
        "critic.real_windows": 200,
        "overlap.distances": 200,
        "k": 2,
        "synth": "sine",
        "sample_rate": 8000,
        "device": "cpu",
        "out": tmp / "out",
        **extra,
    }
    return [f"+models.{k}={v}" for k, v in models.items()] + [
        f"{k}={v}" for k, v in options.items()
    ]


def build_comparison(tmp: Path, **extra: object) -> compare.CompareResult:
    """A report in ``tmp/out`` of four columns: a checkpoint, a run folder, a MIDI folder and
    the held-out melodies."""
    write_corpus(tmp / "corpus")
    checkpoint = make_tiny_checkpoint(tmp, seed=0)
    run = tmp / "run"
    run.mkdir()
    shutil.copy(make_tiny_checkpoint(tmp, seed=1), run / "tuned.safetensors")
    midi = tmp / "midi"
    for i in range(5):
        write_midi(midi / "nested" / f"m{i}.mid", [(p + i, s, e) for p, s, e in C_MAJOR_TUNE])
    models = {"tiny": str(checkpoint), "run": str(run), "midi": str(midi), "real": "heldout"}
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("compare", overrides=compare_overrides(tmp, models, **extra))
    return compare.run(validate_config("compare", cfg))


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, compare.CompareResult]:
    tmp = tmp_path_factory.mktemp("compare")
    return tmp / "out", build_comparison(tmp)


class _Page(HTMLParser):
    """Tags and attributes of a page (the standard library's parser: it must parse)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def of(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]


def test_spec_kinds(tmp_path: Path, tiny_checkpoint: Path) -> None:
    assert spec_kind("pretrained:note_lstm") == (GENERATOR, "pretrained:note_lstm")
    assert spec_kind("heldout")[0] == spec_kind("corpus:test")[0] == HELDOUT
    assert spec_kind(str(tiny_checkpoint)) == (GENERATOR, str(tiny_checkpoint))
    run = tmp_path / "run"
    write_midi(run / "samples" / "final" / "sample_000.mid", C_MAJOR_TUNE)  # a run's samples
    shutil.copy(tiny_checkpoint, run / "tuned.safetensors")
    assert spec_kind(str(run)) == (GENERATOR, str(run / "tuned.safetensors"))
    assert spec_kind(str(run / "samples")) == (MIDI, str(run / "samples"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no checkpoint and no MIDI"):
        spec_kind(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no such file or folder"):
        spec_kind(str(tmp_path / "missing"))


def test_heldout_column_is_disjoint_from_the_reference() -> None:
    openings = [np.full(4, i) for i in range(10)]
    reference, pool = split_heldout(openings, seed=0, column=100)
    assert len(pool) == 5 and len(reference) == 5  # at most half goes to the column
    assert not set(pool[:, 0]) & set(reference[:, 0])
    assert len(split_heldout(openings, seed=0, column=0)[0]) == 10
    assert np.array_equal(split_heldout(openings, 3, 2)[1], split_heldout(openings, 3, 2)[1])


def test_prior_rows_are_evaluate_s_own(tiny_checkpoint: Path) -> None:
    from rlmusic.evaluation.bootstrap import bootstrap_weights
    from rlmusic.evaluation.columns import Column

    model, encoding = load_generator(str(tiny_checkpoint))
    prior, _ = load_generator(str(make_tiny_checkpoint(tiny_checkpoint.parent, seed=5)))
    tokens, log_pi = sample_seeded(model, 40, 16, seed=0)
    ours = prior_metrics(
        Column("m", "spec", GENERATOR, tokens, log_pi), prior, encoding,
        bootstrap_weights(40, 30, 0), 0.95,
    )  # fmt: skip
    theirs = evaluate_samples("m", tokens, encoding, log_pi, prior).realism
    assert ours["log p per onset"].value == pytest.approx(theirs["prior log p per onset"])
    assert ours["log p per token"].value == pytest.approx(theirs["prior log p per token"])
    assert ours["KL(model || prior) per token"].value == pytest.approx(
        theirs["KL to prior per token"]
    )
    no_log_pi = prior_metrics(
        Column("m", "s", MIDI, tokens), prior, encoding, bootstrap_weights(40, 30, 0), 0.95
    )
    assert "KL(model || prior) per token" not in no_log_pi


def random_tunes(n: int, length: int, seed: int) -> list[np.ndarray]:
    """``n`` tunes of ``length`` steps, a random note on every step."""
    rng = np.random.default_rng(seed)
    return [rng.integers(14, 26, length) for _ in range(n)]


TINY_CRITIC = CriticTestConfig(
    steps=150, embed_dim=8, channels=8, dilations=[1, 2], samples=60, real_windows=400
)


def test_critic_tells_an_obvious_fake_and_reports_its_held_out_accuracy() -> None:
    test = CriticTest(random_tunes(40, 40, 0), ENC.vocab_size, 16, TINY_CRITIC, resamples=50)
    fake = np.tile([0, 1, 1, 1], (60, 4))  # silence
    accuracy, figures = test.accuracy(fake)
    assert accuracy.value == 1.0 == accuracy.low == accuracy.high
    assert accuracy.value == figures["balanced_accuracy"]
    again, _ = test.accuracy(fake)
    assert again == accuracy
    with pytest.raises(ValueError, match=">= 4 pieces of 16 steps"):
        test.accuracy(fake[:3])
    with pytest.raises(ValueError, match="of 16 steps"):
        test.accuracy(np.tile([0, 1], (60, 4)))


def test_critic_sanity_is_chance_when_both_sides_are_real() -> None:
    test = CriticTest(random_tunes(40, 40, 1), ENC.vocab_size, 16, TINY_CRITIC, resamples=200)
    sanity, _ = test.sanity()
    assert sanity.low <= 0.5 <= sanity.high and abs(sanity.value - 0.5) < 0.1


def test_real_windows_are_split_by_tune() -> None:
    # each tune one constant pitch: a pitch seen in the fit windows never reappears when scored
    tunes = [np.full(30, 14 + i) for i in range(20)]
    side = Side.of_tunes(tunes, 8, windows=1000, holdout=0.3, seed=0)
    fit, held = set(side.fit[:, 0].tolist()), set(side.held[:, 0].tolist())
    assert fit and held and not fit & held
    assert len(set(side.groups.tolist())) == len(held) == 6  # one bootstrap group per held tune
    assert len(side.held) == 6 * (30 - 8 + 1)  # every window of a held tune


def test_report_files_exist_and_parse(comparison: tuple[Path, compare.CompareResult]) -> None:
    out, result = comparison
    data = json.loads(
        (out / "metrics.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"),
    )
    assert [m["name"] for m in data["models"]] == ["tiny", "run", "midi", "real"]
    assert [m["kind"] for m in data["models"]] == ["generator", "generator", "midi", "heldout"]
    assert [m["n"] for m in data["models"]][:3] == [24, 24, 5]
    metrics = data["metrics"]
    for name in ("tiny", "run", "midi", "real"):
        sections = metrics[name]
        assert set(sections) == {
            "RL Tuner statistics", "reward (per composition)", "prior", "diversity",
            "realism vs held-out",
        }  # fmt: skip
        for rows in sections.values():
            for row in rows.values():
                assert set(row) == {"value", "low", "high"}
        # the held-out column's openings are tunes the critic learns from: no figure for it
        assert ("critic accuracy" in sections["realism vs held-out"]) == (name != "real")
        assert "overlap area (mean)" in sections["realism vs held-out"]
        assert "total" in sections["reward (per composition)"]
    assert set(data["critic_checks"]) == {SANITY, POWER}
    assert result.metrics[f"critic/{POWER}"] == pytest.approx(
        metrics["tiny"]["realism vs held-out"]["critic accuracy"]["value"]
    )  # the prior is a column: its figure
    assert "KL(model || prior) per token" in metrics["run"]["prior"]
    assert "KL(model || prior) per token" not in metrics["midi"]["prior"]
    assert metrics["tiny"]["prior"]["KL(model || prior) per token"]["value"] == pytest.approx(
        0.0, abs=1e-5
    )  # its own prior
    assert (
        result.metrics["tiny/notes in motif"]
        == metrics["tiny"]["RL Tuner statistics"]["notes in motif"]["value"]
    )
    for pair in data["separated"]:  # marked exactly where the intervals do not overlap
        a = metrics[pair["a"]][pair["section"]][pair["metric"]]
        b = metrics[pair["b"]][pair["section"]][pair["metric"]]
        assert a["high"] < b["low"] or b["high"] < a["low"]
    assert data["synth"] == "sine waves (pretty_midi's PrettyMIDI.synthesize), 8 kHz"
    assert np.load(out / "tokens.npz")["tiny"].shape == (24, 16)

    markdown = (out / "report.md").read_text()
    assert "| metric | A: tiny | B: run | C: midi | D: real |" in markdown
    assert "| notes in motif (% of notes) |" in markdown
    assert "| critic accuracy (0.5 = chance) |" in markdown
    assert (
        f"| {SANITY} (0.5 = chance) | " in markdown and f"| {POWER} (0.5 = chance) | " in markdown
    )
    for image in (out / "img").glob("*.png"):
        assert f"img/{image.name}" in markdown and image.read_bytes()[:4] == b"\x89PNG"


def test_a_second_comparison_reads_the_critic_figures_from_the_cache(
    comparison: tuple[Path, compare.CompareResult],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    out, first = comparison
    tmp = out.parent
    cached = sorted((tmp / "cache" / "critic_test").glob("*.json"))
    assert len(cached) == 4  # tiny (the prior: the power row), run, midi, the sanity row

    def trains(*args, **kwargs):
        raise AssertionError("a critic trained although every figure is cached")

    monkeypatch.setattr(two_sample_critic, "train_discriminator", trains)
    models = json.loads((out / "metrics.json").read_text())["settings"]["models"]
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("compare", overrides=compare_overrides(tmp, models, out=tmp / "again"))
    second = compare.run(validate_config("compare", cfg))
    critic_rows = {k: v for k, v in second.metrics.items() if "critic" in k}
    assert critic_rows == {k: v for k, v in first.metrics.items() if "critic" in k}
    assert len(critic_rows) == 5  # three columns' accuracy, the sanity and power rows
    markdown = (tmp / "again" / "report.md").read_text()
    assert f"| {SANITY} (0.5 = chance) | " in markdown and "| critic accuracy" in markdown
    # the size each critic trained at: steps as given, channels a melody's own (null: 32)
    assert "Each critic: 20 steps of 128 rows, 32 channels." in markdown
    settings = json.loads((tmp / "again" / "metrics.json").read_text())["settings"]
    assert (settings["critic"]["steps"], settings["critic"]["channels"]) == (20, 32)
    err = capsys.readouterr().err
    assert "[compare] column run: its pieces ..." in err and "critic test:" not in err


def test_report_html_is_self_contained(comparison: tuple[Path, compare.CompareResult]) -> None:
    out, _ = comparison
    text = (out / "report.html").read_text()
    page = _Page()
    page.feed(text)
    images = page.of("img")
    charts = [i for i in images if i.get("class") == "chart"]
    rolls = [i for i in images if i.get("class") == "roll"]
    assert len(charts) == 5 + 3  # a bar chart per section, a histogram figure per histogram
    assert len(rolls) == 4 * 2  # k pieces per column
    assert all(str(i["src"]).startswith("data:image/png;base64,") for i in images)
    audio = page.of("audio")
    assert len(audio) == 8 and all((out / str(a["src"])).is_file() for a in audio)
    midi = [a["href"] for a in page.of("a") if str(a.get("href")).endswith(".mid")]
    assert len(midi) == 8 and all((out / str(m)).is_file() for m in midi)
    assert not page.of("script") and not page.of("link")  # nothing fetched, nothing run
    assert "http://" not in text and "https://" not in text
    assert "Audio: sine waves (pretty_midi&#x27;s PrettyMIDI.synthesize), 8 kHz" in text
    assert 'id="critic-checks"' in text and SANITY in text


class _Cells(HTMLParser):
    """The metric table's rows as text: [row name, cell, cell, ..]."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._table = self._cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self._table = dict(attrs).get("id") == "metrics"
        elif self._table and tag == "tr":
            self.rows.append([])
        elif self._table and tag in ("td", "th") and self.rows:
            self.rows[-1].append("")
            self._cell = True

    def handle_endtag(self, tag: str) -> None:
        self._cell = self._cell and tag not in ("td", "th")
        self._table = self._table and tag != "table"

    def handle_data(self, data: str) -> None:
        if self._cell and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def test_report_prints_units_and_percent_and_markdown_matches_html(
    comparison: tuple[Path, compare.CompareResult],
) -> None:
    out, result = comparison
    data = json.loads((out / "metrics.json").read_text())
    raw = data["metrics"]["tiny"]["RL Tuner statistics"]["notes in motif"]
    assert 0 <= raw["value"] <= 1  # metrics.json keeps the fraction
    assert result.metrics["tiny/notes in motif"] == raw["value"]
    markdown = (out / "report.md").read_text()
    md_rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| **"):  # split at unescaped pipes
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            md_rows[cells[0]] = cells[1:]
    page = _Cells()
    page.feed((out / "report.html").read_text())
    html_rows = {r[0]: [" ".join(c.split()) for c in r[1:]] for r in page.rows if len(r) > 2}
    assert html_rows and md_rows
    for name, cells in html_rows.items():
        assert md_rows[name] == cells, name  # report.md prints what report.html shows
    tiny = md_rows["notes in motif (% of notes)"][0]
    assert tiny.startswith(table_rows.fmt(100 * raw["value"]) + "% (")
    assert re.fullmatch(r"-?[\d.]+% \(-?[\d.]+–-?[\d.]+%\)( ≠[A-D,]+)?", tiny)
    for name in (
        "notes excessively repeated (% of notes)", "notes not in key (% of notes)",
        "compositions starting with tonic (% of compositions)", "leaps resolved (% of leaps)",
        "distinct share (% of compositions)", "distinct 4-grams (% of 4-grams)",
        "onsets (per composition)", "log p per onset (nats)", "pitch-class entropy (bits)",
        "mean autocorrelation lag 1 (r)", "interval L1 (distance, 0–2)",
        "KL(model || prior) per token (nats)",
    ):  # fmt: skip
        assert name in md_rows, name
    numbers = [
        n
        for cells in md_rows.values()
        for c in cells
        for n in re.findall(r"-?\d[\d.]*", c.split(" ≠")[0])
    ]
    significant = [len(n.lstrip("-").replace(".", "").lstrip("0")) for n in numbers]
    assert numbers and all(d <= 3 or float(n) >= 1000 for n, d in zip(numbers, significant))


def test_no_audio_means_no_players(tmp_path: Path) -> None:
    write_corpus(tmp_path / "corpus", tunes=12)
    checkpoint = make_tiny_checkpoint(tmp_path)
    overrides = compare_overrides(
        tmp_path, {"tiny": str(checkpoint)}, audio="false", **{"critic.enabled": "false"}
    )
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("compare", overrides=overrides)
    result = compare.run(validate_config("compare", cfg))
    text = result.paths["html"].read_text()
    assert "<audio" not in text and "Audio: off" in text
    assert not (tmp_path / "out" / "audio").exists()
    assert "critic accuracy" not in result.results[0].metrics["realism vs held-out"]
