"""A corpus summary: kept and rejected counts by source and reason, tokens, histograms."""

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
    for tune in corpus.tokens:
        notes = encoding.decode(tune)
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
