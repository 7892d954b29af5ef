"""Evaluate a generator: sample N compositions, then RL Tuner's table plus realism measures.

Realism beside the rule statistics (they reward busyness and noise on their own):

* **log p per onset** — the mean of ``log p_prior(x_t | x_<t)`` over note-onset steps under the
  supervised prior (per token would punish the denser rhythm the motif rule asks for).
* **log p per token** and **KL per token** — ``mean(log pi(x_t) - log p_prior(x_t))`` over the
  sampled tokens: a Monte-Carlo estimate of KL(pi || prior) per step.
* **distinct share** and **onsets per composition** (real 32-step openings have about 12-14).
* **interval L1** (13 bins of ``|interval|``: 0..11 semitones and >= 12, the target's measure),
  the earlier **signed interval L1** (27 bins) and the **duration L1** (note durations in
  steps, 1..15 and >= 16) to held-out corpus melodies (openings of the test split).

The table's primary rows are counted as the original evaluation counted them; the earlier
ways of counting some rows follow as clearly named variants (:mod:`rlmusic.rewards.statistics`
defines every one). Statistics are keyed by :class:`~rlmusic.rewards.statistics.Statistic`;
their text appears only in the printed table and :meth:`Evaluation.as_dict`.

Four-part pieces get the voice-leading table instead
(:mod:`rlmusic.rewards.harmony_statistics`): the encoding's kind picks it
(:func:`~rlmusic.evaluation.table_rows.table_for`), and it prints every value with its
bootstrap interval beside real Bach's held-out rates (:func:`format_interval_table`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.bootstrap import Interval, bootstrap_weights
from rlmusic.evaluation.metrics import abs_interval_l1, distinct_share, duration_l1, interval_l1
from rlmusic.evaluation.table_rows import cell, row_name, table_for, table_intervals, title, unit_of
from rlmusic.models.base import Generator, sequence_log_probs
from rlmusic.models.conditions import Conditions, seeded_conditions
from rlmusic.models.sampling import sample_seeded
from rlmusic.rewards.statistics import KeySpec, Statistic


@dataclass
class Evaluation:
    """One model's numbers on ``n`` compositions of ``length`` steps.

    ``table``: the paper's statistics, counted as the original did; ``variants``: earlier ways
    of counting some of them (per onset, "next note goes back"); ``realism``: the measures to
    read beside them, by name (onsets per piece by its :class:`Statistic`).
    """

    name: str
    n: int
    length: int
    table: dict[Statistic, float]
    realism: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    variants: dict[Statistic, float] = field(default_factory=dict)
    intervals: dict[str, Interval] = field(default_factory=dict)  # by shown text; {} when off

    def as_dict(self) -> dict:
        """A record for people (``final_eval.json``): every row under its shown text (and the
        table's bootstrap intervals, when measured)."""
        rows = {**self.table, **self.variants, **self.realism}
        record = {
            "name": self.name,
            "n": self.n,
            "length": self.length,
            **{row_name(row): value for row, value in rows.items()},
        }
        if self.intervals:
            record["intervals"] = {row: iv.as_dict() for row, iv in self.intervals.items()}
        return record


@torch.no_grad()
def prior_log_probs(
    prior: Generator, tokens: np.ndarray, batch_size: int = 500, prefix: np.ndarray | None = None
) -> np.ndarray:
    """(N, T) log p_prior of each token; ``prefix`` (N, P): a harmoniser's conditioning,
    read before each piece."""
    prior.eval()
    out = [
        sequence_log_probs(
            prior,
            torch.as_tensor(tokens[i : i + batch_size], dtype=torch.long),
            None if prefix is None else torch.as_tensor(prefix[i : i + batch_size]),
        )
        for i in range(0, len(tokens), batch_size)
    ]
    return torch.cat(out).numpy()


def evaluate_samples(
    name: str,
    tokens: np.ndarray,
    encoding: MelodyEncoding,
    policy_logp: np.ndarray | None = None,
    prior: Generator | None = None,
    reference: list[np.ndarray] | None = None,
    key: KeySpec | None = None,
    resamples: int = 0,
    seed: int = 0,
    forced: np.ndarray | None = None,
) -> Evaluation:
    """The table, its variants and the realism measures for given samples (N, T tokens);
    ``resamples`` > 0: the table's bootstrap intervals too (resampling pieces, ``seed``).

    ``forced`` (N, T): a harmoniser's given tokens (``-1`` where it chose;
    :func:`rlmusic.data.harmonisation.forced_tokens`): the prior reads the same soprano first
    (:func:`rlmusic.data.harmonisation.conditioning_prefix`), and log p and KL average over
    the tokens the model chose."""
    table = table_for(encoding)
    stats = table.count(tokens, encoding, key)
    realism: dict[str, float] = {
        "distinct share": distinct_share(tokens),
        Statistic.ONSETS_PER_PIECE: stats.onsets_per_composition(),
    }
    if reference is not None:
        realism["interval L1 to held-out"] = abs_interval_l1(tokens, reference, encoding)
        realism["interval L1 to held-out (signed, 27 bins)"] = interval_l1(
            tokens, reference, encoding
        )
        realism["duration L1 to held-out"] = duration_l1(tokens, reference, encoding)
    if prior is not None:
        from rlmusic.data.harmonisation import harmoniser_reading

        prefix, chosen = harmoniser_reading(tokens, encoding, harmonising=forced is not None)
        prior_logp = prior_log_probs(prior, tokens, prefix=prefix)
        onsets = encoding.is_onset(tokens) & chosen
        realism["prior log p per onset"] = (
            float(prior_logp[onsets].mean()) if onsets.any() else float("nan")
        )
        realism["prior log p per token"] = float(prior_logp[chosen].mean())
        if policy_logp is not None:
            realism["KL to prior per token"] = float((policy_logp - prior_logp)[chosen].mean())
    intervals = {}
    if resamples > 0 and len(tokens):
        weights = bootstrap_weights(len(tokens), resamples, seed)
        intervals = table_intervals(table.per_piece(tokens, encoding, key), weights)
    steps = tokens.shape[1] // encoding.tokens_per_step
    return Evaluation(
        name, len(tokens), steps, stats.table(), realism, variants=stats.variants(),
        intervals=intervals,
    )  # fmt: skip


def evaluate_model(
    name: str,
    model: Generator,
    encoding: MelodyEncoding,
    n: int = 1000,
    length: int = 32,
    seed: int = 0,
    prior: Generator | None = None,
    reference: list[np.ndarray] | None = None,
    resamples: int = 0,
    conditions: Conditions | None = None,
) -> Evaluation:
    """``n`` seeded pieces of ``length`` time steps (``encoding.tokens_for(length)`` tokens)
    from ``model``, evaluated (:func:`evaluate_samples`); a harmoniser harmonises sopranos
    drawn from ``conditions`` (the prior, a harmoniser too, reads them first)."""
    started = time.perf_counter()
    size = encoding.tokens_for(length)
    tokens, logp = sample_seeded(model, n, size, seed, conditions=conditions)
    forced = seeded_conditions(conditions, n, seed)[1] if conditions is not None else None
    evaluation = evaluate_samples(
        name, tokens, encoding, logp, prior, reference, resamples=resamples, seed=seed,
        forced=forced,
    )  # fmt: skip
    evaluation.seconds = time.perf_counter() - started
    return evaluation


_S = Statistic
PAPER_TABLE = {  # RL Tuner paper (Jaques et al. 2017), 100,000 compositions each, counted as
    # the original evaluation counted (rl_tuner_eval_metrics.py): "% of notes" rows over N x T
    _S.NOTES_EXCESSIVELY_REPEATED: (0.633, 0.0, 0.0002, 0.0003),
    _S.AUTOCORRELATION_LAG_1: (-0.16, -0.11, -0.10, 0.55),
    _S.AUTOCORRELATION_LAG_2: (0.14, 0.03, -0.01, 0.31),
    _S.AUTOCORRELATION_LAG_3: (-0.13, 0.03, 0.01, 0.17),
    _S.NOTES_NOT_IN_KEY: (0.001, 0.01, 0.006, 0.287),
    _S.TONIC_START: (0.009, 0.288, 0.287, 0.0),
    _S.LEAPS_RESOLVED: (0.772, 0.911, 0.90, 0.522),
    _S.UNIQUE_MAX: (0.647, 0.564, 0.594, 0.371),
    _S.UNIQUE_MIN: (0.494, 0.519, 0.583, 0.565),
    _S.NOTES_IN_MOTIF: (0.059, 0.757, 0.738, 0.693),
    _S.NOTES_IN_REPEATED_MOTIF: (0.00007, 0.0011, 0.0009, 0.0001),
}
PAPER_COLUMNS = ("paper Note RNN", "paper Q")


def _fmt(value: float | None, percent: bool) -> str:
    if value is None or value != value:  # missing or nan
        return "n/a"
    if percent:
        return f"{100 * value:.2f}%"
    return f"{value:.3f}"


def format_table(evaluations: list[Evaluation], with_paper: bool = True) -> str:
    """A Markdown table: one column per evaluated model, the paper's Note RNN and Q beside.

    The paper's rows first (counted as the original did), then the variants, then realism.
    """
    header = ["metric", *(e.name for e in evaluations)]
    if with_paper:
        header += list(PAPER_COLUMNS)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    blank = ["", ""] if with_paper else []
    for row in PAPER_TABLE:
        percent = unit_of(row).percent
        cells = [_fmt(e.table.get(row), percent) for e in evaluations]
        if with_paper:
            cells += [_fmt(PAPER_TABLE[row][0], percent), _fmt(PAPER_TABLE[row][1], percent)]
        lines.append(f"| {row_name(row)} | " + " | ".join(cells) + " |")
    for row in dict.fromkeys(k for e in evaluations for k in e.variants):  # first-seen order
        cells = [_fmt(e.variants.get(row), unit_of(row).percent) for e in evaluations]
        lines.append(f"| {row_name(row)} | " + " | ".join(cells + blank) + " |")
    # realism as plain numbers, in the order of the names shown
    for row in sorted({k for e in evaluations for k in e.realism}, key=row_name):
        cells = [_fmt(e.realism.get(row), percent=False) for e in evaluations]
        lines.append(f"| {row_name(row)} | " + " | ".join(cells + blank) + " |")
    return "\n".join(lines)


def _cell(evaluation: Evaluation, row: object) -> str:
    """``value (low–high)`` in the row's unit (the compare report's cell)."""

    shown = row_name(row)
    iv = evaluation.intervals.get(shown)
    if iv is None:
        value = evaluation.table.get(row, float("nan"))
        iv = Interval(value, float("nan"), float("nan"))
    return " ".join(cell(iv, unit_of(row)))


def format_interval_table(evaluations: list[Evaluation], real: Evaluation | None) -> str:
    """A Markdown table of the statistics with bootstrap intervals, one column per model and
    the real held-out pieces' column beside them (the chorale table)."""
    columns = [*evaluations, *([real] if real is not None else [])]
    header = ["metric", *(e.name for e in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in dict.fromkeys(k for e in columns for k in e.table):
        cells = [_cell(e, row) for e in columns]
        lines.append(f"| {title(row)} | " + " | ".join(cells) + " |")
    for row in sorted({k for e in columns for k in e.realism}, key=row_name):
        cells = [_fmt(e.realism.get(row), percent=False) for e in columns]
        lines.append(f"| {row_name(row)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
