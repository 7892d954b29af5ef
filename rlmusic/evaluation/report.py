"""The comparison's report: ``metrics.json``, ``report.md`` and a self-contained ``report.html``.

The HTML page needs no server and no network: its pictures are embedded (``data:image/png``
URIs; the same PNGs are written to ``img/`` for the Markdown), its style is inline and it has no
script. Audio players and MIDI links point at the ``audio/`` and ``samples/`` files beside it.

In the table each row's name says its unit (:func:`rlmusic.evaluation.table_rows.title`) and
each cell is ``value (low–high)``, the column's bootstrap interval, to three significant digits:
a share in percent, ``0.203% (0.0625–0.391%)``. ``≠B,C`` marks the columns (lettered A, B, ..)
whose intervals for that row do not overlap this one's. ``report.md`` prints the same cells.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rlmusic.evaluation.bootstrap import Interval
from rlmusic.evaluation.comparison import REWARD, ColumnResult
from rlmusic.evaluation.table_rows import PER_COMPOSITION, Unit, cell, title, unit_of

SECTION_NOTES = {
    "RL Tuner statistics": "RL Tuner's table, counted as the original evaluation counted them; "
    "shares in percent, as the paper prints them.",
    "voice leading": "Four-part voice leading counted on the 16th grid "
    "(rlmusic.rewards.harmony): parallels in similar motion per 1,000 moving voice-pair "
    "transitions, crossing and spacing in % of four-voice frames; the heldout column is real "
    "Bach counted by the same code.",
    "reward (per composition)": "Mean per composition of each weighted reward term and the total.",
    "prior": "log p under the prior; KL(model || prior) = mean(log pi - log p_prior) per token over "
    "the model's own samples (generators only).",
    "diversity": "Distinct share of pieces, distinct n-grams of onset pitches, mean pitch-class "
    "entropy per piece.",
    "realism vs held-out": "L1 of histograms (0 = the held-out melodies' histogram; at most 2); "
    "overlap area (1 = as close to real melodies as they are to each other); critic accuracy "
    "(0.5 = a small discriminator cannot tell the pieces from real melodies). Fewer pieces give "
    "larger L1s by chance: read columns of unequal n with that in mind.",
}


@dataclass
class Sample:
    """A shown piece: its id, MIDI and WAV paths (relative to the report), piano-roll PNG."""

    id: str
    midi: str
    audio: str | None
    roll: bytes = field(repr=False)


@dataclass
class Report:
    """Everything the report shows."""

    results: list[ColumnResult]
    separated: list[dict[str, str]]
    settings: dict[str, Any]
    reference_n: int
    reference_histograms: dict[str, np.ndarray]
    synth: str | None  # a description of the synthesiser; None: audio off
    bar_charts: dict[str, bytes]  # section -> PNG
    histogram_charts: dict[str, bytes]  # histogram name -> PNG
    samples: dict[str, list[Sample]]
    seconds: float = 0.0
    critic_checks: dict[str, Interval] = field(default_factory=dict)  # the critic's sanity, power

    @property
    def letters(self) -> dict[str, str]:
        return {r.name: chr(ord("A") + i) for i, r in enumerate(self.results)}


def row_unit(section: str, metric: str) -> Unit:
    """A row's unit: every reward term's is per composition, the others' by name."""
    return PER_COMPOSITION if section == REWARD else unit_of(metric)


def _marks(report: Report, section: str, metric: str, model: str) -> list[str]:
    letters = report.letters
    return sorted(
        letters[p["b"] if p["a"] == model else p["a"]]
        for p in report.separated
        if p["section"] == section and p["metric"] == metric and model in (p["a"], p["b"])
    )


def rows(report: Report) -> list[tuple[str, list[str]]]:
    """``(section, metrics)`` in first-seen order over the columns."""
    order: dict[str, dict[str, None]] = {}
    for result in report.results:
        for section, metrics in result.metrics.items():
            order.setdefault(section, {}).update(dict.fromkeys(metrics))
    return [(section, list(metrics)) for section, metrics in order.items()]


def _interval(result: ColumnResult, section: str, metric: str) -> Interval | None:
    return result.metrics.get(section, {}).get(metric)


