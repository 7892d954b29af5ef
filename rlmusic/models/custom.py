"""Your own generator: any ``torch.nn.Module`` named by ``_target_``, wrapped to the interface.

``model=custom model._target_=my_models.TinyGRU +model.hidden=48`` builds
``my_models.TinyGRU(vocab_size=<the encoding's>, hidden=48)`` and wraps it in
:class:`CustomGenerator`. The least the module must do is

    forward(tokens (B, T) int64) -> logits (B, T, vocab_size)

causally (position t sees ``tokens[:, :t+1]`` only), with ``bos_token == vocab_size`` as a
possible input (its embedding needs ``vocab_size + 1`` rows). Everything else is optional, with
these fallbacks:

- ``step(token, state) -> (logits, state)``: without it, ``state`` is the prefix read so far
  and every step runs ``forward`` over the whole prefix (O(T^2) sampling; measured in
  docs/results/models.md).
- ``prefill(tokens) -> (logits, state)``: the module's own, else ``step`` through the prefix
  when it has ``step``, else one ``forward`` (the prefix is the state).
- ``forward_with_hidden(tokens) -> (logits, hidden)``: without it the value functions of the
  PPO learners (:mod:`rlmusic.algos.value`) read ``log_softmax(logits)`` (B, T, vocab_size),
  detached, as the hidden features.
- a linear ``head`` (the output layer): only RL Tuner's Psi policy and a sampling temperature
  other than 1 in fine-tuning fold a temperature into it.

Trust model, as for reward terms: a checkpoint records the import path and the constructor's
arguments (``config``: ``{"vocab_size", "_target_", **arguments}``) and the weights as tensors;
loading imports the module again and never unpickles anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

CUSTOM_ARCH = "custom"  # the ``arch`` a checkpoint of a user's model records
TARGET_KEY = "_target_"  # the config key holding the import path


class CustomGenerator(nn.Module):
    """A user's module behind the generator interface (``bos_token``, ``step``, ``prefill``,
    ``forward_with_hidden``), with its own methods where it has them.

    Args:
        net: the user's module (its weights are this module's ``net.*``).
        config: ``{"vocab_size": V, "_target_": "pkg.Class", **arguments}``: what built it.
    """

    arch = CUSTOM_ARCH

    def __init__(self, net: nn.Module, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.config = dict(config)
        self.vocab_size = int(self.config["vocab_size"])

    @property
    def bos_token(self) -> int:
        return self.vocab_size

    @property
    def target(self) -> str:
        """The user's class, as its import path."""
        return str(self.config[TARGET_KEY])

    @property
    def head(self) -> nn.Module | None:
        """The user's output layer where it is called ``head`` (temperature folding)."""
        return getattr(self.net, "head", None)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 -> logits (B, T, V)."""
        return self.net(tokens)

    def forward_with_hidden(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The module's own, else the logits and ``log_softmax(logits)`` (B, T, V), detached."""
        if hasattr(self.net, "forward_with_hidden"):
            return self.net.forward_with_hidden(tokens)
        logits = self.net(tokens)  # (B, T, V)
        return logits, F.log_softmax(logits.detach().float(), dim=-1)

    def step(self, token: torch.Tensor, state: Any | None) -> tuple[torch.Tensor, Any]:
        """The module's own ``step``, else recompute: the state is the prefix (B, t) so far."""
        if hasattr(self.net, "step"):
            return self.net.step(token, state)
        prefix = token[:, None] if state is None else torch.cat([state, token[:, None]], dim=1)
        return self.net(prefix)[:, -1], prefix  # (B, V), (B, t + 1)

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(B, T) -> logits (B, T, V) and the state ``step`` goes on from."""
        if hasattr(self.net, "prefill"):
            return self.net.prefill(tokens)
        if hasattr(self.net, "step"):
            state, logits = None, []
            for t in range(tokens.shape[1]):
                step_logits, state = self.net.step(tokens[:, t], state)
                logits.append(step_logits)
            return torch.stack(logits, dim=1), state
        return self.net(tokens), tokens


def build_custom(config: Mapping[str, Any], error: type[Exception], where: str) -> CustomGenerator:
    """``config["_target_"](vocab_size=..., **the other keys)``, wrapped.

    Raises:
        error: no ``_target_``, a module that does not import, a constructor that rejects the
            arguments, or something that is not a torch module; one line naming ``where``, the
            target and the arguments.
    """
    from rlmusic.targets import import_target

    config = dict(config)
    target = config.get(TARGET_KEY)
    if not target or str(target) == "???":
        raise error(
            f"{where}: model=custom needs model.{TARGET_KEY}=<module.Class> (a torch module on "
            "PYTHONPATH)"
        )
    cls = import_target(str(target), error, where=f"{where}: model.{TARGET_KEY}")
    arguments = {k: v for k, v in config.items() if k != TARGET_KEY}
    shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    try:
        net = cls(**arguments)
    except (TypeError, ValueError) as exc:
        raise error(f"{where}: {target}({shown}) rejects its arguments ({exc})") from None
    if not isinstance(net, nn.Module):
        raise error(f"{where}: {target}({shown}) is a {type(net).__name__}, not a torch.nn.Module")
    return CustomGenerator(net, {**arguments, TARGET_KEY: str(target)})
