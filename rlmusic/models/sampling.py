"""Sampling from any generator: temperature, top-k, nucleus (top-p), primers; seeded.

Sampling uses the incremental ``step`` (LSTM state, Transformer KV cache), so each new token
costs one position's compute. :func:`generate_recompute` re-runs ``forward`` over the whole
prefix at every step instead; it exists to check and benchmark the incremental path.

Randomness comes only from the ``torch.Generator`` passed in: the same seed, batch size and
arguments give the same tokens.

Lengths here count tokens, the model's unit: a piece of ``n`` time steps is
``encoding.tokens_for(n)`` tokens (``n`` for a melody, ``4 n`` for a chorale); tasks convert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from rlmusic.models.base import Generator

if TYPE_CHECKING:
    from rlmusic.models.conditions import Conditions


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """(B, V) logits with everything outside the top-k / nucleus set to -inf.

    Args:
        top_k: keep the ``top_k`` most likely tokens; 0 keeps all.
        top_p: keep the smallest set of most likely tokens whose probability reaches ``top_p``
            (the most likely token always stays); 1.0 keeps all.
    """
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = F.softmax(sorted_logits, dim=-1).cumsum(-1)  # (B, V)
        # drop a token when the tokens before it already reach top_p
        drop_sorted = (cumulative - F.softmax(sorted_logits, dim=-1)) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    rng: torch.Generator,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """(B, V) logits -> (B,) sampled tokens; ``temperature == 0`` picks the argmax."""
    if temperature <= 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=rng).squeeze(-1)


def _check_args(temperature: float, top_k: int, top_p: float) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 = off), got {top_p}")


@torch.no_grad()
def generate(
    model: Generator,
    n: int,
    length: int,
    rng: torch.Generator,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    primer: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """``n`` pieces of ``length`` new tokens after BOS and an optional primer, incrementally.

    Args:
        model: any generator (its ``step`` carries the state).
        n: number of pieces.
        length: tokens sampled after the primer.
        rng: the only source of randomness (on ``device``).
        temperature, top_k, top_p: see :func:`sample_next` and :func:`filter_logits`.
        primer: tokens every piece starts with (kept in the output).
        batch_size: pieces sampled at once.
        device: where the model runs.

    Returns:
        (n, len(primer) + length) int64 tokens.
    """
    _check_args(temperature, top_k, top_p)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    primer_t = torch.as_tensor(
        np.asarray(primer if primer is not None else [], dtype=np.int64), device=device
    )
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        token = torch.full((b,), model.bos_token, dtype=torch.long, device=device)
        state = None
        for p in primer_t:  # read the primer through the same step path
            _, state = model.step(token, state)
            token = p.expand(b)
        steps = torch.empty(b, length, dtype=torch.long, device=device)
        for t in range(length):
            logits, state = model.step(token, state)  # (b, V)
            token = sample_next(logits, rng, temperature, top_k, top_p)
            steps[:, t] = token
        out.append(torch.cat([primer_t.expand(b, -1), steps], dim=1))
    if was_training:
        model.train()
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, len(primer_t) + length), np.int64)


@torch.no_grad()
def generate_recompute(
    model: Generator,
    n: int,
    length: int,
    rng: torch.Generator,
    temperature: float = 1.0,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Like :func:`generate` without a primer, but recomputing ``forward`` over the whole
    prefix at every step: O(T^2) work for the Transformer. A baseline for benchmarks and tests.
    """
    model.eval()
    tokens = torch.full((n, 1), model.bos_token, dtype=torch.long, device=device)
    for _ in range(length):
        logits = model.forward(tokens)[:, -1]  # (n, V)
        token = sample_next(logits, rng, temperature)
        tokens = torch.cat([tokens, token.unsqueeze(1)], dim=1)
    return tokens[:, 1:].cpu().numpy()


@torch.no_grad()
def sample_with_log_probs(
    policy: Generator,
    batch: int,
    length: int,
    rng: torch.Generator,
    temperature: float = 1.0,
    device: torch.device | str = "cpu",
    prefix: torch.Tensor | None = None,
    forced: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample (B, T) tokens from BOS with the incremental ``step``; also their log-probs (B, T).

    The fine-tuning rollouts' sampler: the model's mode (train / eval) is the caller's choice.

    Args:
        prefix: (B, P) tokens read after BOS before the piece (a conditioning, e.g. the whole
            soprano of a harmonisation); not part of the output.
        forced: (B, T) tokens the piece must have, ``-1`` where the policy samples; a forced
            token is written instead of a sample (its log-prob is still the policy's).
    """
    tokens = torch.empty(batch, length, dtype=torch.long, device=device)
    log_probs = torch.empty(batch, length, device=device)
    token = torch.full((batch,), policy.bos_token, dtype=torch.long, device=device)
    state = None
    if prefix is not None:
        for p in range(prefix.shape[1]):  # read the conditioning through the same step path
            _, state = policy.step(token, state)
            token = prefix[:, p].to(device)
    if forced is not None:
        forced = forced.to(device)
    for t in range(length):
        logits, state = policy.step(token, state)
        logp = F.log_softmax(logits.float() / temperature, dim=-1)
        token = torch.multinomial(logp.exp(), 1, generator=rng).squeeze(-1)
        if forced is not None:
            token = torch.where(forced[:, t] >= 0, forced[:, t], token)
        tokens[:, t] = token
        log_probs[:, t] = logp.gather(-1, token.unsqueeze(-1)).squeeze(-1)
    return tokens, log_probs


@torch.no_grad()
def sample_seeded(
    model: Generator,
    n: int,
    length: int,
    seed: int,
    batch_size: int = 500,
    conditions: Conditions | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples from BOS drawn with a private generator seeded by ``seed`` (never the
    global RNG a training run draws from), dropout off: tokens (n, length) and their log-probs.

    Evaluation, MIDI samples and the runs' statistics all draw through this function, so the
    same seed gives the same compositions wherever they are drawn. ``conditions`` (a
    harmoniser's): each piece's prefix and forced tokens, drawn by a generator seeded by
    ``seed`` too; the log-probs of forced tokens are the model's, as for the others.
    """
    params = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    device = params.device if params is not None else torch.device("cpu")
    rng = torch.Generator(device=device).manual_seed(int(seed))
    prefix = forced = None
    if conditions is not None and n:
        from rlmusic.models.conditions import seeded_conditions

        prefix_np, forced_np = seeded_conditions(conditions, n, seed)
        prefix, forced = torch.as_tensor(prefix_np), torch.as_tensor(forced_np)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    tokens, logps = [], []
    for start in range(0, n, batch_size):
        rows = slice(start, min(n, start + batch_size))
        t, lp = sample_with_log_probs(
            model,
            rows.stop - rows.start,
            length,
            rng,
            device=device,
            prefix=None if prefix is None else prefix[rows],
            forced=None if forced is None else forced[rows],
        )
        tokens.append(t)
        logps.append(lp)
    if was_training:
        model.train()
    if not tokens:
        return np.zeros((0, length), np.int64), np.zeros((0, length), np.float32)
    return torch.cat(tokens).cpu().numpy(), torch.cat(logps).cpu().numpy()
