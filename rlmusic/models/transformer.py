"""MusicTransformer: a decoder-only Transformer with relative global attention (Huang et al. 2018).

Relative attention adds, to each query-key logit, the dot product of the query with a learned
embedding of the distance between the two positions: ``logit_ij = q_i . k_j + q_i . E[i - j]``.
Music repeats at fixed distances (a beat, a bar, a phrase), which relative positions express
directly. There are no absolute position embeddings: the distance to BOS tells a position from
the start, up to ``max_relative_position`` where distances are clipped (so any length samples).

The relative term is computed with the paper's memory-efficient *skewing*: ``Q E_r^T`` is one
(L, L) matrix per head, indexed by (query, distance); padding a zero column, reshaping and
dropping a row shifts every row into (query, key) order. Memory is O(L^2 + L D), never the
O(L^2 D) of gathering one embedding per (i, j) pair (Shaw et al. 2018).

``step`` keeps a KV cache, so sampling T tokens costs O(T) per token instead of O(T^2);
``prefill`` reads a whole prefix in one pass and returns the cache to step on from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TransformerConfig:
    """Everything that shapes a MusicTransformer; saved in its checkpoints.

    Args:
        vocab_size: output classes (the encoding's vocabulary; BOS is one extra input row).
        d_model: residual stream width.
        n_heads: attention heads (``d_model`` must divide by it).
        n_layers: Transformer blocks.
        d_ff: hidden width of each block's MLP.
        dropout: on attention weights, residual branches and the embedding (training only).
        max_relative_position: learned distances ``0..max_relative_position-1``; farther keys
            share the last embedding.
    """

    vocab_size: int = 38
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 4
    d_ff: int = 512
    dropout: float = 0.1
    max_relative_position: int = 128


def skew(rel_logits: torch.Tensor) -> torch.Tensor:
    """(..., L, L) indexed [query i, relative column r] -> (..., L, L) indexed [query i, key j].

    Column ``r`` of the input holds distance ``L - 1 - r`` (the last column is distance 0).
    The output's entry (i, j) is the input's (i, L - 1 - i + j), i.e. distance ``i - j``, for
    ``j <= i``; entries above the diagonal are junk and must be masked (causal attention does).
    """
    *batch, length, _ = rel_logits.shape
    padded = F.pad(rel_logits, (1, 0))  # (..., L, L+1): a zero column in front
    padded = padded.reshape(*batch, length + 1, length)  # rows slide by one each
    return padded[..., 1:, :]  # (..., L, L)


@dataclass
class KVCache:
    """Keys and values of every layer for the positions seen so far, in growing buffers.

    ``keys[layer]`` / ``values[layer]`` are (B, H, capacity, Dh); positions ``0..length-1`` are
    valid. ``step`` writes position ``length`` into the shared buffers and returns a new cache
    with ``length + 1``: stepping an older cache again overwrites the newer one's last slot,
    so branch by cloning (:meth:`clone`) first.
    """

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    length: int = 0

    def clone(self) -> KVCache:
        return KVCache(
            [k.clone() for k in self.keys], [v.clone() for v in self.values], self.length
        )

    def select(self, index: torch.Tensor) -> KVCache:
        """The cache of a subset (or reordering) of the batch rows."""
        return KVCache([k[index] for k in self.keys], [v[index] for v in self.values], self.length)


class RelativeGlobalAttention(nn.Module):
    """Causal multi-head self-attention with per-head learned relative-distance embeddings."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        if config.d_model % config.n_heads:
            raise ValueError(
                f"d_model={config.d_model} must be a multiple of n_heads={config.n_heads}"
            )
        self.n_heads = config.n_heads
        self.head_dim = config.d_model // config.n_heads
        self.max_relative_position = config.max_relative_position
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        # E_r: one embedding per head and distance 0..max_relative_position-1
        self.relative = nn.Parameter(
            torch.randn(config.n_heads, config.max_relative_position, self.head_dim) * 0.02
        )
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.dropout = config.dropout  # on the attention weights, inside the fused kernel
        self.resid_drop = nn.Dropout(config.dropout)

    def relative_embeddings(self, distances: torch.Tensor) -> torch.Tensor:
        """(L,) distances -> (H, L, Dh); distances past the table share its last row."""
        return self.relative[:, distances.clamp(max=self.max_relative_position - 1)]

    def _split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        shape = (B, T, self.n_heads, self.head_dim)
        return (t.view(shape).transpose(1, 2) for t in (q, k, v))  # each (B, H, T, Dh)

    def _merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        B, H, T, Dh = y.shape
        return self.resid_drop(self.proj(y.transpose(1, 2).reshape(B, T, H * Dh)))  # (B, T, C)

    def forward(
        self, x: torch.Tensor, kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), every position attending to itself and the past.

        ``kv``: a list that receives this layer's keys and values (each (B, H, T, Dh)), the
        KV cache of the positions read (``MusicTransformer.prefill``).
        """
        T = x.shape[1]
        q, k, v = self._split_heads(x)  # (B, H, T, Dh)
        if kv is not None:
            kv.append((k, v))
        # column r of E_r holds distance T-1-r, the layout skew() expects
        distances = torch.arange(T - 1, -1, -1, device=x.device)
        e_r = self.relative_embeddings(distances)  # (H, T, Dh)
        rel = skew(torch.einsum("bhtd,hrd->bhtr", q, e_r))  # (B, H, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        # softmax((q k^T + rel) / sqrt(Dh)): the relative logits enter as an additive mask,
        # so the fused kernel does the rest (and differentiates through the mask)
        bias = (rel * self.scale).masked_fill(causal, float("-inf"))  # (B, H, T, T)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, Dh)
        return self._merge_heads(y)  # (B, T, C)

    def step(
        self, x: torch.Tensor, cache: KVCache, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One new position: (B, 1, C) -> (B, 1, C), reading and appending to ``cache``'s layer.

        Returns the output and the layer's (possibly regrown) key and value buffers.
        """
        t = cache.length  # this token's position
        q, k, v = self._split_heads(x)  # (B, H, 1, Dh)
        keys, values = cache.keys[layer], cache.values[layer]
        if t == keys.shape[2]:  # full: double the buffers (amortised O(1) per step)
            keys = torch.cat([keys, torch.empty_like(keys)], dim=2)
            values = torch.cat([values, torch.empty_like(values)], dim=2)
        keys[:, :, t : t + 1] = k
        values[:, :, t : t + 1] = v
        k_all, v_all = keys[:, :, : t + 1], values[:, :, : t + 1]  # (B, H, t+1, Dh)
        # key j sits at distance t-j: the same clipped embeddings forward() uses at row t
        distances = torch.arange(t, -1, -1, device=x.device)
        e_r = self.relative_embeddings(distances)  # (H, t+1, Dh)
        rel = torch.einsum("bhqd,hjd->bhqj", q, e_r)  # (B, H, 1, t+1); no future to mask
        y = F.scaled_dot_product_attention(
            q,
            k_all,
            v_all,
            attn_mask=rel * self.scale,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, H, 1, Dh)
        return self._merge_heads(y), keys, values


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attention(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model)
        self.attn = RelativeGlobalAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(config.d_model, config.d_ff),
            nn.GELU(),
            nn.Linear(config.d_ff, config.d_model),
            nn.Dropout(config.dropout),
        )

    def forward(
        self, x: torch.Tensor, kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv)
        return x + self.mlp(self.ln_2(x))

    def step(self, x: torch.Tensor, cache: KVCache, layer: int) -> tuple[torch.Tensor, ...]:
        y, keys, values = self.attn.step(self.ln_1(x), cache, layer)
        x = x + y
        return x + self.mlp(self.ln_2(x)), keys, values