def metrics_json(report: Report) -> dict[str, Any]:
    """The report's numbers as plain JSON (NaN as null)."""
    return {
        "settings": report.settings,
        "reference": {"n": report.reference_n},
        "synth": report.synth,
        "seconds": report.seconds,
        "models": [
            {"name": r.name, "spec": r.spec, "kind": r.kind, "n": r.n, "seconds": r.seconds}
            for r in report.results
        ],
        "metrics": {
            r.name: {
                section: {metric: iv.as_dict() for metric, iv in metrics.items()}
                for section, metrics in r.metrics.items()
            }
            for r in report.results
        },
        "separated": report.separated,
        "critic_checks": {name: iv.as_dict() for name, iv in report.critic_checks.items()},
        "histograms": {
            "held-out": {k: v.tolist() for k, v in report.reference_histograms.items()},
            **{r.name: {k: v.tolist() for k, v in r.histograms.items()} for r in report.results},
        },
        "samples": {
            model: [{"id": s.id, "midi": s.midi, "audio": s.audio} for s in samples]
            for model, samples in report.samples.items()
        },
    }


def markdown(report: Report) -> str:
    """The table (values, intervals, separation marks), then links to the pictures."""
    letters = report.letters
    header = ["metric", *(f"{letters[r.name]}: {r.name}" for r in report.results)]
    lines = [
        "# Comparison",
        "",
        _summary(report),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for section, metrics in rows(report):
        lines.append(f"| **{section}** |" + " |" * len(report.results))
        for metric in metrics:
            unit = row_unit(section, metric)
            cells = []
            for r in report.results:
                iv = _interval(r, section, metric)
                mark = _marks(report, section, metric, r.name)
                cells.append(
                    ""
                    if iv is None
                    else " ".join(cell(iv, unit)) + (f" ≠{','.join(mark)}" if mark else "")
                )
            lines.append(f"| {_md(title(metric, unit))} | " + " | ".join(cells) + " |")
    if report.critic_checks:
        lines += ["", "## The critic test's own checks", "", critic_note(report.settings), ""]
        lines += ["| check | accuracy |", "|---|---|"]
        lines += [
            f"| {_md(title(name))} | {' '.join(cell(iv, unit_of(name)))} |"
            for name, iv in report.critic_checks.items()
        ]
    lines += ["", "## Pictures", ""]
    lines += [f"![{s}](img/{_slug('bars ' + s)}.png)" for s in report.bar_charts]
    lines += [f"![{h}](img/{_slug('hist ' + h)}.png)" for h in report.histogram_charts]
    lines += ["", "## Samples", ""]
    for model, samples in report.samples.items():
        links = [
            f"[{s.id}]({s.midi})" + (f" ([audio]({s.audio}))" if s.audio else "") for s in samples
        ]
        lines.append(f"- {model}: " + ", ".join(links))
    return "\n".join(lines) + "\n"


CRITIC_NOTE = (
    "Sanity: the critic against real melodies of other held-out tunes (about 0.5 when the test "
    "is sound). Power: the prior (the supervised model) against real melodies; a tuned model's "
    "critic accuracy is judged beside it."
)


def critic_note(settings: dict[str, Any]) -> str:
    """:data:`CRITIC_NOTE` and, when the settings record it, the size each critic trained at."""
    size = settings.get("critic")
    if not isinstance(size, dict):
        return CRITIC_NOTE
    return (
        f"{CRITIC_NOTE} Each critic: {size['steps']} steps of {size['batch_size']} rows, "
        f"{size['channels']} channels."
    )


def _html_cell(iv: Interval | None, unit: Unit, marks: Sequence[str] = ()) -> str:
    """A table cell: the value, its interval in grey, the separation marks."""
    if iv is None:
        return "<td></td>"
    value, spread = cell(iv, unit)
    sep = f' <span class="mark">≠{",".join(marks)}</span>' if marks else ""
    return (
        f"<td{' class=sep' if marks else ''}>{html.escape(value)} "
        f'<span class="ci">{html.escape(spread)}</span>{sep}</td>'
    )


def _md(text: str) -> str:
    """A Markdown table cell's text: its pipes escaped (``KL(model || prior)``)."""
    return text.replace("|", "\\|")


def _summary(report: Report) -> str:
    s = report.settings
    parts = [
        f"{', '.join(f'{r.name} ({r.kind}, n={r.n})' for r in report.results)};",
        f"held-out reference: {report.reference_n} melodies; length {s.get('length')} steps;",
        f"seed {s.get('seed')}; {s.get('resamples')} bootstrap resamples,",
        f"{100 * float(s.get('confidence', 0.95)):.0f}% intervals;",
        f"prior {s.get('prior')}; reward preset {s.get('reward')}.",
        "≠X: the intervals of this cell and of column X do not overlap.",
    ]
    return " ".join(parts)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _img(png: bytes, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    extra = f' class="{cls}"' if cls else ""
    return f'<img{extra} alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def stylesheet() -> str:
    """The report's and listening page's CSS (package data)."""
    return resources.files("rlmusic.evaluation").joinpath("templates/report.css").read_text()


def html_page(report: Report) -> str:
    """The self-contained page: summary, table, charts, histograms, samples."""
    letters = report.letters
    e = html.escape
    head = "".join(f"<th>{letters[r.name]}: {e(r.name)}</th>" for r in report.results)
    body = []
    for section, metrics in rows(report):
        note = SECTION_NOTES.get(section, "")
        body.append(
            f'<tr class="section"><th colspan="{len(report.results) + 1}">{e(section)}'
            f' <span class="note">{e(note)}</span></th></tr>'
        )
        for metric in metrics:
            unit = row_unit(section, metric)
            cells = [
                _html_cell(
                    _interval(r, section, metric), unit, _marks(report, section, metric, r.name)
                )
                for r in report.results
            ]
            body.append(f"<tr><td>{e(title(metric, unit))}</td>{''.join(cells)}</tr>")
    charts = "".join(
        f"<h3>{e(s)}</h3>{_img(png, 'bar chart: ' + s, 'chart')}"
        for s, png in report.bar_charts.items()
    )
    hists = "".join(
        f"<h3>{e(h)}</h3>{_img(png, 'histogram: ' + h, 'chart')}"
        for h, png in report.histogram_charts.items()
    )
    sound = (
        f"Audio: {e(report.synth)}, 16-bit WAV files in audio/."
        if report.synth
        else "Audio: off (audio=false)."
    )
    critic_checks = ""
    if report.critic_checks:
        critic_rows = "".join(
            f"<tr><td>{e(title(name))}</td>{_html_cell(iv, unit_of(name))}</tr>"
            for name, iv in report.critic_checks.items()
        )
        critic_checks = (
            f'<h2>The critic test\'s own checks</h2><p class="note">{e(critic_note(report.settings))}</p>'
            f'<table id="critic-checks"><thead><tr><th>check</th><th>accuracy</th></tr>'
            f"</thead><tbody>{critic_rows}</tbody></table>"
        )
    samples = []
    for model, shown in report.samples.items():
        cards = []
        for s in shown:
            player = (
                f'<audio controls preload="metadata" src="{e(s.audio)}"></audio>' if s.audio else ""
            )
            cards.append(
                f'<div class="sample"><b>{e(s.id)}</b>{_img(s.roll, "piano roll " + s.id, "roll")}'
                f'{player}<a href="{e(s.midi)}" download>MIDI</a></div>'
            )
        samples.append(f'<h3>{e(model)}</h3><div class="samples">{"".join(cards)}</div>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rlmusic comparison</title><style>{stylesheet()}</style></head>
<body>
<h1>Comparison: {" vs ".join(e(r.name) for r in report.results)}</h1>
<p class="note">{e(_summary(report))} Made in {report.seconds:.0f} s.</p>
<h2>Metrics</h2>
<table id="metrics"><thead><tr><th>metric</th>{head}</tr></thead>
<tbody>{"".join(body)}</tbody></table>
{critic_checks}
<h2>Charts (bars: value; whiskers: interval)</h2>{charts}
<h2>Histograms against the held-out melodies (grey)</h2>{hists}
<h2>Samples</h2><p class="note">{sound}</p>{"".join(samples)}
</body></html>
"""


def write_report(report: Report, out: Path) -> dict[str, Path]:
    """``metrics.json``, ``report.md``, ``report.html`` and the PNGs in ``img/``."""
    out = Path(out)
    (out / "img").mkdir(parents=True, exist_ok=True)
    for section, png in report.bar_charts.items():
        (out / "img" / f"{_slug('bars ' + section)}.png").write_bytes(png)
    for name, png in report.histogram_charts.items():
        (out / "img" / f"{_slug('hist ' + name)}.png").write_bytes(png)
    paths = {
        "metrics": out / "metrics.json",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    paths["metrics"].write_text(json.dumps(metrics_json(report), indent=2, allow_nan=False))
    paths["markdown"].write_text(markdown(report))
    paths["html"].write_text(html_page(report), encoding="utf-8")
    return paths
