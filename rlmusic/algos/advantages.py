"""Advantage estimators for fixed-length compositions: GAE (with a critic) and group baselines.

All take per-step rewards ``(B, T)``; every composition ends at step ``T - 1`` (terminal), so
nothing bootstraps across pieces.
"""

from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """(B, T) rewards -> (B, T) reward-to-go ``sum_k gamma^k r_{t+k}``.

    >>> discounted_returns(torch.tensor([[1.0, 0.0, 2.0]]), 0.5).tolist()
    [[1.5, 1.0, 2.0]]
    """
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns


def gae(
    rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation on (B, T); the value after the last step is 0.

    Returns (advantages, returns) where returns = advantages + values (the critic's target).
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, advantages + values


def group_advantages(
    rewards: torch.Tensor, group_size: int, gamma: float, method: str = "grpo"
) -> torch.Tensor:
    """Critic-free advantages: each step's reward-to-go against its group's, step by step.

    ``grpo`` subtracts the group mean and divides by the group std (Shao et al. 2024);
    ``rloo`` subtracts the mean of the *other* members (Ahmadian et al. 2024). Groups are
    consecutive rows: ``B`` must be a multiple of ``group_size``.
    """
    batch, steps = rewards.shape
    if group_size < 2 or batch % group_size:
        raise ValueError(f"batch {batch} must be a multiple of group_size {group_size} >= 2")
    returns = discounted_returns(rewards, gamma).view(batch // group_size, group_size, steps)
    mean = returns.mean(dim=1, keepdim=True)
    if method == "grpo":
        advantages = (returns - mean) / (returns.std(dim=1, keepdim=True) + 1e-6)
    elif method == "rloo":
        advantages = (returns - mean) * group_size / (group_size - 1)
    else:
        raise ValueError(f"unknown group advantage method {method!r}; known: grpo, rloo")
    return advantages.view(batch, steps)
