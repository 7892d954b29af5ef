"""Training and validation windows cut from whole tunes, and the n-gram baselines.

A tune ``x_0..x_{n-1}`` is read as ``[BOS, x_0, .., x_{n-1}]``; a window at offset ``o`` feeds
``seq[o : o+L]`` and predicts ``seq[o+1 : o+L+1]``. Offset 0 is the tune's opening (the model
sees BOS, as RL compositions do); other offsets are mid-tune context without BOS.

Each training epoch takes, per tune, its opening window plus ``n // L`` windows at uniformly
random offsets, shuffled. The order depends only on ``(seed, epoch)``: a resumed run rebuilds
it exactly, so the data order needs no saved RNG state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

IGNORE = -100  # target value of padding positions (cross_entropy's ignore_index)


def with_bos_np(tunes: Sequence[np.ndarray], bos_token: int) -> list[np.ndarray]:
    """Each tune as int64 ``[BOS, x_0, .., x_{n-1}]``."""
    return [np.concatenate([[bos_token], np.asarray(t, dtype=np.int64)]) for t in tunes]


def epoch_windows(lengths: Sequence[int], window: int, seed: int, epoch: int) -> np.ndarray:
    """(N, 2) rows of (tune index, offset) for one epoch, shuffled; ``lengths`` are tune lengths.

    Every tune contributes its opening (offset 0) and ``n // window`` random mid-tune windows.
    """
    rng = np.random.default_rng([seed, epoch])
    rows = [(i, 0) for i in range(len(lengths))]
    for i, n in enumerate(lengths):
        if n > window:  # shorter tunes fit whole in their opening window
            # offsets 1..n-window keep all L+1 tokens inside [BOS] + tune (length n+1)
            offsets = rng.integers(1, n - window + 1, size=n // window)
            rows += [(i, int(o)) for o in offsets]
    rows_np = np.array(rows, dtype=np.int64).reshape(-1, 2)
    return rows_np[rng.permutation(len(rows_np))]


def valid_windows(lengths: Sequence[int], window: int) -> np.ndarray:
    """(N, 2) non-overlapping windows whose targets cover every token of every tune once."""
    rows = [(i, o) for i, n in enumerate(lengths) for o in range(0, n, window)]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def make_batch(
    seqs: Sequence[np.ndarray], rows: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (B, L) int64 for ``rows`` of (tune, offset); short ones are padded.

    Padded inputs are 0 (never read by a real position: the models are causal) and padded
    targets are :data:`IGNORE`.
    """
    inputs = np.zeros((len(rows), window), dtype=np.int64)
    targets = np.full((len(rows), window), IGNORE, dtype=np.int64)
    for b, (i, o) in enumerate(rows):
        chunk = seqs[i][o : o + window + 1]
        inputs[b, : len(chunk) - 1] = chunk[:-1]
        targets[b, : len(chunk) - 1] = chunk[1:]
    return inputs, targets


def iter_batches(rows: np.ndarray, batch_size: int, drop_last: bool) -> Iterator[np.ndarray]:
    stop = len(rows) - len(rows) % batch_size if drop_last else len(rows)
    for start in range(0, stop, batch_size):
        yield rows[start : start + batch_size]


def steps_per_epoch(lengths: Sequence[int], window: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (the last partial batch is dropped)."""
    return (len(lengths) + sum(n // window for n in lengths if n > window)) // batch_size


# ---- baselines on the same split ----------------------------------------------------------------
def ngram_baselines(
    train: Sequence[np.ndarray], valid: Sequence[np.ndarray], vocab_size: int, alpha: float = 0.1
) -> dict[str, float]:
    """Validation NLL per token (nats) of add-``alpha`` unigram and bigram models fit on train.

    The bigram conditions on the previous token, BOS before each tune's first, exactly the
    context of the first position of a model's opening window.
    """
    bos = vocab_size
    train_seqs, valid_seqs = with_bos_np(train, bos), with_bos_np(valid, bos)
    unigram = np.full(vocab_size, alpha)
    bigram = np.full((vocab_size + 1, vocab_size), alpha)
    for s in train_seqs:
        np.add.at(unigram, s[1:], 1)
        np.add.at(bigram, (s[:-1], s[1:]), 1)
    log_uni = np.log(unigram / unigram.sum())
    log_bi = np.log(bigram / bigram.sum(1, keepdims=True))
    n = sum(len(s) - 1 for s in valid_seqs)
    uni = -sum(log_uni[s[1:]].sum() for s in valid_seqs) / n
    bi = -sum(log_bi[s[:-1], s[1:]].sum() for s in valid_seqs) / n
    return {
        "unigram_nll": float(uni),
        "bigram_nll": float(bi),
        "unigram_ppl": math.exp(uni),
        "bigram_ppl": math.exp(bi),
        "tokens": int(n),
    }
