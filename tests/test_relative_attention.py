"""Relative global attention: the skewing trick equals the explicit O(L^2 D) computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rlmusic.models.transformer import RelativeGlobalAttention, TransformerConfig, skew
from tests.test_models import one_thread  # noqa: F401  (autouse fixture)


def explicit_relative_logits(q: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """S[b, h, i, j] = q[b, h, i] . E[h, clip(i - j)] via an (L, L, Dh) gather per head."""
    L, max_rel = q.shape[2], table.shape[1]
    i = torch.arange(L).unsqueeze(1)
    j = torch.arange(L).unsqueeze(0)
    distance = (i - j).clamp(min=0, max=max_rel - 1)  # (L, L); j > i is masked anyway
    r = table[:, distance]  # (H, L, L, Dh): the tensor skewing avoids
    return torch.einsum("bhid,hijd->bhij", q, r)


@pytest.mark.parametrize("length,max_rel", [(1, 4), (7, 16), (16, 16), (23, 5)])
def test_skewed_relative_logits_equal_explicit(length: int, max_rel: int) -> None:
    g = torch.Generator().manual_seed(length * 100 + max_rel)
    B, H, Dh = 3, 2, 8
    q = torch.randn(B, H, length, Dh, generator=g, dtype=torch.float64)
    table = torch.randn(H, max_rel, Dh, generator=g, dtype=torch.float64)
    distances = torch.arange(length - 1, -1, -1).clamp(max=max_rel - 1)
    e_r = table[:, distances]  # (H, L, Dh), column r = distance L-1-r
    skewed = skew(torch.einsum("bhtd,hrd->bhtr", q, e_r))
    explicit = explicit_relative_logits(q, table)
    lower = torch.ones(length, length, dtype=torch.bool).tril()
    torch.testing.assert_close(skewed[..., lower], explicit[..., lower], rtol=0, atol=1e-12)


def test_attention_layer_equals_explicit_reference() -> None:
    """The whole layer (skewed) against softmax((QK^T + S_explicit) / sqrt(d)) V by hand."""
    torch.manual_seed(0)
    config = TransformerConfig(d_model=16, n_heads=2, dropout=0.0, max_relative_position=6)
    attn = RelativeGlobalAttention(config).double().eval()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    B, T, C = x.shape
    q, k, v = (
        t.view(B, T, 2, 8).transpose(1, 2) for t in attn.qkv(x).split(C, dim=2)
    )  # (B, H, T, Dh)
    logits = (q @ k.transpose(-2, -1) + explicit_relative_logits(q, attn.relative)) / math.sqrt(8)
    logits = logits.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    expected = attn.proj((F.softmax(logits, -1) @ v).transpose(1, 2).reshape(B, T, C))
    torch.testing.assert_close(attn(x), expected, rtol=0, atol=1e-12)


def test_attention_is_causal() -> None:
    torch.manual_seed(1)
    attn = RelativeGlobalAttention(TransformerConfig(d_model=16, n_heads=4, dropout=0.0)).eval()
    x = torch.randn(1, 9, 16)
    y = torch.randn(1, 9, 16)
    y[:, :5] = x[:, :5]
    torch.testing.assert_close(attn(x)[:, :5], attn(y)[:, :5])
