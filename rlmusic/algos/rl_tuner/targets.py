"""RL Tuner's three one-step backups (Jaques et al. 2017), for single transitions and for whole
compositions.

With ``d`` the episode end (a composition's last step: its target never reads another piece):

- ``q``:   y = r + g (1 - d) max_a' Q_T(s', a')  (``double_q``: Q_T(s', argmax_a' Q(s', a')));
- ``psi``: y = r + g (1 - d) c_T logsumexp_a' (Psi_T(s', a') / c_T)  (c_T: ``psi_temperature``);
- ``g``:   y = r + g (1 - d) log sum_a' p_prior(a'|s') exp(G_T(s', a')),  with r = r_task / w.

``Q_T`` is the target network. The rewards differ by variant (see :mod:`rlmusic.algos.rl_tuner.run`):
q and psi learn on ``w log p_prior + r_task`` (the paper's ``log p_prior + r_MT / c``), g on
``r_task / w``, with the prior inside the backup instead.
"""

from __future__ import annotations

import torch

from rlmusic.algos.rl_tuner.config import VARIANTS


def state_values(
    variant: str,
    target_values: torch.Tensor,
    online_values: torch.Tensor | None = None,
    prior_log_probs: torch.Tensor | None = None,
    psi_temperature: float = 1.0,
) -> torch.Tensor:
    """V(s) (...,) of states from the target network's action values (..., V).

    Args:
        variant: ``q`` | ``psi`` | ``g``.
        target_values: Q_T(s, .) (any leading shape, actions last).
        online_values: Q(s, .), whose argmax picks the action for Double DQN (``q`` only).
        prior_log_probs: log p_prior(. | s), needed by ``g``.
        psi_temperature: c_T of ``psi``.
    """
    if variant == "q":
        if online_values is None:
            return target_values.max(dim=-1).values
        best = online_values.argmax(dim=-1, keepdim=True)
        return target_values.gather(-1, best).squeeze(-1)
    if variant == "psi":
        return psi_temperature * torch.logsumexp(target_values / psi_temperature, dim=-1)
    if variant == "g":
        if prior_log_probs is None:
            raise ValueError("G-learning's backup needs log p_prior(. | s')")
        return torch.logsumexp(prior_log_probs + target_values, dim=-1)
    raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")


def td_targets(
    variant: str,
    rewards: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    next_target: torch.Tensor,
    next_online: torch.Tensor | None = None,
    next_prior_log_probs: torch.Tensor | None = None,
    psi_temperature: float = 1.0,
) -> torch.Tensor:
    """One-step targets (...,) from rewards and dones (...,) and next-state values (..., V).

    A done transition's target is its reward alone, whatever the next-state values hold.
    """
    value = state_values(variant, next_target, next_online, next_prior_log_probs, psi_temperature)
    # where(): a done step's (unused) next state must not leak even a non-finite value
    return rewards + gamma * torch.where(dones.bool(), torch.zeros_like(value), value)


def piece_targets(
    variant: str,
    rewards: torch.Tensor,
    gamma: float,
    target_values: torch.Tensor,
    online_values: torch.Tensor | None = None,
    prior_log_probs: torch.Tensor | None = None,
    psi_temperature: float = 1.0,
) -> torch.Tensor:
    """Targets (N, T) for every step of N whole compositions.

    ``target_values[:, t]`` is Q_T(s_t, .), the state before step t (one forward pass of the
    piece), so step t's next state is position t + 1; the last step is terminal and reads no
    next state (there is none in the piece, and another piece's first state is not one).

    Args:
        rewards: (N, T) per-step rewards.
        target_values: (N, T, V) the target network's values at every position.
        online_values: (N, T, V) the online network's (Double DQN only).
        prior_log_probs: (N, T, V) log p_prior(. | s_t) (``g`` only).
    """
    dones = torch.zeros_like(rewards, dtype=torch.bool)
    dones[:, -1] = True

    def shifted(values: torch.Tensor | None) -> torch.Tensor | None:
        # position t + 1 for step t; zeros stand in for the last step's missing next state
        if values is None:
            return None
        return torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)

    return td_targets(
        variant,
        rewards,
        dones,
        gamma,
        shifted(target_values),
        shifted(online_values),
        shifted(prior_log_probs),
        psi_temperature,
    )
