"""What ``rlmusic harmonise`` reports: how many melodies were harmonised or refused, whether
every soprano came back, and the voice-leading table of what it wrote.

The table is the one ``rlmusic evaluate`` prints for four-part pieces
(:func:`~rlmusic.evaluation.table_rows.table_for`, :class:`HarmonyStats`): every row with its
bootstrap interval over the pieces, counted in the normalised key (C major / A minor, before
the harmony goes back to each melody's key), so it reads beside Bach's held-out rates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlmusic.data.melody_input import Refusal, Soprano
from rlmusic.evaluation.bootstrap import bootstrap_weights
from rlmusic.evaluation.model_eval import Evaluation, format_interval_table
from rlmusic.evaluation.table_rows import table_for, table_intervals


@dataclass
class Harmonised:
    """One melody's harmonisations: tokens in C (n, 4 steps), the files written, and whether
    each soprano came back note for note."""

    soprano: Soprano
    pieces: np.ndarray
    files: list[Path]
    kept: list[bool]


@dataclass
class Summary:
    """Counts, the soprano check and the table columns (the harmoniser's; Bach's for heldout)."""

    harmonised: list[Harmonised]
    refused: list[Refusal]
    columns: list[Evaluation]
    bach: Evaluation | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def pieces(self) -> int:
        return sum(len(h.pieces) for h in self.harmonised)

    @property
    def kept(self) -> int:
        return sum(sum(h.kept) for h in self.harmonised)

    @property
    def kept_share(self) -> float:
        return self.kept / self.pieces if self.pieces else float("nan")

    def notes(self) -> tuple[int, int]:
        """(soprano notes that came back, soprano notes given), over every harmonisation."""
        given = sum(len(h.soprano.line) * len(h.pieces) for h in self.harmonised)
        kept = sum(len(h.soprano.line) * sum(h.kept) for h in self.harmonised)
        return kept, given

    def metrics(self) -> dict[str, float]:
        """Numbers a sweep may optimise: counts, the kept share and the harmoniser's rows."""
        rows = self.columns[0].table if self.columns else {}
        return {
            "written": float(len(self.harmonised)),
            "refused": float(len(self.refused)),
            "harmonisations": float(self.pieces),
            "soprano_kept": self.kept_share,
            **{str(row): float(value) for row, value in rows.items()},
        }

    def lines(self) -> list[str]:
        """The printed report: counts, refusals, the soprano check, the table."""
        kept_notes, given_notes = self.notes()
        out = [
            f"harmonised {len(self.harmonised)} melodies ({self.pieces} harmonisations), "
            f"refused {len(self.refused)}",
            *(f"refused {refusal}" for refusal in self.refused),
            f"soprano kept: {self.kept} of {self.pieces} harmonisations "
            f"({100 * self.kept_share:.1f}%), {kept_notes} of {given_notes} notes",
        ]
        if self.columns:
            out += [
                "",
                "voice leading (counted in C major / A minor, before transposing back):",
                format_interval_table(self.columns, self.bach),
            ]
        return out

    def markdown(self) -> str:
        settings = [f"- {key}: `{value}`" for key, value in self.settings.items()]
        return "\n".join(["# rlmusic harmonise", "", *settings, "", *self.lines()]) + "\n"

    def record(self) -> dict[str, Any]:
        """summary.json: settings, counts, each melody, each refusal, the table(s)."""
        kept_notes, given_notes = self.notes()
        return {
            **self.settings,
            "written": len(self.harmonised),
            "refused": len(self.refused),
            "harmonisations": self.pieces,
            "soprano_kept": {
                "harmonisations": self.kept,
                "of": self.pieces,
                "notes": kept_notes,
                "of_notes": given_notes,
            },
            "melodies": [
                {
                    "name": h.soprano.name,
                    "source": h.soprano.source,
                    "key": h.soprano.key,
                    "shift_to_c": h.soprano.shift,
                    "octave_move": h.soprano.octave,
                    "steps": h.soprano.steps,
                    "dropped_notes": h.soprano.dropped_notes,
                    "files": [str(f) for f in h.files],
                    "soprano_kept": h.kept,
                }
                for h in self.harmonised
            ],
            "refusals": [{"source": r.source, "reason": r.reason} for r in self.refused],
            "tables": [e.as_dict() for e in [*self.columns, *([self.bach] if self.bach else [])]],
        }

    def write(self, folder: Path) -> tuple[Path, Path]:
        """``summary.md`` and ``summary.json`` in ``folder``."""
        md, js = Path(folder) / "summary.md", Path(folder) / "summary.json"
        md.write_text(self.markdown())
        js.write_text(json.dumps(self.record(), indent=2, default=_plain))
        return md, js


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def table_column(
    name: str, pieces: Sequence[np.ndarray], encoding: Any, resamples: int = 1000, seed: int = 0
) -> Evaluation:
    """One column of the voice-leading table for pieces of any lengths: every row, and its
    bootstrap interval over the pieces when ``resamples`` > 0."""
    table = table_for(encoding)
    pieces = [np.asarray(p) for p in pieces]
    stats = table.count(pieces, encoding, None)
    intervals = {}
    if resamples > 0 and pieces:
        weights = bootstrap_weights(len(pieces), resamples, seed)
        intervals = table_intervals(table.per_piece(pieces, encoding, None), weights)
    steps = int(np.median([encoding.steps_in(p) for p in pieces])) if pieces else 0
    return Evaluation(name, len(pieces), steps, stats.table(), intervals=intervals)


__all__ = ["Harmonised", "Summary", "table_column"]
