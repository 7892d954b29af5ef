"""The end-of-run evaluation a sweep optimises: music measured, not reward.

``rlmusic finetune`` with ``final_eval.enabled=true`` (or an ``objective`` that names an
``eval/*`` metric) samples ``final_eval.n`` compositions from the tuned policy and scores them
exactly as ``rlmusic evaluate`` does (:func:`rlmusic.evaluation.model_eval.evaluate_samples`):
RL Tuner's table in the reward's key, the realism measures under the run's KL reference, and
the interval / duration histograms against held-out corpus melodies (openings of the ``data``
group's test split). Every row lands in the run's metrics as ``eval/<row>``, so

    rlmusic finetune -m objective=eval/interval_l1 objective_direction=minimize ...

optimises how close the tuned model's intervals are to real tunes. ``final_eval.critic.enabled=true``
(or ``objective=eval/critic_accuracy``) adds the two-sample critic test of ``rlmusic compare``
(:mod:`rlmusic.evaluation.critic_test`, its default size) as ``eval/critic_accuracy``. The
realism rows have short
names (:data:`SHORT_NAMES`: ``eval/interval_l1``, ``eval/duration_l1``, ``eval/kl_per_token``,
...); the table's rows are their names in snake case (``eval/notes_in_motif``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rlmusic.data.encoding import FIRST_PITCH_TOKEN, MelodyEncoding
from rlmusic.data.prepare import prepare_corpus
from rlmusic.evaluation.checks import REFERENCE_LOGP_METRIC
from rlmusic.evaluation.critic_test import CriticTest, CriticTestConfig
from rlmusic.evaluation.metrics import KeySpec
from rlmusic.evaluation.model_eval import Evaluation, evaluate_samples
from rlmusic.models.sampling import sample_seeded

log = logging.getLogger(__name__)

EVAL_PREFIX = "eval/"
CRITIC_METRIC = EVAL_PREFIX + "critic_accuracy"  # the two-sample critic test's accuracy
FINAL_EVAL_FILE = "final_eval.json"

# The realism rows of :class:`Evaluation` under short metric names; any other row is its name
# in snake case ("notes in motif" -> eval/notes_in_motif).
SHORT_NAMES: dict[str, str] = {
    "interval L1 to held-out": "interval_l1",
    "interval L1 to held-out (signed, 27 bins)": "signed_interval_l1",
    "duration L1 to held-out": "duration_l1",
    "distinct share": "distinct_share",
    "onsets per composition": "onsets_per_piece",
    "prior log p per onset": "prior_logp_per_onset",
    "prior log p per token": "prior_logp_per_token",
    "KL to prior per token": "kl_per_token",
}


def held_out_tunes(cfg: Any, encoding: MelodyEncoding) -> list[np.ndarray]:
    """Every whole test-split tune of ``cfg.data``: what no shipped model trained on."""
    return list(prepare_corpus(cfg["data"], encoding, progress=False).tunes("test"))


def held_out_openings(cfg: Any, encoding: MelodyEncoding, length: int) -> list[np.ndarray]:
    """The first ``length`` steps of every test-split tune of ``cfg.data`` at least that long:
    the held-out melodies the interval and duration histograms are compared with."""
    return [t[:length] for t in held_out_tunes(cfg, encoding) if len(t) >= length]


def metric_name(row: str) -> str:
    """``eval/<name>`` for a row of an :class:`Evaluation`.

    >>> metric_name("interval L1 to held-out"), metric_name("notes in motif (per onset)")
    ('eval/interval_l1', 'eval/notes_in_motif_per_onset')
    """
    short = SHORT_NAMES.get(row) or re.sub(r"[^a-z0-9]+", "_", row.lower()).strip("_")
    return EVAL_PREFIX + short


def evaluation_metrics(evaluation: Evaluation) -> dict[str, float]:
    """Every row of ``evaluation`` (table, variants, realism) as ``eval/<row>``."""
    rows = {**evaluation.table, **evaluation.variants, **evaluation.realism}
    return {metric_name(row): float(value) for row, value in rows.items()}


def final_eval_wanted(cfg: Mapping[str, Any]) -> bool:
    """True when ``final_eval.enabled`` is set or the run's ``objective`` is an ``eval/*``
    metric (a sweep that optimises one must never find it missing)."""
    node = cfg.get("final_eval") or {}
    objective = str(cfg.get("objective") or "")
    return bool(node.get("enabled", False)) or objective.startswith(EVAL_PREFIX)


def critic_wanted(cfg: Mapping[str, Any]) -> bool:
    """True when ``final_eval.critic`` is set or the run's ``objective`` is the critic's."""
    node = (cfg.get("final_eval") or {}).get("critic") or {}
    return bool(node.get("enabled", False)) or str(cfg.get("objective") or "") == CRITIC_METRIC


def playing_policy(result: Any, device: Any = "cpu") -> nn.Module:
    """The policy a fine-tuning result plays: what its ``final/*`` metrics sampled.

    ``result`` is a :class:`rlmusic.algos.setup.FinetuneResult`. Its ``tuned.safetensors``
    records the policy it trained (RL Tuner's G-learning: ``p_prior * exp(G)``; Psi-learning:
    ``softmax(Psi / c_T)``; see :mod:`rlmusic.models.policy`), which ``load_generator`` builds.
    """
    from rlmusic.models import load_generator

    model, _ = load_generator(str(result.tuned), device=device)
    return model


def _on_cpu(module: nn.Module) -> nn.Module:
    """``module``, or a CPU copy of it: the realism rows score the sampled (CPU) tokens."""
    params = next(iter(module.parameters()), None)
    if params is None or params.device.type == "cpu":
        return module
    return copy.deepcopy(module).cpu()


def final_evaluation(cfg: Mapping[str, Any], result: Any, setup: Any) -> dict[str, float]:
    """The end-of-run evaluation of a fine-tuning run as ``eval/*`` metrics ({} when off).

    Args:
        cfg: the finetune config: ``final_eval`` ({enabled, n, seed, data_seed}), ``data``
            (the held-out melodies: its test split, split with ``final_eval.data_seed``),
            ``objective``, ``reward.tonic`` / ``reward.mode`` (the key of RL Tuner's table).
        result: the run's :class:`rlmusic.algos.setup.FinetuneResult` (its policy is sampled;
            ``final_eval.json`` is written to its run folder).
        setup: the run's :class:`rlmusic.algos.setup.FinetuneSetup` (encoding, length, device,
            and the KL reference the realism rows are measured under).

    Only when the evaluation is wanted (:func:`final_eval_wanted`) is the corpus read.
    """
    if not final_eval_wanted(cfg):
        return {}
    node = cfg.get("final_eval") or {}
    n, seed = int(node.get("n", 200)), int(node.get("seed", 0))
    if n < 1:
        raise ValueError(f"final_eval.n must be >= 1 for an evaluation, got {n}")
    if cfg.get("data") is None:
        raise ValueError("final_eval needs a `data` group (the held-out melodies), e.g. data=all")
    reward = cfg.get("reward") or {}
    key = KeySpec(int(reward.get("tonic", 0)), str(reward.get("mode", "major")))
    policy = playing_policy(result, setup.device)
    data_node = cfg["data"]
    data = (
        OmegaConf.to_container(data_node, resolve=True)
        if isinstance(data_node, DictConfig)
        else dict(data_node)
    )
    if node.get("data_seed") is not None:  # one split for every run of a sweep, seeds included
        data["seed"] = int(node["data_seed"])
    # the model's own grid: held-out tunes are encoded as the samples are
    reference = held_out_openings({"data": data}, setup.encoding, setup.length)
    if not reference:
        raise ValueError(
            f"final_eval: the test split of data={cfg['data'].get('source')} holds no tune of "
            f"{setup.length}+ steps (raise data.test_fraction or use a larger corpus)"
        )
    tokens, logp = sample_seeded(policy, n, setup.length, seed)
    evaluation = evaluate_samples(
        "tuned", tokens, setup.encoding, logp, _on_cpu(setup.reference.generator), reference, key
    )
    metrics = evaluation_metrics(evaluation)
    # the start model's own pieces under itself: what the tuned pieces' log p is judged beside
    start_tokens, start_logp = sample_seeded(
        _on_cpu(setup.reference.generator), n, setup.length, seed
    )
    onsets = start_tokens >= FIRST_PITCH_TOKEN
    metrics[REFERENCE_LOGP_METRIC] = float(start_logp[onsets].mean()) if onsets.any() else math.nan
    record = {**evaluation.as_dict(), "held_out": len(reference), "seed": seed}
    record["reference log p per onset"] = metrics[REFERENCE_LOGP_METRIC]
    if critic_wanted(cfg):
        tunes = held_out_tunes({"data": data}, setup.encoding)
        size = node.get("critic") or {}
        critic_cfg = CriticTestConfig(
            steps=int(size.get("steps", 1000)), samples=int(size.get("samples", 5000))
        )
        critic = CriticTest(tunes, setup.encoding.vocab_size, setup.length, critic_cfg, seed)
        pieces = sample_seeded(policy, critic.cfg.samples, setup.length, seed + 1)[0]
        accuracy, _ = critic.accuracy(pieces)
        metrics[CRITIC_METRIC] = accuracy.value
        record["critic accuracy"] = accuracy.as_dict()
    run_dir = Path(getattr(result, "run_dir", None) or setup.run_dir)
    (run_dir / FINAL_EVAL_FILE).write_text(json.dumps(record, indent=2, default=float))
    log.info(
        "final eval: %d compositions vs %d held-out openings: interval L1 %.3f",
        n,
        len(reference),
        metrics.get(EVAL_PREFIX + "interval_l1", float("nan")),
    )
    return metrics
