"""The critics as reward terms: pure, batched, causal ``(B, T) tokens -> (B, T) float32``.

* :class:`DiscriminatorReward` (dense). ``shaping="log_prob"`` (default): ``r_t = log D(x_<=t)``,
  every step paid for how real its prefix looks; the return sums every prefix's realism, so an
  early slip costs as much as a late one and the signal never waits for the end. The
  alternative ``shaping="potential"``: ``r_t = D_t - D_{t-1}`` (``D_{-1} = 1/2``), potential-based
  shaping whose return telescopes to ``D(whole) - 1/2``: only the whole composition's realism
  counts (no double counting of prefixes), at the price of a noisier per-step signal. It
  telescopes only *undiscounted*: at gamma < 1 the return from step t is ``sum_k gamma^k (D_{t+k}
  - D_{t+k-1})``, a per-prefix reward again. So a potential-shaped term declares
  ``required_gamma = 1`` and ``rlmusic finetune`` refuses it with any other ``algo.gamma``
  (:meth:`rlmusic.rewards.composite.CompositeReward.check_discount`). The default is the one
  measured in issue 13 (a dense log D, weight 1).
* :class:`EnsembleReward` (dense): mean log-likelihood over K generators minus
  ``penalty * std``; :meth:`EnsembleReward.details` exposes the disagreement per step.
* :class:`PreferenceReward`: ``shaping="last"`` (default) pays the Bradley-Terry utility of the
  whole composition on its last step (a sequence-level term: the model was trained on whole
  samples, so prefix scores are out of its distribution); ``shaping="potential"`` spreads the
  same return over the steps as ``s_t - s_{t-1}`` (``s_{-1} = 0``), which again telescopes
  only at gamma 1 (``required_gamma``).

Every term runs under ``torch.no_grad`` on its ``device``; the factories at the bottom are what
the reward registry's ``discriminator``, ``ensemble`` and ``preference`` entries call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from rlmusic.critics.cnn import CausalCNN, check_tokens
from rlmusic.critics.ensemble import (
    GRID,
    EnsembleCritic,
    build_ensemble,
    load_ensemble,
    same_grid,
)
from rlmusic.critics.io import load_cnn_critic
from rlmusic.data.encodings import Encoding
from rlmusic.models.base import frozen
from rlmusic.rewards.base import RewardError

if TYPE_CHECKING:
    from rlmusic.critics.discriminator import DiscriminatorTrainConfig

DEFAULT_MEMBERS = ("pretrained:note_lstm", "pretrained:music_transformer")


PRECISIONS = {"float64": torch.float64, "float32": torch.float32}


def precision_dtype(precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise RewardError(f"precision {precision!r}; known: {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


class _CNNTerm:
    """Scores (B, T) tokens with a frozen copy of a CausalCNN, in chunks.

    ``precision="float64"`` (default) scores exactly: float32 kernels round differently for
    other batch sizes and lengths (log D 1e-5 apart), so a reward would depend on what else
    is in the batch and on how long the array is (causality, env == vector env).
    ``"float32"`` is ~4x faster on CPU, equal to float32 rounding.
    """

    name = "critic"

    def __init__(
        self,
        model: CausalCNN,
        device: torch.device | str = "cpu",
        batch_size: int = 1024,
        precision: str = "float64",
    ) -> None:
        self.device = torch.device(device)
        self.dtype = precision_dtype(precision)
        self.model = model.to(self.device).eval()  # what refresh() trains
        self.batch_size = batch_size
        self.sync()

    def sync(self) -> None:
        """Copy the model's current weights into the frozen scorer."""
        self._scorer = frozen(self.model, copy=True).to(self.dtype)

    @torch.no_grad()
    def scores(self, tokens: np.ndarray) -> torch.Tensor:
        """(B, T) tokens -> (B, T) float64 scores (logits or utilities) on the CPU."""
        tokens = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)
        check_tokens(tokens, self.model.vocab_size, f"the {self.name} term")
        if tokens.numel() == 0:
            return torch.zeros(tokens.shape, dtype=torch.float64)
        out = [
            self._scorer(tokens[i : i + self.batch_size])
            for i in range(0, len(tokens), self.batch_size)
        ]
        return torch.cat(out).cpu().double()


