"""A generator's outputs at the positions of composition observations: batched and incremental.

An observation of :class:`rlmusic.envs.composition.CompositionEnv` is ``tokens (T,)`` padded with
``vocab_size`` (== the generators' BOS token) followed by the position ``t``. The generator's
output for it is the one at position ``t`` of ``[BOS, tokens[:t]]`` (the distribution of the next
token). Two ways to get it:

- :func:`position_outputs` (training, targets, PPO minibatches): whole-prefix forward passes, one
  per longest shared prefix (:func:`covering_rows`), rows grouped by length on CPU so short
  prefixes are not padded to the longest one (:func:`span_groups`).
- :class:`IncrementalLogits` (acting): each environment's generator state is kept between the
  steps of an episode, so a step costs one ``generator.step`` instead of a pass over the prefix.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from rlmusic.models.base import prefill

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
    if model.arch != arch or asdict(model.config) != config:
        raise ValueError(
            f"the generator ({model.arch}, {asdict(model.config)}) is not the one this policy "
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


# ---- acting: one generator step per env step ------------------------------------------------


@dataclass
class _RowState:
    """What one environment's row last read: its tokens, the state after them, the logits there."""

    version: tuple[int, int]
    tokens: torch.Tensor  # (n,) on CPU: the prefix read after BOS
    state: Any  # the generator's state after [BOS, *tokens] (batch 1)
    logits: torch.Tensor  # (1, V): the distribution of token n


class IncrementalLogits:
    """Next-token logits at observations, reusing each environment's generator state.

    An SB3 algorithm acts on one observation per environment per step, each the previous one
    plus a token. Row i of the observation batch (environment i) keeps the generator state after
    the prefix it last read, the logits there and the weights' version. An observation whose
    prefix extends the cached one by at most ``max_steps`` tokens is served by stepping those
    tokens. Anything else -- a new episode, a primer, another batch, a longer gap (epsilon-greedy
    moves taken without the network), changed weights, a generator in training mode (dropout)
    -- reads the whole prefix again (one ``prefill`` pass), so the values always equal the full
    recomputation (up to float rounding); correctness never depends on the cache.

    The weights' version is :meth:`clear`'s count plus the parameters' in-place version counters
    (optimizer steps, ``load_state_dict``); writes that bypass autograd's counters (fused
    optimizers, ``.data``) must call :meth:`clear`, as :class:`rlmusic.algos.sb3.rl_tuner.RLTunerDQN`
    does after its gradient steps.

    Args:
        generator: any generator (``step``; ``prefill`` if it has one).
        length: the composition length (observations are ``length + 1`` long).
        max_steps: the longest gap stepped through; longer ones read the prefix again.
    """

    def __init__(self, generator: nn.Module, length: int, max_steps: int = 4) -> None:
        self.generator = generator
        self.length = int(length)
        self.max_steps = int(max_steps)
        self._rows: dict[int, _RowState] = {}
        self._cleared = 0

    def clear(self) -> None:
        """Forget every cached state (the weights changed)."""
        self._rows.clear()
        self._cleared += 1

    def _version(self) -> tuple[int, int]:
        # autograd's per-tensor counter: every in-place write through autograd bumps it
        return self._cleared, sum(p._version for p in self.generator.parameters())

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) for observations (B, length + 1), without gradient."""
        if self.generator.training:  # dropout: no two passes agree, nothing to reuse
            self._rows.clear()
            return position_logits(self.generator, obs, self.length)
        obs = obs.long()
        host = obs.cpu()
        version = self._version()
        if len(self._rows) > len(obs):  # another batch than the environments': start over
            self._rows.clear()
        out = []
        for i in range(len(obs)):
            t = min(int(host[i, self.length]), self.length - 1)  # the terminal: as position_outputs
            out.append(self._row(i, obs[i], host[i, :t], version))
        return torch.cat(out).float()

    def _row(
        self, i: int, row: torch.Tensor, prefix: torch.Tensor, version: tuple[int, int]
    ) -> torch.Tensor:
        cached = self._rows.get(i)
        t = len(prefix)
        if (
            cached is not None
            and cached.version == version
            and len(cached.tokens) <= t <= len(cached.tokens) + self.max_steps
            and torch.equal(prefix[: len(cached.tokens)], cached.tokens)
        ):
            state, logits = cached.state, cached.logits
            for j in range(len(cached.tokens), t):  # the tokens written since
                logits, state = self.generator.step(row[j : j + 1], state)
        else:
            bos = torch.full((1, 1), int(self.generator.bos_token), dtype=torch.long)
            inputs = torch.cat([bos.to(row.device), row[None, :t]], dim=1)  # (1, t + 1)
            logits, state = prefill(self.generator, inputs)
        self._rows[i] = _RowState(version, prefix.clone(), state, logits)
        return logits
