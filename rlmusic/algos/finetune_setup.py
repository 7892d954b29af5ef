"""One fine-tuning contract: :func:`build_setup` builds what every algorithm needs, and every
algorithm is a function ``train(setup, algo_cfg) -> FinetuneResult``.

``build_setup`` is the only code that reads the start checkpoint, the reward, the reference
(KL prior), the device, the seed, the composition length and the run folder, so every
algorithm gets the same objects and the same checks (token grids, vocabularies, length).

A run's ``length`` counts time steps (16ths) in every encoding; ``setup.length`` is what the
algorithms act over, the tokens of such a piece (``encoding.tokens_for(length)``: the same
number for melodies, four times it for chorales), so no trainer knows about encodings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlmusic.algos.constraints import RuleConstraints, build_constraints
from rlmusic.algos.reference import Reference
from rlmusic.data.encodings import Encoding
from rlmusic.models.base import frozen
from rlmusic.models.conditions import Conditions
from rlmusic.models.policy import PriorProductGenerator
from rlmusic.models.registry import checkpoint_conditioning
from rlmusic.rewards.build import START_MODEL, build_reward, plain
from rlmusic.rewards.composite import CompositeReward
from rlmusic.rewards.registry import build_term, default_context
from rlmusic.runtime import resolve_device

log = logging.getLogger(__name__)


@dataclass
class FinetuneSetup:
    """Everything an algorithm trains with (built by :func:`build_setup`).

    Attributes:
        generator: the start model, on ``device``; the algorithm tunes it in place.
        encoding: its token encoding.
        reward: the task reward: rules / c and the extra terms (critics, the user's own), without
            the prior (the reference carries it).
        reference: the KL reference. By default (``reward.prior.checkpoint: start``) a frozen
            copy of the start model, as in every RLHF library; another checkpoint only when the
            reward names one; with ``reward.prior: null`` the start model at weight 0
            (``configured=False``: KL is measured, not paid).
        checkpoint: the start model's spec (recorded in the tuned checkpoint).
        device, seed: where, and with which seed.
        length: tokens per composition (actions per episode): ``encoding.tokens_for(steps)``.
        run_dir: the run folder (exists).
        n_samples: MIDI samples written per sample folder.
        time_s: wall-clock budget (None: none); every algorithm stops at a clean resume point.
        hooks: extra per-iteration callables an algorithm may honour (e.g. a critic's refresh).
        critics: the learned critics the reward's terms use, by term (which checkpoint, why,
            its validation figures: ``rlmusic.critics.auto.CriticChoice.record``), recorded in
            the tuned checkpoint (``info["critics"]``).
        targets: where the reward's bands came from and what they were
            (:func:`rlmusic.algos.data_targets.resolve_targets`'s record; empty: as written),
            recorded in the tuned checkpoint (``info["targets"]``).
        conditioning, conditions: a harmoniser's conditioning (``"soprano"``) and the source
            of its rollouts' sopranos; None for a generator.
    """

    generator: nn.Module
    encoding: Encoding
    reward: CompositeReward
    reference: Reference
    checkpoint: str
    device: torch.device
    seed: int
    length: int
    run_dir: Path
    n_samples: int = 8
    time_s: float | None = None
    hooks: list[Any] = field(default_factory=list)
    constraints: RuleConstraints | None = None  # reward.constraints: multipliers on rule weights
    critics: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a harmoniser's (the checkpoint's ``info["conditioning"]``): what each rollout is given
    conditioning: str | None = None
    conditions: Conditions | None = None
    # where the constraints' bands came from (rlmusic.algos.data_targets), for the checkpoint
    targets: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Time steps per composition (the run's ``length``)."""
        return self.length // self.encoding.tokens_per_step

    def env_reward(self) -> CompositeReward:
        """The task reward plus ``weight * log p_prior``: RL Tuner's per-step reward."""
        return self.reference.with_prior_term(self.reward)


@dataclass
class FinetuneResult:
    """What a fine-tuning run leaves: the tuned checkpoint and its numbers.

    Attributes:
        tuned: ``tuned.safetensors`` (loads in ``rlmusic sample`` / ``evaluate`` and as a prior).
        run_dir: the run folder.
        steps: how far training got, in the algorithm's own unit (``step_unit``).
        step_unit: ``iterations`` (batched) or ``env_steps`` (SB3).
        seconds: wall time of this process's training.
        resumed_from: the step a resumed run started from (None: a new run).
        metrics: final numbers, the same for every algorithm (``final/*``, see
            :func:`rlmusic.algos.outputs.final_metrics`), plus the algorithm's last logged ones.
        extras: algorithm-specific objects (e.g. the SB3 model).
    """

    tuned: Path
    run_dir: Path
    steps: int
    step_unit: str
    seconds: float
    resumed_from: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def build_setup(
    checkpoint: str,
    reward_cfg: Mapping[str, Any],
    run_dir: Path,
    seed: int = 0,
    device: str = "auto",
    length: int = 32,
    n_samples: int = 8,
    time_s: float | None = None,
    critics: Mapping[str, Mapping[str, Any]] | None = None,
    conditions: Conditions | None = None,
) -> FinetuneSetup:
    """Load the start model, build the task reward and the reference, seed torch.

    Args:
        checkpoint: ``pretrained:<name>``, a checkpoint file or a run folder.
        reward_cfg: a ``reward`` node (conf/reward/*.yaml); its ``prior: {checkpoint, weight}``
            becomes the reference (``checkpoint: start``, the presets' default: the start
            model itself), the rest the task reward.
        run_dir: the run folder (created).
        seed: seeds torch once; algorithms derive their own generators from it.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``.
        length: time steps per composition (>= 2); the setup's ``length`` is its tokens.
        n_samples: MIDI samples per sample folder.
        time_s: wall-clock budget (None: none).
        critics: the reward's critics' records, by term (:attr:`FinetuneSetup.critics`).
        conditions: the sopranos a harmoniser checkpoint harmonises (required for one).

    Raises:
        ValueError: a length below 2, a start checkpoint that is a G-learning policy (two
            networks), or a reference whose vocabulary differs from the model's.
    """
    from rlmusic.models import load_generator

    if int(length) < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = resolve_device(str(device))
    torch.manual_seed(int(seed))
    generator, encoding = load_generator(str(checkpoint), device=resolved)
    if isinstance(generator, PriorProductGenerator):
        raise ValueError(
            f"checkpoint={checkpoint} is a G-learning policy, p_prior * exp(G): two networks, "
            "which no algorithm can tune as one; start from a single generator (it can still "
            "be sampled, evaluated and used as reward.prior.checkpoint)"
        )
    conditioning = checkpoint_conditioning(str(checkpoint))
    if conditioning and conditions is None:
        raise ValueError(
            f"checkpoint={checkpoint} is a harmoniser (it reads a {conditioning} first): "
            "fine-tune it with sopranos to harmonise (rlmusic finetune experiment=harmonise)"
        )
    if conditions is not None and not conditioning:
        raise ValueError(
            f"checkpoint={checkpoint} writes whole pieces: it cannot be given sopranos "
            "(start from a harmoniser, e.g. pretrained:chorale_harmoniser)"
        )
    reward_cfg = dict(plain(reward_cfg) or {})
    prior_cfg = reward_cfg.pop("prior", None) or {}
    reward = build_reward(reward_cfg, encoding, device=str(resolved))
    constraints = build_constraints(reward_cfg, reward, encoding)
    reference = _build_reference(prior_cfg, reward_cfg, encoding, resolved, generator, checkpoint)
    return FinetuneSetup(
        generator=generator,
        encoding=encoding,
        reward=reward,
        reference=reference,
        checkpoint=str(checkpoint),
        device=resolved,
        seed=int(seed),
        length=encoding.tokens_for(int(length)),
        run_dir=run_dir,
        n_samples=int(n_samples),
        time_s=None if time_s is None else float(time_s),
        constraints=constraints,
        critics={str(term): dict(record) for term, record in (critics or {}).items()},
        conditioning=conditioning,
        conditions=conditions,
    )


def _build_reference(
    prior_cfg: Mapping[str, Any],
    reward_cfg: Mapping[str, Any],
    encoding: Encoding,
    device: torch.device,
    generator: nn.Module,
    checkpoint: str,
) -> Reference:
    spec = prior_cfg.get("checkpoint")
    if not spec:
        log.info(
            "KL reference: the start model %s at weight 0 (the reward names no prior)", checkpoint
        )
        return Reference(frozen(generator, copy=True), str(checkpoint), 0.0, configured=False)
    weight = float(prior_cfg.get("weight", 1.0))
    if str(spec) == START_MODEL:
        log.info("KL reference: the start model %s (weight %g)", checkpoint, weight)
        return Reference(frozen(generator, copy=True), str(checkpoint), weight)
    context = default_context(
        encoding, int(reward_cfg.get("tonic", 0)), str(reward_cfg.get("mode", "major")), str(device)
    )
    spec = str(spec)
    term = build_term({"name": "prior", "checkpoint": spec}, context)  # checks the token grid
    if term.generator.vocab_size != generator.vocab_size:
        raise ValueError(
            f"reward.prior.checkpoint {spec} has vocab_size {term.generator.vocab_size} but "
            f"{checkpoint} has {generator.vocab_size}: they must share the token encoding"
        )
    log.info("KL reference: %s (weight %g; the start model is %s)", spec, weight, checkpoint)
    return Reference(frozen(term.generator), spec, weight)
