"""The end-of-run evaluation a sweep optimises: music measured, not reward.

``rlmusic finetune`` with ``final_eval.enabled=true`` (or an ``objective`` that names an
``eval/*`` metric) samples ``final_eval.n`` compositions from the tuned policy and scores them
exactly as ``rlmusic evaluate`` does (:func:`rlmusic.evaluation.model_eval.evaluate_samples`):
RL Tuner's table in the reward's key, the realism measures under the run's KL reference, and
the interval / duration histograms against held-out corpus melodies (openings of the ``data``
group's test split: ``data.split_seed``'s, whatever the run's seed; :mod:`rlmusic.data.split`;
``final_eval.json`` records it as ``data_split``). Every row lands in the run's metrics as
``eval/<row>``, so

    rlmusic finetune -m objective=eval/interval_l1 objective_direction=minimize ...

optimises how close the tuned model's intervals are to real tunes. ``final_eval.critic.enabled=true``
(or ``objective=eval/critic_accuracy``) adds the two-sample critic test of ``rlmusic compare``
(:mod:`rlmusic.evaluation.two_sample_critic`, its default size) as ``eval/critic_accuracy``. The
realism rows have short
names (:data:`SHORT_NAMES`: ``eval/interval_l1``, ``eval/duration_l1``, ``eval/kl_per_token``,
...); a statistic of the table is its identifier (:class:`~rlmusic.rewards.statistics.Statistic`:
``eval/notes_in_motif``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import nn

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.prepare import prepare_corpus
from rlmusic.data.split import HeldOutSplit, split_record
from rlmusic.evaluation.checks import EVAL_PREFIX, REFERENCE_LOGP_METRIC, eval_metric
from rlmusic.evaluation.model_eval import Evaluation, evaluate_samples
from rlmusic.evaluation.table_rows import statistic_of
from rlmusic.evaluation.two_sample_critic import CriticTest, CriticTestConfig
from rlmusic.models.conditions import seeded_conditions
from rlmusic.models.sampling import sample_seeded
from rlmusic.rewards.statistics import KeySpec, Statistic

log = logging.getLogger(__name__)

CRITIC_METRIC = EVAL_PREFIX + "critic_accuracy"  # the two-sample critic test's accuracy
FINAL_EVAL_FILE = "final_eval.json"

# Every realism row of :class:`Evaluation` -> its metric name (a statistic's is its identifier,
# the value of its Statistic: "notes in motif" -> eval/notes_in_motif).
SHORT_NAMES: dict[str, str] = {
    "interval L1 to held-out": "interval_l1",
    "interval L1 to held-out (signed, 27 bins)": "signed_interval_l1",
    "duration L1 to held-out": "duration_l1",
    "distinct share": "distinct_share",
    Statistic.ONSETS_PER_PIECE: Statistic.ONSETS_PER_PIECE.value,
    "prior log p per onset": "prior_logp_per_onset",
    "prior log p per token": "prior_logp_per_token",
    "KL to prior per token": "kl_per_token",
}


@dataclass
class HeldOut:
    """The held-out tunes of a ``data`` config and the split they came from.

    Attributes:
        tunes: every whole test-split tune, in corpus order.
        split_seed: ``data.split_seed`` (it also keys how compare divides these tunes).
        record: :func:`rlmusic.data.split.split_record`, for the result file.
    """

    tunes: list[np.ndarray]
    split_seed: int
    record: dict[str, Any]

    def openings(self, length: int) -> list[np.ndarray]:
        """The first ``length`` steps of every held-out tune at least that long: the melodies
        the interval and duration histograms are compared with."""
        return [t[:length] for t in self.tunes if len(t) >= length]


def held_out(cfg: Any, encoding: MelodyEncoding) -> HeldOut:
    """The test split of ``cfg.data`` (split by ``data.split_seed``, never the run's seed):
    what no shipped model and no ``auto`` critic trained on."""
    data = cfg["data"]
    corpus = prepare_corpus(data, encoding, progress=False)
    split = HeldOutSplit.from_cfg(data)
    return HeldOut(list(corpus.tunes("test")), split.seed, split_record(corpus, data))


def held_out_tunes(cfg: Any, encoding: MelodyEncoding) -> list[np.ndarray]:
    """Every whole test-split tune of ``cfg.data`` (:func:`held_out`)."""
    return held_out(cfg, encoding).tunes


def held_out_openings(cfg: Any, encoding: MelodyEncoding, length: int) -> list[np.ndarray]:
    """The first ``length`` steps of every test-split tune of ``cfg.data`` at least that long
    (:meth:`HeldOut.openings`)."""
    return held_out(cfg, encoding).openings(length)


def metric_name(row: str) -> str:
    """``eval/<name>`` for a row of an :class:`Evaluation`: a statistic (by identifier, or by
    the text ``final_eval.json`` shows it under) or a realism row.

    >>> metric_name("interval L1 to held-out"), metric_name(Statistic.NOTES_IN_MOTIF_PER_ONSET)
    ('eval/interval_l1', 'eval/notes_in_motif_per_onset')
    >>> metric_name("notes in motif (per onset)")
    'eval/notes_in_motif_per_onset'

    Raises:
        ValueError: ``row`` is neither (a new row needs its name here before sweeps use it).
    """
    statistic = statistic_of(row)
    if statistic is not None:
        return eval_metric(statistic)
    if row in SHORT_NAMES:
        return EVAL_PREFIX + SHORT_NAMES[row]
    raise ValueError(
        f"no eval/* name for the row {row!r}: name it in SHORT_NAMES (realism) or as a Statistic"
    )


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

    ``result`` is a :class:`rlmusic.algos.finetune_setup.FinetuneResult`. Its ``tuned.safetensors``
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


def held_out_conditions(reference: list[np.ndarray], setup: Any) -> Any:
    """A harmoniser's evaluation conditions: the held-out openings' sopranos (None for a
    generator, which composes from nothing)."""
    if getattr(setup, "conditions", None) is None:
        return None
    from rlmusic.data.harmonisation import sopranos
    from rlmusic.models.conditions import SopranoConditions

    return SopranoConditions(sopranos(np.stack(reference), setup.encoding), setup.encoding)


def final_evaluation(cfg: Mapping[str, Any], result: Any, setup: Any) -> dict[str, float]:
    """The end-of-run evaluation of a fine-tuning run as ``eval/*`` metrics ({} when off).

    Args:
        cfg: the finetune config: ``final_eval`` ({enabled, n, seed, critic}), ``data``
            (the held-out melodies: its test split, split by ``data.split_seed``),
            ``objective``, ``reward.tonic`` / ``reward.mode`` (the key of RL Tuner's table).
        result: the run's :class:`rlmusic.algos.finetune_setup.FinetuneResult` (its policy is sampled;
            ``final_eval.json`` is written to its run folder).
        setup: the run's :class:`rlmusic.algos.finetune_setup.FinetuneSetup` (encoding, length, device,
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
    # the model's own grid: held-out tunes are encoded as the samples are
    held = held_out({"data": data}, setup.encoding)
    reference = held.openings(setup.length)
    if not reference:
        raise ValueError(
            f"final_eval: the test split of data={cfg['data'].get('source')} holds no tune of "
            f"{setup.length}+ steps (raise data.test_fraction or use a larger corpus)"
        )
    # a harmoniser harmonises the held-out openings' sopranos (the same ones, model by model)
    conditions = held_out_conditions(reference, setup)
    forced = seeded_conditions(conditions, n, seed)[1] if conditions else None
    tokens, logp = sample_seeded(policy, n, setup.length, seed, conditions=conditions)
    evaluation = evaluate_samples(
        "tuned", tokens, setup.encoding, logp, _on_cpu(setup.reference.generator), reference, key,
        forced=forced,
    )  # fmt: skip
    metrics = evaluation_metrics(evaluation)
    # the start model's own pieces under itself: what the tuned pieces' log p is judged beside
    start_tokens, start_logp = sample_seeded(
        _on_cpu(setup.reference.generator), n, setup.length, seed, conditions=conditions
    )
    onsets = setup.encoding.is_onset(start_tokens) & (forced < 0 if forced is not None else True)
    metrics[REFERENCE_LOGP_METRIC] = float(start_logp[onsets].mean()) if onsets.any() else math.nan
    record = {**evaluation.as_dict(), "held_out": len(reference), "seed": seed}
    record["data_split"] = held.record
    record["reference log p per onset"] = metrics[REFERENCE_LOGP_METRIC]
    if critic_wanted(cfg):
        size = node.get("critic") or {}
        critic_cfg = CriticTestConfig(
            steps=None if size.get("steps") is None else int(size["steps"]),
            samples=int(size.get("samples", 5000)),
        )
        critic = CriticTest(
            held.tunes, setup.encoding.vocab_size, setup.length, critic_cfg, seed,
            split_seed=held.split_seed, encoding=setup.encoding,
        )  # fmt: skip
        pieces = sample_seeded(
            policy, critic.cfg.samples, setup.length, seed + 1, conditions=conditions
        )[0]
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
