"""The value estimate of the PPO learners: a head that reads the generator but never moves it.

Sharing the generator's body with a value loss is how ``algo=ppo`` used to collapse: the value
loss (returns of order 100 at gamma 1, a squared error near 1,400 at the start) flowed into the
generator, and one clipped gradient norm over both made the generator's update mostly value
regression. :class:`ValueFunction` removes both paths:

- it reads the generator's last hidden state **detached**, so no value gradient reaches the policy;
- it has its own parameters (its own optimizer and its own gradient clipping in the learners);
- it regresses **normalised** returns (PopArt, van Hasselt et al. 2016): running statistics of
  the return targets, with the output layer rescaled whenever they move so that the
  unnormalised predictions stay put. The squared error is then of order 1 whatever the reward's
  scale, and one learning rate suits every reward preset.

What the hidden state does not tell (how many steps are left: sequence-level rules pay on the
last one) comes from a learned embedding of the step index.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ValueFunction(nn.Module):
    """V(s_t) = mean + std * MLP(stopgrad(hidden_t), t), with PopArt-normalised targets.

    Args:
        hidden_size: the generator's last hidden layer width.
        length: steps per composition (positions 0..length are embedded; ``length`` is the
            terminal observation, whose value every backup masks).
        width: the MLP's width.
        stats_rate: how fast the return statistics follow new rollouts (an exponential moving
            average; the first update takes the rollout's statistics as they are, and the
            zero-initialised head then predicts their mean).
    """

    def __init__(
        self, hidden_size: int, length: int, width: int = 128, stats_rate: float = 0.1
    ) -> None:
        super().__init__()
        self.length = int(length)
        self.stats_rate = float(stats_rate)
        self.features = nn.Linear(hidden_size, width)
        self.position = nn.Embedding(self.length + 1, width)
        self.out = nn.Linear(width, 1)
        # zero output: the critic starts neutral (at the running mean once statistics exist)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def normalized(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Normalised values (...,) for hidden states (..., H) and step indices (...,)."""
        positions = positions.long().clamp(0, self.length)
        h = torch.tanh(self.features(hidden.detach().float()) + self.position(positions))
        return self.out(h).squeeze(-1)

    def forward(self, hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Values in the reward's units (...,)."""
        return self.mean + self.std * self.normalized(hidden, positions)

    def loss(
        self, hidden: torch.Tensor, positions: torch.Tensor, returns: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error in normalised units (gradients reach only this module)."""
        target = (returns.float() - self.mean) / self.std
        return F.mse_loss(self.normalized(hidden, positions), target)

    @torch.no_grad()
    def update_statistics(self, returns: torch.Tensor) -> None:
        """Move the return statistics towards ``returns`` and keep every prediction unchanged."""
        returns = returns.float().flatten()
        batch_mean, batch_std = returns.mean(), returns.std(unbiased=False).clamp_min(1e-4)
        if int(self.updates) == 0:
            # the first returns: the untrained head's zero is not worth preserving; the critic
            # starts at their mean
            self.mean.copy_(batch_mean)
            self.std.copy_(batch_std)
            self.updates += 1
            return
        else:
            rate = self.stats_rate
            new_mean = (1 - rate) * self.mean + rate * batch_mean
            second = (1 - rate) * (self.std**2 + self.mean**2) + rate * (
                batch_std**2 + batch_mean**2
            )
            new_std = (second - new_mean**2).clamp_min(1e-8).sqrt()
        # PopArt's output preservation: mean + std * (w h + b) is the same before and after
        self.out.weight.mul_(self.std / new_std)
        self.out.bias.mul_(self.std).add_(self.mean - new_mean).div_(new_std)
        self.mean.copy_(new_mean)
        self.std.copy_(new_std)
        self.updates += 1


def explained_variance(predicted: torch.Tensor, returns: torch.Tensor) -> float:
    """``1 - Var[returns - predicted] / Var[returns]``: 1 is perfect, 0 no better than a constant.

    >>> round(explained_variance(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0])), 3)
    1.0
    """
    returns, predicted = returns.float().flatten(), predicted.float().flatten()
    variance = returns.var(unbiased=False)
    if float(variance) == 0.0:
        return float("nan")
    return float(1.0 - (returns - predicted).var(unbiased=False) / variance)
