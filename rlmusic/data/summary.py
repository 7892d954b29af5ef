"""A corpus summary: kept and rejected counts by source and reason, tokens, histograms.

Encoding-aware: steps and bars count time (a chorale step is four tokens), and a corpus of
several voices also gets each voice's notes and pitch range.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from rlmusic.data.corpus import SPLITS, Corpus

DURATION_BINS = (1, 2, 3, 4, 6, 8, 12, 16)  # note lengths in steps; the last bin is ">= 16"
NAMES_SHOWN_PER_REASON = 10


@dataclass
class CorpusSummary:
    kept_by_source: dict[str, int]
    rejected_by_reason: dict[str, int]
    rejected_names: dict[str, list[str]]  # reason -> inputs (all of them)
    split_sizes: dict[str, int]
    tokens: int
    notes: int
    folded_notes: int
    pitch_histogram: dict[int, int]  # MIDI pitch -> onsets
    duration_histogram: dict[str, int]  # bin label -> notes
    keys: dict[str, int] = field(default_factory=dict)
    encoding_kind: str = "melody"
    voices: tuple[str, ...] = ("melody",)
    steps: int = 0  # time steps (tokens / tokens per step)
    steps_per_bar: int = 16
    voice_notes: dict[str, int] = field(default_factory=dict)  # voice -> notes
    voice_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # voice -> (low, high)

    @property
    def bars(self) -> float:
        return self.steps / self.steps_per_bar if self.steps_per_bar else 0.0

    @property
    def kept(self) -> int:
        return sum(self.kept_by_source.values())

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def folded_share(self) -> float:
        return self.folded_notes / self.notes if self.notes else 0.0

    def as_dict(self) -> dict:
        return {
            "kept": self.kept,
            "kept_by_source": self.kept_by_source,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason,
            "split_sizes": self.split_sizes,
            "tokens": self.tokens,
            "notes": self.notes,
            "folded_share": self.folded_share,
            "pitch_histogram": {str(k): v for k, v in self.pitch_histogram.items()},
            "duration_histogram": self.duration_histogram,
            "detected_keys": self.keys,
            "encoding": self.encoding_kind,
            "voices": list(self.voices),
            "steps": self.steps,
            "bars": self.bars,
            "voice_notes": self.voice_notes,
            "voice_ranges": {v: list(r) for v, r in self.voice_ranges.items()},
        }


def _duration_label(index: int) -> str:
    if index == len(DURATION_BINS) - 1:
        return f">={DURATION_BINS[-1]}"
    low, high = DURATION_BINS[index], DURATION_BINS[index + 1] - 1
    return str(low) if low == high else f"{low}-{high}"


def summarize(corpus: Corpus) -> CorpusSummary:
    encoding = corpus.encoding
    pitch_counts: Counter[int] = Counter()
    durations = np.zeros(len(DURATION_BINS), dtype=np.int64)
    voice_notes: Counter[str] = Counter()
    voice_pitches: dict[str, list[int]] = {}
    steps = 0
    for tune in corpus.tokens:
        steps += encoding.steps_in(tune)
        by_voice = encoding.decode_voices(tune)
        for name, line in zip(encoding.voice_names, by_voice, strict=True):
            voice_notes[name] += len(line)
            if line:
                low, high = min(n.pitch for n in line), max(n.pitch for n in line)
                old = voice_pitches.setdefault(name, [low, high])
                voice_pitches[name] = [min(old[0], low), max(old[1], high)]
        notes = [n for line in by_voice for n in line]
        pitch_counts.update(n.pitch for n in notes)
        lengths = np.array([n.end - n.start for n in notes])
        if len(lengths):
            durations += np.bincount(
                np.searchsorted(DURATION_BINS, lengths, side="right") - 1,
                minlength=len(DURATION_BINS),
            )
    rejected_names: dict[str, list[str]] = {}
    for name, reason in corpus.rejected:
        rejected_names.setdefault(reason.split(":")[0], []).append(f"{name} ({reason})")
    meta = corpus.metadata
    return CorpusSummary(
        kept_by_source=dict(Counter(meta["source"].tolist())) if len(corpus) else {},
        rejected_by_reason={k: len(v) for k, v in sorted(rejected_names.items())},
        rejected_names=rejected_names,
        split_sizes={s: int((corpus.split == s).sum()) for s in SPLITS},
        tokens=int(sum(len(t) for t in corpus.tokens)),
        notes=int(meta["notes"].sum()) if len(corpus) else 0,
        folded_notes=int(meta["folded_notes"].sum()) if len(corpus) else 0,
        pitch_histogram=dict(sorted(pitch_counts.items())),
        duration_histogram={_duration_label(i): int(c) for i, c in enumerate(durations)},
        keys=dict(Counter(meta["key"].tolist()).most_common()) if len(corpus) else {},
        encoding_kind=encoding.kind,
        voices=tuple(encoding.voice_names),
        steps=steps,
        steps_per_bar=encoding.steps_per_bar,
        voice_notes={v: voice_notes[v] for v in encoding.voice_names},
        voice_ranges={v: (r[0], r[1]) for v, r in voice_pitches.items()},
    )


def _bar(count: int, largest: int, width: int = 40) -> str:
    return "#" * max(1 if count else 0, round(width * count / largest)) if largest else ""


def format_summary(summary: CorpusSummary, show_all_rejected: bool = False) -> str:
    """A plain-text report for the terminal."""
    lines = [f"tunes kept: {summary.kept}"]
    lines += [f"  {source:<10} {count:>7}" for source, count in summary.kept_by_source.items()]
    lines.append(
        "split: " + ", ".join(f"{split} {size}" for split, size in summary.split_sizes.items())
    )
    lines.append(
        f"tokens: {summary.tokens}   notes: {summary.notes}   "
        f"outside the pitch range before folding: {100 * summary.folded_share:.2f}% of notes"
    )
    lines.append(
        f"steps: {summary.steps}   bars: {summary.bars:.1f} ({summary.steps_per_bar} steps a bar)"
    )
    if len(summary.voices) > 1:
        lines.append(
            f"voices ({summary.encoding_kind}, {len(summary.voices)} tokens a step): "
            + ", ".join(
                f"{v} {summary.voice_notes.get(v, 0)} notes, MIDI "
                + ("{}..{}".format(*summary.voice_ranges[v]) if v in summary.voice_ranges else "-")
                for v in summary.voices
            )
        )
    lines.append(f"tunes rejected: {summary.rejected}")
    for reason, count in summary.rejected_by_reason.items():
        lines.append(f"  {reason}: {count}")
        names = summary.rejected_names[reason]
        shown = names if show_all_rejected else names[:NAMES_SHOWN_PER_REASON]
        lines += [f"    - {name}" for name in shown]
        if len(names) > len(shown):
            lines.append(f"    ... and {len(names) - len(shown)} more (all are in the log)")
    if summary.pitch_histogram:
        lines.append("pitch histogram (note onsets per MIDI pitch):")
        largest = max(summary.pitch_histogram.values())
        lines += [
            f"  {pitch:>3} {count:>8} {_bar(count, largest)}"
            for pitch, count in summary.pitch_histogram.items()
        ]
    if summary.notes:
        lines.append("duration histogram (notes by length in grid steps):")
        largest = max(summary.duration_histogram.values())
        lines += [
            f"  {label:>5} {count:>8} {_bar(count, largest)}"
            for label, count in summary.duration_histogram.items()
        ]
    return "\n".join(lines)