class MusicTransformer(nn.Module):
    """Decoder-only Music Transformer over the melody grid (Generator protocol)."""

    arch = "transformer"  # checkpoints name the architecture so a mismatch is caught on load

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.embed = nn.Embedding(config.vocab_size + 1, config.d_model)  # +1: the BOS row
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)
        self.apply(self._init_weights)
        # GPT-2: shrink the residual projections so the stream's variance stays put with depth
        for name, p in self.named_parameters():
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def bos_token(self) -> int:
        return self.vocab_size

    def forward_with_hidden(
        self, tokens: torch.Tensor, kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) int64 -> logits (B, T, V) and the final normalised hidden state (B, T, C).

        ``kv``: a list that receives every layer's keys and values (see ``prefill``).
        """
        x = self.drop(self.embed(tokens))  # (B, T, C)
        for block in self.blocks:
            x = block(x, kv)
        hidden = self.ln_f(x)  # (B, T, C)
        return self.head(hidden), hidden

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        """(B, T) int64 -> logits (B, T, V) and the KV cache of the T positions read.

        ``step`` goes on from the returned cache as if it had read ``tokens`` itself: one
        forward pass instead of T steps.
        """
        batch, steps = tokens.shape
        if steps == 0:
            raise ValueError("prefill needs at least one token (BOS starts a sequence)")
        kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        logits, _ = self.forward_with_hidden(tokens, kv)
        # buffers with room to grow, as new_cache's (step doubles them when full)
        cache = self.new_cache(batch, capacity=max(64, 2 * steps), device=tokens.device)
        for layer, (k, v) in enumerate(kv):
            cache.keys[layer][:, :, :steps] = k
            cache.values[layer][:, :, :steps] = v
        cache.length = steps
        return logits, cache

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 -> logits (B, T, V); position t sees tokens[:, :t+1] only."""
        return self.forward_with_hidden(tokens)[0]

    def new_cache(
        self, batch: int, capacity: int = 64, device: torch.device | str | None = None
    ) -> KVCache:
        """An empty KV cache for ``batch`` sequences; it grows past ``capacity`` by doubling."""
        param = self.embed.weight
        shape = (batch, self.config.n_heads, capacity, self.config.d_model // self.config.n_heads)
        device = param.device if device is None else device
        empty = [torch.empty(shape, dtype=param.dtype, device=device) for _ in self.blocks]
        return KVCache(empty, [torch.empty_like(e) for e in empty], 0)

    def step(self, token: torch.Tensor, state: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        """(B,) int64 and the KV cache (None: a fresh sequence) -> logits (B, V), new cache."""
        cache = self.new_cache(token.shape[0], device=token.device) if state is None else state
        x = self.drop(self.embed(token)).unsqueeze(1)  # (B, 1, C)
        keys, values = [], []
        for layer, block in enumerate(self.blocks):
            x, k, v = block.step(x, cache, layer)
            keys.append(k)
            values.append(v)
        logits = self.head(self.ln_f(x[:, 0]))  # (B, V)
        return logits, KVCache(keys, values, cache.length + 1)
