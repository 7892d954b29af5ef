"""Policies that are not one network's softmax, recorded in a checkpoint's ``info["policy"]``.

A fine-tuning run saves the network it trained; when the policy it trained is something else
built around that network, the checkpoint says how, and
:func:`rlmusic.models.registry.load_generator` builds it, so ``sample``, ``evaluate``,
``compare``, ``listen`` and the reward's prior term all play the trained policy:

- ``{"kind": "g", "prior": <spec>}`` — RL Tuner's G-learning: the saved network holds G and the
  policy is ``p_prior(a|s) * exp(G(s, a))``, normalised (:class:`PriorProductGenerator`). The
  prior is a checkpoint spec that loads without unpickling anything: ``pretrained:<name>`` or an
  absolute path (:func:`portable_spec`).
- ``{"kind": "psi", "temperature": c}`` — RL Tuner's Psi-learning: the policy is
  ``softmax(Psi / c)``; the temperature is folded into the loaded network's output layer
  (:func:`rlmusic.models.base.fold_temperature`), so the loaded model is a plain generator.

A checkpoint without ``info["policy"]`` is its network's own softmax.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlmusic.models.base import fold_temperature, frozen

POLICY_KEY = "policy"  # the key of a checkpoint's info that names its policy
PRETRAINED_PREFIX = "pretrained:"  # how a spec names a shipped model (rlmusic.models.registry)
POLICY_KINDS = ("g", "psi")


def portable_spec(spec: str | Path) -> str:
    """A checkpoint spec that loads from any working directory: ``pretrained:<name>`` as it is,
    a path made absolute.

    >>> portable_spec("pretrained:note_lstm")
    'pretrained:note_lstm'
    """
    spec = str(spec)
    if spec.startswith(PRETRAINED_PREFIX):
        return spec
    return str(Path(spec).expanduser().resolve())


def g_policy_info(prior: str | Path) -> dict[str, Any]:
    """``info["policy"]`` of a G-learning checkpoint: ``p_prior * exp(G)`` with this prior."""
    return {"kind": "g", "prior": portable_spec(prior)}


def psi_policy_info(temperature: float) -> dict[str, Any]:
    """``info["policy"]`` of a Psi-learning checkpoint: ``softmax(Psi / temperature)``."""
    if temperature <= 0:
        raise ValueError(f"the Psi policy's temperature must be > 0, got {temperature}")
    return {"kind": "psi", "temperature": float(temperature)}


class PriorProductGenerator(nn.Module):
    """The generator whose next-token distribution is ``p_prior(.|s) * exp(G(s, .))``, normalised.

    Its logits are ``G + log_softmax(prior logits)``: sampling their softmax samples G-learning's
    policy, and ``log_softmax`` of them is its log-probability. It follows the Generator protocol
    (``forward``, ``forward_with_hidden``, ``step``, ``prefill``, ``bos_token``, ``vocab_size``);
    the prior is frozen and its parameters are never trained.

    Args:
        g_network: the network whose logits are G (trained).
        prior: the prior generator (frozen here).
    """

    def __init__(self, g_network: nn.Module, prior: nn.Module) -> None:
        super().__init__()
        if int(g_network.vocab_size) != int(prior.vocab_size):
            raise ValueError(
                f"G's vocab_size {g_network.vocab_size} differs from the prior's "
                f"{prior.vocab_size}: they must share the token encoding"
            )
        self.g_network = g_network
        self.prior = frozen(prior)
        self.vocab_size = int(g_network.vocab_size)

    @property
    def bos_token(self) -> int:
        return int(self.g_network.bos_token)

    def train(self, mode: bool = True) -> PriorProductGenerator:
        super().train(mode)
        self.prior.eval()  # the prior's dropout never runs
        return self

    @staticmethod
    def combine(g_logits: torch.Tensor, prior_logits: torch.Tensor) -> torch.Tensor:
        """``G + log p_prior``: the policy's logits (any shape, vocabulary last)."""
        return g_logits.float() + F.log_softmax(prior_logits.float(), dim=-1)

    def forward_with_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) -> the policy's logits (B, T, V) and G's last hidden layer (B, T, H)."""
        g_logits, hidden = self.g_network.forward_with_hidden(tokens)
        return self.combine(g_logits, self.prior(tokens)), hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.forward_with_hidden(tokens)[0]

    def step(self, token: torch.Tensor, state: Any | None) -> tuple[torch.Tensor, Any]:
        """One token for both networks; the state is the pair of their states."""
        g_state, prior_state = state if state is not None else (None, None)
        g_logits, g_state = self.g_network.step(token, g_state)
        prior_logits, prior_state = self.prior.step(token, prior_state)
        return self.combine(g_logits, prior_logits), (g_state, prior_state)

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Read a whole prefix with both networks (their own ``prefill`` when they have one)."""
        from rlmusic.models.base import prefill

        if hasattr(self.g_network, "prefill") and hasattr(self.prior, "prefill"):
            g_logits, g_state = self.g_network.prefill(tokens)
            prior_logits, prior_state = self.prior.prefill(tokens)
            return self.combine(g_logits, prior_logits), (g_state, prior_state)
        # stepping generators: the last position only, as base.prefill returns it
        g_last, g_state = prefill(self.g_network, tokens)
        prior_last, prior_state = prefill(self.prior, tokens)
        return self.combine(g_last, prior_last)[:, None], (g_state, prior_state)


def build_policy(
    model: nn.Module,
    policy: Mapping[str, Any],
    where: str,
    load_prior: Callable[[str], nn.Module],
) -> nn.Module:
    """The policy ``info["policy"]`` describes, built around the loaded network ``model``.

    Args:
        model: the checkpoint's network (eval mode).
        policy: the checkpoint's ``info["policy"]``.
        where: the checkpoint's name, for error messages.
        load_prior: loads a generator from a spec (G-learning's prior).

    Raises:
        ValueError: an unknown kind, or a kind without the values it needs.
    """
    kind = policy.get("kind")
    if kind == "g":
        spec = policy.get("prior")
        if not spec:
            raise ValueError(f"{where}: a G-learning policy without its prior (info.policy.prior)")
        return PriorProductGenerator(model, load_prior(str(spec))).eval()
    if kind == "psi":
        temperature = float(policy.get("temperature", 1.0))
        if temperature <= 0:
            raise ValueError(f"{where}: info.policy.temperature must be > 0, got {temperature}")
        if temperature != 1.0:
            fold_temperature(model, temperature)
        return model
    raise ValueError(
        f"{where}: unknown policy kind info.policy.kind={kind!r}; known: {', '.join(POLICY_KINDS)}"
    )
