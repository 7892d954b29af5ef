"""What every fine-tuning run writes and reports, whatever the algorithm: MIDI samples, the tuned
checkpoint, and the final numbers (the same ``final/*`` metrics for every algorithm, so a sweep
can compare and optimise them)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from rlmusic.data.encodings import Encoding
from rlmusic.data.harmonisation import CONDITIONING_KEY, harmoniser_reading
from rlmusic.models.conditions import Conditions
from rlmusic.models.sampling import sample_seeded

if TYPE_CHECKING:
    from rlmusic.algos.finetune_setup import FinetuneSetup

FINAL_SAMPLES = 256  # compositions behind the final/* metrics


def write_midi_samples(
    generator: nn.Module,
    encoding: Encoding,
    directory: Path,
    n: int,
    length: int,
    seed: int,
    conditions: Conditions | None = None,
) -> Path:
    """``n`` seeded samples of ``length`` tokens (``setup.length``: whole time steps) of
    ``generator`` as ``directory/sample_NNN.mid``, written by the encoding (a chorale: a track
    per voice); a harmoniser's (``conditions``) harmonise drawn sopranos."""
    from rlmusic.data.io import save_midi

    tokens, _ = sample_seeded(generator, n, length, seed, conditions=conditions)
    directory.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(tokens):
        save_midi(row, directory / f"sample_{i:03d}.mid", encoding)
    return directory


def policy_statistics(
    policy: nn.Module, setup: FinetuneSetup, n: int, seed: int, with_reward: bool = True
) -> dict[str, float]:
    """Reward, KL to the reference, entropy, distinct share and onsets on ``n`` fresh samples.

    Keys: ``reward/total`` and ``reward/<term>`` (per composition), ``kl/prior_per_token``,
    ``policy/log_prior_per_token``, ``policy/entropy`` (nats per token, Monte Carlo),
    ``policy/distinct_share``, ``policy/onsets_per_piece`` (every voice's, for a chorale). ``with_reward=False`` skips the
    reward (a caller that logs it from its own rollouts need not score the samples again).
    """
    tokens, log_pi = sample_seeded(policy, n, setup.length, seed, conditions=setup.conditions)
    # a harmoniser's prior reads the same soprano first; per token: the chosen ones
    prefix, chosen = harmoniser_reading(tokens, setup.encoding, setup.conditions is not None)
    prefix_t = None if prefix is None else torch.as_tensor(prefix)
    log_prior = setup.reference.log_probs(torch.as_tensor(tokens), prefix_t).cpu().numpy()
    log_pi, log_prior = log_pi[chosen], log_prior[chosen]
    rewards: dict[str, float] = {}
    if with_reward:
        total, shares = setup.reward.score(tokens)
        rewards["reward/total"] = float(total.sum(1).mean())
        rewards.update({f"reward/{name}": float(v.sum(1).mean()) for name, v in shares.items()})
    return {
        **rewards,
        "kl/prior_per_token": float(np.mean(log_pi - log_prior)),
        "policy/log_prior_per_token": float(log_prior.mean()),
        "policy/entropy": float(-log_pi.mean()),
        "policy/distinct_share": len({r.tobytes() for r in tokens}) / max(len(tokens), 1),
        "policy/onsets_per_piece": float(setup.encoding.is_onset(tokens).sum(1).mean()),
    }


def final_metrics(policy: nn.Module, setup: FinetuneSetup) -> dict[str, float]:
    """:func:`policy_statistics` on :data:`FINAL_SAMPLES` samples, keys prefixed ``final/``."""
    stats = policy_statistics(policy, setup, FINAL_SAMPLES, setup.seed + 1_000_003)
    return {f"final/{key}": value for key, value in stats.items()}


def finish_run(
    setup: FinetuneSetup, tuned: nn.Module, sampler: nn.Module, info: dict[str, Any]
) -> tuple[Path, dict[str, float]]:
    """Write ``tuned.safetensors`` and ``samples/final/``; return the path and final metrics.

    Args:
        tuned: the weights saved as a generator.
        sampler: the policy that plays (the tuned generator itself, or e.g. G-learning's
            ``softmax(G + log p_prior)``).
        info: recorded in the checkpoint, with ``tuned_from`` (the start model), ``reference``
            (the KL reference's spec) and, when the reward uses learned critics, ``critics``
            (``setup.critics``): the checkpoint's one write.
    """
    from rlmusic.models import save_checkpoint

    # the KL reference the run was held to (by default the start model itself), the critics
    # it was rewarded by
    recorded: dict[str, Any] = {"tuned_from": setup.checkpoint, "reference": setup.reference.spec}
    if setup.conditioning:  # a harmoniser stays one: it reads the soprano first
        recorded[CONDITIONING_KEY] = setup.conditioning
    if setup.critics:
        recorded["critics"] = setup.critics
    if setup.targets:
        recorded["targets"] = setup.targets
    path = save_checkpoint(
        setup.run_dir / "tuned.safetensors", tuned, setup.encoding, info={**recorded, **info}
    )
    samples = write_midi_samples(
        sampler,
        setup.encoding,
        setup.run_dir / "samples" / "final",
        setup.n_samples,
        setup.length,
        setup.seed,
        setup.conditions,
    )
    metrics = final_metrics(sampler, setup)
    print(f"tuned model: {path}\nsamples: {samples}")
    return path, metrics


def constraint_pieces(policy: nn.Module, setup: FinetuneSetup, n: int, move: int) -> np.ndarray:
    """``n`` pieces the policy samples now for a constraint move (the ``move``-th: a fresh seed
    each, fixed by the run's seed): the statistic the multipliers follow is the one ``rlmusic
    evaluate`` counts on the policy, not the exploring or too few pieces a learner acted."""
    seed = setup.seed * 1_000_003 + 7_919 * int(move)
    tokens, _ = sample_seeded(policy, n, setup.length, seed, conditions=setup.conditions)
    return tokens