class DiscriminatorReward(_CNNTerm):
    """Dense realism reward from a discriminator: ``log D`` per prefix, or its potential
    difference (see the module docstring for the choice).

    Args:
        model: a trained discriminator (``CausalCNN``; its score is ``logit P(real)``).
        shaping: ``log_prob`` | ``potential``.
        device: where it scores.
        batch_size: rows scored per forward.
        precision: ``float64`` (exact) | ``float32`` (faster).
    """

    name = "discriminator"
    sequence_level = False
    SHAPINGS = ("log_prob", "potential")

    def __init__(
        self,
        model: CausalCNN,
        shaping: str = "log_prob",
        device: torch.device | str = "cpu",
        batch_size: int = 1024,
        precision: str = "float64",
    ) -> None:
        if shaping not in self.SHAPINGS:
            raise RewardError(
                f"discriminator shaping {shaping!r}; known: {', '.join(self.SHAPINGS)}"
            )
        super().__init__(model, device, batch_size, precision)
        self.shaping = shaping
        # potential differences sum to the whole piece's score only undiscounted
        self.required_gamma = 1.0 if shaping == "potential" else None

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        logits = self.scores(tokens)  # (B, T)
        if self.shaping == "log_prob":
            return F.logsigmoid(logits).numpy().astype(np.float32)
        p_real = torch.sigmoid(logits)
        before = torch.cat([torch.full_like(p_real[:, :1], 0.5), p_real[:, :-1]], dim=1)
        return (p_real - before).numpy().astype(np.float32)

    def refresh(
        self,
        real: np.ndarray,
        fake: np.ndarray,
        steps: int,
        cfg: DiscriminatorTrainConfig | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Retrain the discriminator in place on the current policy's samples (``fake``)
        against real windows; see :func:`rlmusic.critics.discriminator.refresh`."""
        from rlmusic.critics.discriminator import refresh

        figures = refresh(self.model, real, fake, steps, cfg, seed)
        self.sync()
        return figures


class PreferenceReward(_CNNTerm):
    """Bradley-Terry utility of the composition: on the last step, or spread as potential
    differences (see the module docstring).

    Args:
        model: a trained preference model (``CausalCNN``).
        shaping: ``last`` | ``potential``.
        device: where it scores.
        batch_size: rows scored per forward.
        precision: ``float64`` (exact) | ``float32`` (faster).
    """

    name = "preference"
    SHAPINGS = ("last", "potential")

    def __init__(
        self,
        model: CausalCNN,
        shaping: str = "last",
        device: torch.device | str = "cpu",
        batch_size: int = 1024,
        precision: str = "float64",
    ) -> None:
        if shaping not in self.SHAPINGS:
            raise RewardError(f"preference shaping {shaping!r}; known: {', '.join(self.SHAPINGS)}")
        super().__init__(model, device, batch_size, precision)
        self.shaping = shaping
        self.sequence_level = shaping == "last"  # the composite skips it on unfinished prefixes
        self.required_gamma = 1.0 if shaping == "potential" else None  # it telescopes only then

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        scores = self.scores(tokens)  # (B, T)
        if self.shaping == "last":
            out = torch.zeros_like(scores)
            out[:, -1:] = scores[:, -1:]
        else:
            out = scores - torch.cat([torch.zeros_like(scores[:, :1]), scores[:, :-1]], dim=1)
        return out.numpy().astype(np.float32)


class EnsembleReward:
    """``mean_k log p_k(x_t | x_<t) - penalty * std_k`` over an ensemble of generators.

    Args:
        critic: the frozen members.
        penalty: ``lambda`` of the uncertainty penalty (0: plain mean, RL-Duet).
    """

    name = "ensemble"
    sequence_level = False

    def __init__(self, critic: EnsembleCritic, penalty: float = 0.0) -> None:
        if penalty < 0:
            raise RewardError(f"ensemble penalty must be >= 0, got {penalty}")
        self.critic = critic
        self.penalty = float(penalty)

    def details(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """(B, T) ``mean``, ``std`` (the disagreement) and ``reward``, for logging."""
        mean, std = self.critic.mean_and_std(tokens)
        return {"mean": mean, "std": std, "reward": mean - self.penalty * std}

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        return self.details(tokens)["reward"].astype(np.float32)


# ---- registry factories ------------------------------------------------------------------------
def _check_grid(name: str, where: str, critic: Encoding, reward: Encoding | None):
    if reward is not None and not same_grid(critic, reward):
        raise RewardError(
            f"the {name} critic {where!r} was trained on another token grid than the reward's "
            f"(kind, {', '.join(GRID)}): critic {critic}, reward {reward}"
        )


def _need_checkpoint(name: str, checkpoint: str | None) -> str:
    if not checkpoint:
        raise RewardError(
            f"the {name} reward term needs checkpoint=<critic file or train-critic run folder> "
            f"(train one with: rlmusic train-critic critic={name})"
        )
    return str(checkpoint)


def _cnn_term(
    kind: str,
    term_class: type[_CNNTerm],
    checkpoint: str | None,
    shaping: str,
    device: str,
    encoding: Encoding | None,
    batch_size: int,
    precision: str,
) -> Any:
    checkpoint = _need_checkpoint(kind, checkpoint)
    model, critic_encoding, _ = load_cnn_critic(checkpoint, kind, device)
    _check_grid(kind, checkpoint, critic_encoding, encoding)
    term = term_class(model, shaping, device, batch_size, precision)
    term.encoding = critic_encoding  # what a refresh cuts its real windows by (whole steps)
    return term


def discriminator_term(
    checkpoint: str | None = None,
    shaping: str = "log_prob",
    device: str = "cpu",
    encoding: Encoding | None = None,
    batch_size: int = 1024,
    precision: str = "float64",
) -> DiscriminatorReward:
    """The registry's ``discriminator``: a saved discriminator as a dense reward term."""
    return _cnn_term(
        "discriminator",
        DiscriminatorReward,
        checkpoint,
        shaping,
        device,
        encoding,
        batch_size,
        precision,
    )


def preference_term(
    checkpoint: str | None = None,
    shaping: str = "last",
    device: str = "cpu",
    encoding: Encoding | None = None,
    batch_size: int = 1024,
    precision: str = "float64",
) -> PreferenceReward:
    """The registry's ``preference``: a saved Bradley-Terry model as a reward term."""
    return _cnn_term(
        "preference",
        PreferenceReward,
        checkpoint,
        shaping,
        device,
        encoding,
        batch_size,
        precision,
    )


def ensemble_term(
    members: Sequence[str] | None = None,
    checkpoint: str | None = None,
    penalty: float = 0.0,
    device: str = "cpu",
    encoding: Encoding | None = None,
    precision: str = "float64",
) -> EnsembleReward:
    """The registry's ``ensemble``: ``members`` (generator specs) or a saved ensemble
    ``checkpoint``; neither gives the shipped generators (:data:`DEFAULT_MEMBERS`)."""
    if members and checkpoint:
        raise RewardError("the ensemble term takes members=[...] or checkpoint=..., not both")
    if checkpoint:
        critic, _ = load_ensemble(str(checkpoint), device, precision)
        where = str(checkpoint)
    else:
        specs = [str(m) for m in (members or DEFAULT_MEMBERS)]
        critic = build_ensemble(specs, device, precision)
        where = ", ".join(critic.names)
    _check_grid("ensemble", where, critic.encoding, encoding)
    return EnsembleReward(critic, penalty)
