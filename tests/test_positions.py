"""Generator outputs at observation positions: grouped whole-prefix passes."""

from __future__ import annotations

import math

import pytest
import torch

from rlmusic.algos.sb3.positions import (
    position_outputs,
    span_groups,
)
from rlmusic.models import LSTMConfig, MusicTransformer, NoteLSTM, TransformerConfig

LENGTH = 12
VOCAB = 38


def lstm() -> NoteLSTM:
    torch.manual_seed(0)
    return NoteLSTM(LSTMConfig(embed_dim=8, hidden_size=16, num_layers=2, dropout=0.2)).eval()


def transformer() -> MusicTransformer:
    torch.manual_seed(0)
    config = TransformerConfig(d_model=16, n_heads=2, n_layers=2, d_ff=32, dropout=0.2)
    return MusicTransformer(config).eval()


MODELS = {"lstm": lstm, "transformer": transformer}


def observation(tokens: list[int], position: int) -> torch.Tensor:
    """The env's observation (1, LENGTH + 1) after ``tokens[:position]``."""
    obs = torch.full((1, LENGTH + 1), VOCAB, dtype=torch.long)
    obs[0, :position] = torch.as_tensor(tokens[:position])
    obs[0, LENGTH] = position
    return obs


def full_logits(generator: torch.nn.Module, obs: torch.Tensor) -> torch.Tensor:
    """The reference: one forward pass over [BOS, prefix] per observation."""
    rows = []
    for row in obs:
        t = min(int(row[LENGTH]), LENGTH - 1)
        inputs = torch.cat([torch.tensor([generator.bos_token]), row[:t]])[None]
        with torch.no_grad():
            rows.append(generator(inputs)[0, -1])
    return torch.stack(rows)


# ---- grouped whole-prefix passes -----------------------------------------------------------


def test_span_groups_trade_padding_against_calls() -> None:
    spans = [32, 1, 2, 31, 30, 3]
    assert span_groups(spans, math.inf) == [[1, 2, 5, 4, 3, 0]]  # one call, sorted by span
    groups = span_groups(spans, call_cost=10)
    assert sorted(i for g in groups for i in g) == list(range(6))
    assert [sorted(spans[i] for i in g) for g in groups] == [[1, 2, 3], [30, 31, 32]]
    assert len(span_groups(spans, call_cost=0)) == 6  # free calls: no padding at all
    assert span_groups([], 10) == []


@pytest.mark.parametrize("arch", list(MODELS))
def test_grouped_passes_equal_one_padded_pass(arch: str) -> None:
    generator = MODELS[arch]()
    rng = torch.Generator().manual_seed(0)
    pieces = torch.randint(0, VOCAB, (9, LENGTH), generator=rng)
    positions = torch.tensor([0, 1, 2, 5, 7, 11, 12, 3, 10])  # 12: the terminal observation
    obs = torch.full((9, LENGTH + 1), VOCAB, dtype=torch.long)
    for i, t in enumerate(positions.tolist()):
        obs[i, :t] = pieces[i, :t]
        obs[i, LENGTH] = t
    with torch.no_grad():
        one_logits, one_hidden = position_outputs(generator, obs, LENGTH, call_cost=math.inf)
        logits, hidden = position_outputs(generator, obs, LENGTH, call_cost=1)  # many groups
    torch.testing.assert_close(logits, one_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(hidden, one_hidden, rtol=0, atol=1e-5)
    torch.testing.assert_close(logits, full_logits(generator, obs), rtol=0, atol=1e-5)


def test_grouped_passes_carry_gradients() -> None:
    """Each row's logits get their gradient from exactly the tokens of its own prefix (and
    BOS): never from a later token of the row that serves it, always from every one it read."""
    generator = lstm().train()
    obs = torch.cat([observation(list(range(2, 14)), t) for t in (1, 4, 9)])
    obs[1, :4] = torch.tensor([7, 7, 7, 7])  # another piece: three rows, three groups
    logits, _ = position_outputs(generator, obs, LENGTH, call_cost=0)
    # row 0 ([2]) is read off row 2's pass ([2 .. 10]); row 1 is [7, 7, 7, 7]
    prefixes = {0: {2}, 1: {7}, 2: set(range(2, 11))}
    for row, tokens in prefixes.items():
        (grad,) = torch.autograd.grad(logits[row].sum(), generator.embed.weight, retain_graph=True)
        touched = set(torch.nonzero(grad.abs().sum(1)).squeeze(1).tolist())
        assert touched == tokens | {generator.bos_token}, (row, sorted(touched))
    logits.sum().backward()
    assert generator.head.weight.grad.abs().sum(1).gt(0).all()  # every token's logit is trained
