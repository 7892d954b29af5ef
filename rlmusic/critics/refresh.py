"""Adversarial refresh during fine-tuning (SeqGAN, Yu et al. 2017): every ``every`` steps
(iterations for ``algo=batched``, env steps for ``algo=rl_tuner``) the discriminator terms of
the reward are retrained on the current policy's samples against fresh real windows, so the
policy keeps chasing a critic that keeps up with it.

:func:`refresh_hook` returns a :class:`CriticRefresh`, a callable ``hook(step, policy) ->
metrics`` for ``FinetuneSetup.hooks``; the run harness (:mod:`rlmusic.algos.harness`) calls it
after every step and logs what it returns (``critic/<term>/accuracy_before``, ``.../accuracy``,
``.../auc``, ...). It refreshes when a step crosses a multiple of ``every``. The refreshed
weights shape every later reward, so the hook has a ``state_dict`` (the critics and the last
step seen) that the harness saves in the resume point (``resume.pt``) and loads back: a resumed
run goes on against the critic it had, not the shipped one. Each refresh draws its windows,
samples and updates from seeds of ``(seed, step)``, so nothing else needs saving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

from rlmusic.critics.data import cut_windows
from rlmusic.critics.discriminator import DiscriminatorTrainConfig
from rlmusic.critics.terms import DiscriminatorReward
from rlmusic.models.sampling import sample_seeded
from rlmusic.rewards.composite import CompositeReward

log = logging.getLogger(__name__)

Hook = Callable[[int, nn.Module], dict[str, float]]


def refreshable_terms(reward: CompositeReward) -> dict[str, DiscriminatorReward]:
    """The reward's discriminator terms, by name."""
    return {t.name: t.term for t in reward.terms if isinstance(t.term, DiscriminatorReward)}


class CriticRefresh:
    """Retrains the reward's discriminator terms when a step crosses a multiple of ``every``
    (see :func:`refresh_hook`)."""

    def __init__(
        self,
        terms: dict[str, DiscriminatorReward],
        real_tunes: Sequence[np.ndarray],
        length: int,
        every: int,
        steps: int,
        samples: int,
        seed: int,
        lr: float,
    ) -> None:
        self.terms, self.real_tunes = terms, real_tunes
        self.length, self.every, self.steps = int(length), int(every), int(steps)
        self.samples, self.seed, self.lr = int(samples), int(seed), float(lr)
        # windows start on a step's first token, as the terms' critics read pieces
        encoding = next((getattr(t, "encoding", None) for t in terms.values()), None)
        self.tokens_per_step = encoding.tokens_per_step if encoding is not None else 1
        self.last_step = 0  # the step of the previous call (a run starts at 0)

    def __call__(self, iteration: int, policy: nn.Module) -> dict[str, float]:
        before, self.last_step = self.last_step, int(iteration)
        if iteration // self.every <= before // self.every:  # no multiple in (before, iteration]
            return {}
        rng = np.random.default_rng([self.seed, iteration])
        real = cut_windows(
            self.real_tunes, self.length, self.samples, rng, "any", 16, self.tokens_per_step
        )
        fake, _ = sample_seeded(
            policy, self.samples, self.length, seed=self.seed + 7919 * iteration
        )
        metrics: dict[str, float] = {}
        for name, term in self.terms.items():
            cfg = DiscriminatorTrainConfig(
                steps=self.steps, lr=self.lr, log_every=0, model=term.model.config, batch_size=128
            )
            figures = term.refresh(real, fake, self.steps, cfg, seed=self.seed + iteration)
            metrics.update(
                {f"critic/{name}/{k}": float(v) for k, v in figures.items() if _is_number(v)}
            )
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """The refreshed critics' weights by term name (tensors only), and the last step."""
        critics = {name: term.model.state_dict() for name, term in self.terms.items()}
        return {"critics": critics, "step": self.last_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put the critics back as a saved run had refreshed them.

        Raises:
            ValueError: the saved terms are not this reward's discriminator terms.
        """
        critics = state.get("critics", {})
        if set(critics) != set(self.terms):
            raise ValueError(
                f"the resume point holds refreshed critics {sorted(critics)}, but this run's "
                f"reward has discriminator terms {sorted(self.terms)}"
            )
        for name, term in self.terms.items():
            term.model.load_state_dict(critics[name])
            term.sync()
        self.last_step = int(state["step"])


def refresh_hook(
    reward: CompositeReward,
    real_tunes: Sequence[np.ndarray],
    length: int,
    every: int,
    steps: int,
    samples: int,
    seed: int,
    lr: float = 1e-3,
) -> CriticRefresh:
    """A hook retraining every discriminator term of ``reward`` every ``every`` iterations.

    Args:
        reward: the task reward (its discriminator terms are refreshed in place).
        real_tunes: whole tunes the real windows are cut from: the corpus train split, of
            ``data.split_seed`` (:mod:`rlmusic.data.split`), so never a tune the run's held-out
            evaluation scores against, whatever the run's seed.
        length: tokens per window (the compositions' length, ``setup.length``); windows start
            on a time step's first token of the critics' encoding.
        every: steps between refreshes (on the trainer's counter: iterations or env steps).
        steps: optimizer steps per refresh.
        samples: policy samples (and as many real windows) per refresh.
        seed: seeds the windows, the samples and the updates (with the iteration).
        lr: the refresh's learning rate (lower than from-scratch training: it fine-tunes).

    Raises:
        ValueError: the reward holds no discriminator term, or ``every`` / ``steps`` < 1.
    """
    terms = refreshable_terms(reward)
    if not terms:
        raise ValueError(
            "critic_refresh.every > 0 but the reward has no discriminator term to refresh "
            "(add one to reward.extra, e.g. {name: discriminator, checkpoint: pretrained:discriminator})"
        )
    if every < 1 or steps < 1:
        raise ValueError(f"critic_refresh needs every >= 1 and steps >= 1, got {every}, {steps}")
    return CriticRefresh(terms, real_tunes, length, every, steps, samples, seed, lr)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
