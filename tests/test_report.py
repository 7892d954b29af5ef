"""The comparison report's printed numbers: three significant digits, a share in percent as RL
Tuner's paper prints it, every row named with its unit, report.md the same as report.html, and
metrics.json keeping the raw fractions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlmusic.evaluation import report, table_rows
from rlmusic.evaluation.bootstrap import Interval
from rlmusic.evaluation.comparison import DIVERSITY, PRIOR, REWARD, TABLE, ColumnResult
from rlmusic.evaluation.report import Report, row_unit
from rlmusic.evaluation.table_rows import Unit, cell, fmt, title, unit_of
from rlmusic.rewards.statistics import Statistic

PERCENT = Unit("% of notes", percent=True)


@pytest.mark.parametrize(
    "value, text",
    [
        (0.2031, "0.203"),
        (0.0625, "0.0625"),
        (0.39, "0.390"),
        (0.99951, "1.00"),
        (12.04, "12.0"),
        (1234.5, "1230"),
        (-2.4567, "-2.46"),
        (0.0, "0"),
        (float("nan"), "n/a"),
        (None, "n/a"),
        (0.00123, "0.00123"),
        (0.0009996, "0.00100"),
        (1.4703e-9, "1.47e-9"),
        (-6.0e-9, "-6.00e-9"),
    ],
)
def test_three_significant_digits(value: float | None, text: str) -> None:
    assert fmt(value) == text


@pytest.mark.parametrize(
    "interval, unit, text",
    [
        (Interval(0.002031, 0.000625, 0.00391), PERCENT, ("0.203%", "(0.0625–0.391%)")),
        (Interval(0.757, 0.7412, 0.77), PERCENT, ("75.7%", "(74.1–77.0%)")),
        (Interval(1.0, 1.0, 1.0), PERCENT, ("100%", "(100–100%)")),
        (Interval(-2.512, -2.6049, -2.4), Unit("nats"), ("-2.51", "(-2.60–-2.40)")),
        (Interval(0.5, float("nan"), float("nan")), Unit("0.5 = chance"), ("0.500", "(n/a)")),
        (Interval(float("nan"), 0.1, 0.2), PERCENT, ("n/a", "(10.0–20.0%)")),
    ],
)
def test_cells(interval: Interval, unit: Unit, text: tuple[str, str]) -> None:
    assert cell(interval, unit) == text


@pytest.mark.parametrize(
    "section, row, printed",
    [
        (TABLE, "notes excessively repeated", "notes excessively repeated (% of notes)"),
        (TABLE, "notes not in key", "notes not in key (% of notes)"),
        (TABLE, "compositions starting with tonic", "compositions starting with tonic (% of compositions)"),
        (TABLE, "leaps resolved", "leaps resolved (% of leaps)"),
        (TABLE, "unique max note", "unique max note (% of compositions)"),
        (TABLE, "notes in repeated motif", "notes in repeated motif (% of notes)"),
        (TABLE, "mean autocorrelation lag 2", "mean autocorrelation lag 2 (r)"),
        (TABLE, "onsets per composition", "onsets (per composition)"),
        (PRIOR, "log p per onset", "log p per onset (nats)"),
        (PRIOR, "KL(model || prior) per token", "KL(model || prior) per token (nats)"),
        (DIVERSITY, "distinct 3-grams", "distinct 3-grams (% of 3-grams)"),
        (DIVERSITY, "pitch-class entropy (bits)", "pitch-class entropy (bits)"),
        (REWARD, "key", "key (per composition)"),
        (REWARD, "total", "total (per composition)"),
        ("realism vs held-out", "duration L1", "duration L1 (distance, 0–2)"),
        ("realism vs held-out", "overlap: pitch range", "overlap: pitch range (area, 0–1)"),
        ("realism vs held-out", "overlap area (mean)", "overlap: mean (area, 0–1)"),
        ("realism vs held-out", "critic accuracy", "critic accuracy (0.5 = chance)"),
        ("critic", "critic power: supervised vs held-out", "critic power: supervised vs held-out (0.5 = chance)"),
        ("a new section", "something new", "something new"),
    ],
    ids=lambda x: x if isinstance(x, str) and len(x) < 40 else None,
)  # fmt: skip
def test_every_row_names_its_unit(section: str, row: str, printed: str) -> None:
    assert title(row, row_unit(section, row)) == printed


def test_every_statistic_has_a_unit() -> None:
    for statistic in Statistic:
        assert unit_of(statistic).label, statistic
        assert unit_of(statistic) == unit_of(table_rows.row_name(statistic))  # id or text


def tiny_report() -> Report:
    table = {
        "notes excessively repeated": Interval(0.002031, 0.000625, 0.00391),
        "onsets per composition": Interval(7.5, 7.0, 8.125),
    }
    results = [
        ColumnResult(name, "spec", "generator", 10, {TABLE: table, PRIOR: prior}, {}, {})
        for name, prior in [
            ("tuned", {"KL(model || prior) per token": Interval(0.1234, 0.1, 0.15)}),
            ("supervised", {"KL(model || prior) per token": Interval(0.0, 0.0, 0.0)}),
        ]
    ]
    return Report(
        results=results,
        separated=[{"section": PRIOR, "metric": "KL(model || prior) per token", "a": "tuned",
                    "b": "supervised"}],
        settings={"length": 32, "seed": 0, "resamples": 10, "confidence": 0.95},
        reference_n=5,
        reference_histograms={},
        synth="TinySoundFont, TimGM6mb.sf2, program 0 (Acoustic Grand Piano), 44.1 kHz",
        bar_charts={},
        histogram_charts={},
        samples={},
        critic_checks={"critic sanity: held-out vs held-out": Interval(0.4987, 0.47, 0.53)},
    )  # fmt: skip


def test_markdown_and_html_print_the_same_cells(tmp_path: Path) -> None:
    paths = report.write_report(tiny_report(), tmp_path)
    markdown = paths["markdown"].read_text()
    assert (
        "| notes excessively repeated (% of notes) | 0.203% (0.0625–0.391%) | 0.203% " in markdown
    )
    assert "| onsets (per composition) | 7.50 (7.00–8.12) |" in markdown
    assert "| KL(model \\|\\| prior) per token (nats) | 0.123 (0.100–0.150) ≠B | 0 (0–0) ≠A |" in (
        markdown
    )
    assert "| critic sanity: held-out vs held-out (0.5 = chance) | 0.499 (0.470–0.530) |" in (
        markdown
    )
    page = paths["html"].read_text()
    assert "<td>notes excessively repeated (% of notes)</td><td>0.203% " in page
    assert '<span class="ci">(0.0625–0.391%)</span>' in page
    assert "<td>KL(model || prior) per token (nats)</td><td class=sep>0.123 " in page
    assert "<td>critic sanity: held-out vs held-out (0.5 = chance)</td><td>0.499 " in page
    assert "Audio: TinySoundFont, TimGM6mb.sf2, program 0 (Acoustic Grand Piano), 44.1 kHz" in page
    # machines read the raw fractions
    data = json.loads(paths["metrics"].read_text())
    row = data["metrics"]["tuned"][TABLE]["notes excessively repeated"]
    assert row == {"value": 0.002031, "low": 0.000625, "high": 0.00391}


@pytest.mark.parametrize("module", [table_rows], ids=["table_rows"])  # fmt, cell and the rows
def test_docstring_examples(module) -> None:
    import doctest

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_an_exponent_only_under_a_thousandth() -> None:
    for value in np.geomspace(1e-3, 1e6, 50):
        assert "e" not in fmt(value) and "e" not in fmt(-value)
    assert all("e" in fmt(v) for v in np.geomspace(1e-12, 9.99e-4, 20))
