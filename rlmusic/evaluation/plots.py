"""The report's pictures, drawn with matplotlib's object API (Agg, no pyplot state, no display):
bar charts with interval error bars, histograms over the held-out melodies', piano rolls.
Each function returns PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from rlmusic.data.encodings import Encoding
from rlmusic.evaluation.bootstrap import Interval
from rlmusic.evaluation.table_rows import title, unit_of

REFERENCE_COLOUR = "#9a9a9a"
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def colour(index: int) -> str:
    """The colour of the ``index``-th column, the same in every picture."""
    return _PALETTE[index % len(_PALETTE)]


def png(fig: Figure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes. Margins are set by each figure: matplotlib's tight layout
    measures every label's extent and took most of a report's time."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def interval_bars(
    rows: Mapping[str, Mapping[str, Interval]], models: Sequence[str], columns: int = 4
) -> bytes:
    """One small bar chart per metric, titled with its unit as the table names it (a share in
    percent): a bar per model at its value, the whiskers its interval; a model without the
    metric (e.g. KL for real melodies) has no bar.

    Args:
        rows: metric -> model -> interval.
        models: every model, in column order (it fixes the colours).
        columns: charts per line.
    """
    names = list(rows)
    lines = max(1, math.ceil(len(names) / columns))
    fig = Figure(figsize=(3.0 * columns, 2.3 * lines))
    axes = np.atleast_1d(fig.subplots(lines, columns)).ravel()
    for ax, metric in zip(axes, names):
        unit = unit_of(metric)
        for i, model in enumerate(models):
            interval = rows[metric].get(model)
            if interval is None or not np.isfinite(interval.value):
                continue
            interval = Interval(*(unit.scaled(x) for x in vars(interval).values()))
            low = max(interval.value - interval.low, 0.0) if np.isfinite(interval.low) else 0.0
            high = max(interval.high - interval.value, 0.0) if np.isfinite(interval.high) else 0.0
            ax.bar(i, interval.value, color=colour(i), yerr=[[low], [high]], capsize=4, width=0.7)
        ax.set_title(title(metric, unit), fontsize=8)
        ax.set_xticks(range(len(models)), models, fontsize=7, rotation=20)
        ax.tick_params(axis="y", labelsize=7)
        ax.axhline(0.0, color="black", linewidth=0.5)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    fig.subplots_adjust(
        left=0.06,
        right=0.98,
        top=1 - 0.3 / (2.3 * lines),
        bottom=0.7 / (2.3 * lines),
        wspace=0.35,
        hspace=0.75,
    )
    return png(fig)


def histogram_overlays(
    title: str,
    labels: Sequence[str],
    histograms: Mapping[str, np.ndarray],
    reference: np.ndarray,
    models: Sequence[str],
) -> bytes:
    """One panel per model: the held-out melodies' histogram in grey bars, the model's as a
    coloured line over it (both normalised)."""
    fig = Figure(figsize=(3.4 * len(models), 2.6))
    axes = np.atleast_1d(fig.subplots(1, len(models), sharey=True)).ravel()
    x = np.arange(len(labels))
    for i, (ax, model) in enumerate(zip(axes, models)):
        ax.bar(x, reference, color=REFERENCE_COLOUR, width=0.85, label="held-out")
        ax.step(x, histograms[model], where="mid", color=colour(i), linewidth=2, label=model)
        ax.set_title(f"{title}: {model}", fontsize=9)
        ax.set_xticks(x, labels, fontsize=6, rotation=90 if len(labels) > 13 else 0)
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.88, bottom=0.2, wspace=0.08)
    return png(fig)


def _pitch_name(pitch: int) -> str:
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


# one colour per voice of a many-voice piece (soprano, alto, tenor, bass), apart from the
# columns' palette so a voice is never mistaken for a model
VOICE_COLOURS = ("#d62728", "#2ca02c", "#1f77b4", "#8c564b", "#9467bd", "#ff7f0e")


def piano_roll(tokens: np.ndarray, encoding: Encoding, colour_name: str = _PALETTE[0]) -> bytes:
    """A piano roll of one piece: a box per note (pitch against 16th-note steps), bar lines,
    and the pitch axis labelled at its C's and at the notes' own extremes.

    A melody is drawn in ``colour_name``; a piece of several voices (a chorale) in one colour
    per voice (:data:`VOICE_COLOURS`), with a legend naming the voices.
    """
    tokens = np.asarray(tokens)
    voices = encoding.decode_voices(tokens)
    several = len(voices) > 1
    steps = max(encoding.steps_in(tokens), 1)
    fig = Figure(figsize=(4.2, 2.4 if several else 1.9))
    ax = fig.subplots()
    pitches = [n.pitch for notes in voices for n in notes] or [60]
    low, high = min(pitches) - 2, max(pitches) + 2
    for v, notes in enumerate(voices):
        fill = VOICE_COLOURS[v % len(VOICE_COLOURS)] if several else colour_name
        for note in notes:
            ax.add_patch(
                Rectangle((note.start, note.pitch - 0.4), note.end - note.start, 0.8, color=fill)
            )
    for bar in range(0, steps + 1, encoding.steps_per_bar):
        ax.axvline(bar, color="black", linewidth=0.8)
    for beat in range(0, steps + 1, encoding.steps_per_quarter):
        ax.axvline(beat, color="#dddddd", linewidth=0.5, zorder=0)
    ax.set_xlim(0, steps)
    ax.set_ylim(low, high)
    ticks = {p for p in range(low, high + 1) if p % 12 == 0}
    for extreme in (min(pitches), max(pitches)):  # labelled unless a C label is too close
        if all(abs(extreme - t) > 2 for t in ticks):
            ticks.add(extreme)
    ticks = sorted(ticks)
    ax.set_yticks(ticks, [_pitch_name(p) for p in ticks], fontsize=6)
    ax.set_xticks(range(0, steps + 1, encoding.steps_per_bar))
    ax.tick_params(axis="x", labelsize=6)
    if several:
        handles = [
            Rectangle((0, 0), 1, 1, color=VOICE_COLOURS[v % len(VOICE_COLOURS)])
            for v in range(len(voices))
        ]
        ax.legend(
            handles, list(encoding.voice_names), fontsize=6, ncol=len(voices), frameon=False,
            loc="lower center", bbox_to_anchor=(0.5, 1.0), handlelength=1.0,
        )  # fmt: skip
    fig.subplots_adjust(left=0.1, right=0.98, top=0.88 if several else 0.95, bottom=0.13)
    return png(fig, dpi=80)
