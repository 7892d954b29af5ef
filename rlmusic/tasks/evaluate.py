"""`rlmusic evaluate`: RL Tuner's table and realism measures for one or more checkpoints.

``rlmusic evaluate checkpoint=pretrained:note_lstm n=1000 length=32`` samples ``n``
compositions (seeded), scores them against the supervised prior and held-out corpus melodies
(openings of the test split of ``data.split_seed``: the run's seed draws the compositions, not
the held-out tunes), and prints a Markdown table beside the paper's Note RNN and Q columns;
``compare_to=[path, ...]`` adds more columns. Results go to ``evaluation.json``, one entry per
checkpoint, each with the held-out split it was scored against (``data_split``).

Four-part models (``encoding.kind: chorale``) get the voice-leading table instead, every value
with its bootstrap interval (``bootstrap.resamples``), beside real Bach's held-out openings
counted by the same code (the "real (held-out)" column): ``rlmusic evaluate
checkpoint=pretrained:chorale_transformer data=chorales``. ``length`` counts time steps in both
kinds (``encoding.tokens_for(length)`` tokens); by default the checkpoint's own piece length
(32 steps for a melody, 64 for a chorale).

A harmoniser (``pretrained:chorale_harmoniser``, or a run tuned from it) harmonises the held-out
openings' sopranos (every model the same ones), its prior reads each soprano first, and log p
and KL average over the voices it chose; Bach's column is judged given his soprano.

The prior that judges realism follows the checkpoint (``prior: null``): the KL reference a
fine-tuned checkpoint records, else the checkpoint itself; the log names it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from rlmusic.data.harmonisation import forced_tokens, sopranos
from rlmusic.evaluation.columns import soprano_conditions
from rlmusic.evaluation.model_eval import (
    Evaluation,
    evaluate_model,
    evaluate_samples,
    format_interval_table,
    format_table,
)
from rlmusic.evaluation.objective import held_out
from rlmusic.evaluation.table_rows import table_for
from rlmusic.models import load_generator
from rlmusic.models.registry import judging_prior
from rlmusic.runtime import run_folder

log = logging.getLogger(__name__)

REAL_COLUMN = "real (held-out)"


def run(cfg: DictConfig, output_dir: Path | None = None) -> list[Evaluation]:
    specs = [str(cfg.checkpoint), *[str(s) for s in (cfg.get("compare_to") or [])]]
    prior_spec = str(cfg.prior) if cfg.get("prior") else judging_prior(specs[0])
    log.info("prior (judges log p and KL): %s", prior_spec)
    prior, encoding = load_generator(prior_spec)
    length = int(cfg.length) if cfg.get("length") else int(encoding.melody_length)
    held = held_out(cfg, encoding) if cfg.get("data") else None
    reference = held.openings(encoding.tokens_for(length)) if held else None
    beside_real = table_for(encoding).beside == "heldout"
    boot = cfg.get("bootstrap") or {}
    resamples = int(boot.get("resamples", 1000)) if beside_real else 0
    conditions = soprano_conditions([*specs, prior_spec], reference or [], encoding, "evaluate")
    evaluations = []
    for spec in specs:
        model, model_encoding = load_generator(spec)
        if model_encoding != encoding:
            raise ValueError(f"{spec}: its encoding differs from the prior's ({prior_spec})")
        evaluation = evaluate_model(
            spec, model, encoding, int(cfg.n), length, int(cfg.seed), prior, reference, resamples,
            conditions,
        )  # fmt: skip
        log.info("%s: %d compositions in %.1f s", spec, evaluation.n, evaluation.seconds)
        evaluations.append(evaluation)
    real = None
    if beside_real and reference:  # the real pieces counted by the same code, same intervals
        real_tokens = np.stack(reference)
        # under a harmoniser prior, Bach's lower voices are judged given his soprano
        forced = forced_tokens(sopranos(real_tokens, encoding), encoding) if conditions else None
        real = evaluate_samples(
            REAL_COLUMN, real_tokens, encoding, prior=prior, resamples=resamples,
            seed=int(cfg.seed), forced=forced,
        )  # fmt: skip
    print(format_interval_table(evaluations, real) if beside_real else format_table(evaluations))
    output_dir = run_folder(output_dir)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "evaluation.json").write_text(
            json.dumps(
                [
                    {**e.as_dict(), "data_split": held.record if held else None}
                    for e in [*evaluations, *([real] if real else [])]
                ],
                indent=2,
            )
        )
    return evaluations
