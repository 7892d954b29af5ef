"""Acting: B compositions played at once, one batched incremental generator step per note.

The Q-network is the generator itself (Q(s, .) = its logits at the state's position), so acting
is sampling with a different choice rule: the Q-network's ``step`` carries every composition's
LSTM state or KV cache, and G-learning steps its prior beside it. Each step chooses a note for
every composition at once, epsilon-greedy on the variant's policy or a sample of it
(Boltzmann), and the note chosen is the note stored, whichever rule chose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Rollout:
    """What a round of acting leaves.

    Attributes:
        tokens: (B, T) the notes played.
        prior_log_probs: (B, T, V) log p_prior(. | s_t), when the prior was stepped (``g``).
        explored: the share of notes chosen at random (epsilon-greedy) or off the argmax.
    """

    tokens: torch.Tensor
    prior_log_probs: torch.Tensor | None
    explored: float


def policy_logits(
    variant: str,
    values: torch.Tensor,
    prior_log_probs: torch.Tensor | None = None,
    psi_temperature: float = 1.0,
) -> torch.Tensor:
    """The variant's policy as logits: ``q`` softmax(Q), ``psi`` softmax(Psi / c_T), ``g``
    softmax(G + log p_prior) = p_prior exp(G) normalised."""
    if variant == "psi":
        return values / psi_temperature
    if variant == "g":
        if prior_log_probs is None:
            raise ValueError("G-learning's policy needs log p_prior")
        return values + prior_log_probs
    return values


@torch.no_grad()
def act(
    q_network: nn.Module,
    n: int,
    length: int,
    variant: str,
    rng: torch.Generator,
    epsilons: Sequence[float] | None,
    prior: nn.Module | None = None,
    temperature: float = 1.0,
    psi_temperature: float = 1.0,
) -> Rollout:
    """Play ``n`` compositions of ``length`` steps from BOS.

    Args:
        q_network: the online network (a generator; its mode is the caller's: eval, no dropout).
        variant: ``q`` | ``psi`` | ``g``.
        rng: every random draw (on the network's device).
        epsilons: epsilon-greedy's epsilon at each step (``length`` values), or None for
            Boltzmann exploration: sample the variant's policy (``q``: softmax(Q / temperature)).
        prior: the frozen prior, stepped beside the network when given (``g`` needs it).
        temperature: ``q``'s Boltzmann temperature.
        psi_temperature: ``psi``'s c_T.
    """
    device = next(q_network.parameters()).device
    tokens = torch.empty(n, length, dtype=torch.long, device=device)
    prior_lp = None
    if prior is not None:
        prior_lp = torch.empty(n, length, int(q_network.vocab_size), device=device)
    token = torch.full((n,), int(q_network.bos_token), dtype=torch.long, device=device)
    state = prior_state = None
    explored = torch.zeros((), device=device)
    for t in range(length):
        values, state = q_network.step(token, state)  # (n, V)
        step_prior = None
        if prior is not None and prior_lp is not None:
            prior_logits, prior_state = prior.step(token, prior_state)
            step_prior = F.log_softmax(prior_logits.float(), dim=-1)
            prior_lp[:, t] = step_prior
        logits = policy_logits(variant, values.float(), step_prior, psi_temperature)
        greedy = logits.argmax(dim=-1)
        if epsilons is None:  # Boltzmann: the policy's own sample
            scale = temperature if variant == "q" else 1.0
            probs = F.softmax(logits / scale, dim=-1)
            token = torch.multinomial(probs, 1, generator=rng).squeeze(1)
        else:
            explore = torch.rand(n, generator=rng, device=device) < float(epsilons[t])
            random = torch.randint(logits.shape[-1], (n,), generator=rng, device=device)
            token = torch.where(explore, random, greedy)
        explored += (token != greedy).sum()
        tokens[:, t] = token
    return Rollout(tokens, prior_lp, float(explored) / max(n * length, 1))
