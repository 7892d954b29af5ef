"""A generator's outputs at the positions of composition observations, in batched passes.

An observation of :class:`rlmusic.envs.composition.CompositionEnv` is ``tokens (T,)`` padded with
``vocab_size`` (== the generators' BOS token) followed by the position ``t``. The generator's
output for it is the one at position ``t`` of ``[BOS, tokens[:t]]`` (the distribution of the next
token). :class:`rlmusic.envs.harmonisation.HarmonisationEnv` keeps that contract over a
harmoniser's whole input: its ``tokens`` are the conditioning prefix ``[S_0 .. S_{n-1}, BOS]``
then the piece, and ``t`` counts both, so the same code reads ``[BOS, prefix, piece[:t]]``. :func:`position_outputs` (PPO's minibatches) computes it with whole-prefix forward
passes, one per longest shared prefix (:func:`covering_rows`), rows grouped by length on CPU so
short prefixes are not padded to the longest one (:func:`span_groups`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from rlmusic.models.checkpoint import generator_config

# Rows are grouped by prefix length on CPU when a group saves more padded positions (rows x
# steps) than this: what one more forward call costs. On CPU the oneDNN LSTM reorders its
# weights on every call (~1.5 ms for the shipped 2x256 LSTM, the price of ~70 row-steps at
# batch 32); on GPUs padding is nearly free and one call is best.
CPU_CALL_COST = 64


def check_vocabulary(generator_config: dict[str, Any], action_space: Any) -> None:
    """Fail at start-up when a generator's vocabulary is not the environment's action space."""
    vocab = int(generator_config.get("vocab_size", -1))
    if vocab != int(action_space.n):
        raise ValueError(
            f"the generator's vocabulary ({vocab} tokens) does not fit the environment's "
            f"action space ({action_space.n} tokens): they must share the token encoding"
        )


def check_same_generator(model: nn.Module, arch: str, config: dict[str, Any]) -> None:
    """Fail when ``model`` is not of the architecture and config a policy was built for."""
    if model.arch != arch or generator_config(model) != config:
        raise ValueError(
            f"the generator ({model.arch}, {generator_config(model)}) is not the one this policy "
            f"was built for ({arch}, {config})"
        )


def covering_rows(tokens: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """For each row i, a row j (B,) whose prefix ``tokens[j, :t_j]`` extends ``tokens[i, :t_i]``.

    Observations of one composition are prefixes of each other, so a causal generator's outputs
    at position ``t_i`` of row j are row i's: one forward pass per longest prefix serves a whole
    rollout or minibatch (PPO's minibatches hold ~8 steps of each piece; a rollout all 32).
    """
    batch, length = tokens.shape
    inside = torch.arange(length, device=t.device)[None, :] < t[:, None]  # (B, L): i's prefix
    agree = (tokens[:, None, :] == tokens[None, :, :]) | ~inside[:, None, :]  # (B_i, B_j, L)
    covers = agree.all(-1) & (t[None, :] >= t[:, None])  # (B_i, B_j); every row covers itself
    # the covering row with the longest prefix (ties: the first), so few distinct rows remain
    rank = t[None, :] * batch + (batch - 1 - torch.arange(batch, device=t.device))[None, :]
    return torch.where(covers, rank, torch.full_like(rank, -1)).argmax(dim=1)


def span_groups(spans: list[int], call_cost: float) -> list[list[int]]:
    """Partition rows into groups, each run as one forward pass padded to its longest span.

    Minimises ``sum(rows x longest span) + call_cost x groups`` over groups of rows that are
    contiguous in span order (an optimal partition always is): a dynamic programme over the
    sorted spans, O(K^2) for K rows (K <= a few dozen here).

    Args:
        spans: positions each row needs (its prefix length + 1).
        call_cost: the cost of one more forward call, in padded positions; ``inf``: one group.

    Returns:
        Lists of row indices, shortest spans first.
    """
    order = sorted(range(len(spans)), key=spans.__getitem__)
    if not order:
        return []
    if math.isinf(call_cost):
        return [order]
    sorted_spans = [spans[i] for i in order]
    best = [0.0] + [math.inf] * len(order)  # best[j]: cost of the j shortest rows
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = sorted_spans[j - 1]
        for i in range(j):  # the last group is sorted rows i .. j-1
            cost = best[i] + (j - i) * longest + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups, j = [], len(order)
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def position_outputs(
    generator: nn.Module, obs: torch.Tensor, length: int, call_cost: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token logits (B, V) and last hidden layer (B, H) for observations (B, length + 1).

    The terminal observation (position == length) has no next token: it is scored at the last
    position (its value is masked by ``done`` in every backup and bootstrap). Rows whose prefix
    another row extends are read off that row's forward pass (:func:`covering_rows`); the rows
    that are run are grouped by length (:func:`span_groups`, ``call_cost`` None: by device).
    """
    obs = obs.long()
    tokens = obs[:, :length]
    t = obs[:, length].clamp(0, length - 1)
    source = covering_rows(tokens, t)  # (B,)
    rows, slot = torch.unique(source, return_inverse=True)  # the K rows that are run
    if call_cost is None:
        call_cost = CPU_CALL_COST if obs.device.type == "cpu" else math.inf
    spans = (t[rows] + 1).tolist()  # causal: a run row needs positions up to its own t
    groups = span_groups(spans, call_cost)
    if len(groups) == 1:  # every row in one pass (the common case off CPU)
        span = max(spans)
        inputs = _inputs(generator, tokens[rows], span)  # (K, span)
        logits, hidden = generator.forward_with_hidden(inputs)  # (K, span, V), (K, span, H)
        return logits[slot, t].float(), hidden[slot, t].float()
    served, logits_parts, hidden_parts = [], [], []
    for group in groups:
        members = torch.as_tensor(group, device=obs.device)  # run rows (indices into rows)
        in_group = slot[:, None] == members[None, :]  # (B, k)
        these = in_group.any(dim=1).nonzero().squeeze(1)  # the observations this group serves
        local = in_group[these].int().argmax(dim=1)  # their run row within the group
        inputs = _inputs(generator, tokens[rows[members]], max(spans[i] for i in group))
        logits, hidden = generator.forward_with_hidden(inputs)  # (k, span, V), (k, span, H)
        served.append(these)
        logits_parts.append(logits[local, t[these]])
        hidden_parts.append(hidden[local, t[these]])
    order = torch.cat(served)
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order), device=order.device)
    return torch.cat(logits_parts)[inverse].float(), torch.cat(hidden_parts)[inverse].float()


def _inputs(generator: nn.Module, tokens: torch.Tensor, span: int) -> torch.Tensor:
    """``[BOS, tokens[:, :span - 1]]`` (rows, span): the inputs whose outputs 0..span-1 are needed."""
    bos = torch.full_like(tokens[:, :1], int(generator.bos_token))
    return torch.cat([bos, tokens[:, : span - 1]], dim=1)


def position_logits(generator: nn.Module, obs: torch.Tensor, length: int) -> torch.Tensor:
    """Logits (B, V) of ``generator`` for the next token of each observation (B, length + 1)."""
    return position_outputs(generator, obs, length)[0]
