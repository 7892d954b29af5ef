"""The generator interface shared by NoteLSTM and MusicTransformer (DESIGN.md "Generators").

A user's own module needs only ``forward``; :class:`rlmusic.models.custom.CustomGenerator`
wraps it with ``bos_token``, ``step``, ``prefill`` and ``forward_with_hidden`` fallbacks.

Token conventions: the output vocabulary is the encoding's (``vocab_size``, 38 by default).
Inputs may also hold ``bos_token == vocab_size``, a start-of-sequence token that is only
ever an input: to score or sample a melody ``x_0..x_{T-1}`` the model reads
``[BOS, x_0, .., x_{T-2}]`` and its logits at position ``t`` are the distribution of ``x_t``.

Optionally a generator has ``prefill(tokens) -> (logits (B, T, V), state)``: read a whole
prefix in one pass and return the state ``step`` goes on from (:func:`prefill` falls back to
stepping through the prefix for generators without one).
"""

from __future__ import annotations

import copy as copy_module
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from rlmusic.errors import UserError


@runtime_checkable
class Generator(Protocol):
    """What every generator provides. ``state`` is opaque (LSTM (h, c), Transformer KV cache)."""

    vocab_size: int  # output classes; the input embedding has vocab_size + 1 rows (BOS)

    @property
    def bos_token(self) -> int: ...

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 -> logits (B, T, vocab_size); position t sees tokens[:, :t+1] only."""
        ...

    def forward_with_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like forward, also returning the last hidden layer (B, T, H) for value heads."""
        ...

    def step(self, token: torch.Tensor, state: Any | None) -> tuple[torch.Tensor, Any]:
        """One incremental step: (B,) int64 and the state -> logits (B, vocab_size), new state.

        ``state=None`` starts a fresh sequence. Feeding BOS then x_0, x_1, .. reproduces
        ``forward([BOS, x_0, x_1, ..])`` position by position.
        """
        ...


def with_bos(tokens: torch.Tensor, bos_token: int) -> torch.Tensor:
    """(B, T) melody -> (B, T) model input ``[BOS, x_0, .., x_{T-2}]`` (shifted right)."""
    bos = torch.full_like(tokens[:, :1], bos_token)
    return torch.cat([bos, tokens[:, :-1]], dim=1)


def sequence_log_probs(
    generator: Generator, tokens: torch.Tensor, prefix: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(x_t | x_<t) for every step of a (B, T) batch, in one forward pass -> (B, T).

    ``prefix`` (B, P): tokens read between BOS and the piece (a harmoniser's conditioning);
    their positions are not scored."""
    if prefix is None:
        logits = generator.forward(with_bos(tokens, generator.bos_token))  # (B, T, V)
    else:
        full = torch.cat([prefix.to(tokens.device), tokens], dim=1)
        logits = generator.forward(with_bos(full, generator.bos_token))[:, prefix.shape[1] :]
    return F.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def prefill(generator: Generator, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """Read the inputs ``tokens (B, T)`` (BOS first): the last position's logits (B, V) and the
    state after it, from which ``step`` goes on.

    Uses the generator's own ``prefill`` (one pass) when it has one, else ``step`` T times.
    """
    if hasattr(generator, "prefill"):
        logits, state = generator.prefill(tokens)
        return logits[:, -1], state
    state = None
    for t in range(tokens.shape[1]):
        logits, state = generator.step(tokens[:, t], state)
    return logits, state


def frozen(module: nn.Module, copy: bool = False) -> nn.Module:
    """``module`` (or a deep copy of it) in eval mode with gradients off: a reference model.

    The one place the project freezes a model (priors, KL references, critics' members).
    """
    if copy:
        module = copy_module.deepcopy(module)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class HeadlessGeneratorError(UserError, ValueError):
    """A setting needs the generator's output layer (``head``) and the generator has none: a
    user's choice of model and setting, printed by the CLI as one line."""


@torch.no_grad()
def fold_temperature(generator: nn.Module, temperature: float) -> nn.Module:
    """Divide the output layer by ``temperature``: the model then *is* ``softmax(logits / T)``.

    A policy trained from a tempered sampler is the tempered model: folding the temperature
    into its weights before training makes acting, the PPO ratio, the KL and every later task
    (which samples at temperature 1) see one and the same distribution.

    Raises:
        ValueError: a temperature <= 0.
        HeadlessGeneratorError: a generator without a linear ``head`` (a user error).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to fold it into a policy, got {temperature}")
    head = getattr(generator, "head", None)
    if not isinstance(head, nn.Linear):
        raise HeadlessGeneratorError(
            f"a temperature of {temperature} is folded into the generator's output layer, and "
            f"{type(generator).__name__} has no linear output layer named `head`: leave the "
            "temperature at 1 (algo.temperature / algo.psi_temperature) or name your model's "
            "last nn.Linear `head`"
        )
    head.weight.div_(temperature)
    if head.bias is not None:
        head.bias.div_(temperature)
    return generator
