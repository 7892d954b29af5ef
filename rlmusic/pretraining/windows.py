"""Training and validation windows cut from whole tunes, and the n-gram baselines.

A tune ``x_0..x_{n-1}`` is read as ``[BOS, x_0, .., x_{n-1}]``; a window at offset ``o`` feeds
``seq[o : o+L]`` and predicts ``seq[o+1 : o+L+1]``. Offset 0 is the tune's opening (the model
sees BOS, as RL compositions do); other offsets are mid-tune context without BOS.

Each training epoch takes, per tune, its opening window plus ``n // L`` windows at uniformly
random offsets, shuffled. The order depends only on ``(seed, epoch)``: a resumed run rebuilds
it exactly, so the data order needs no saved RNG state.

Offsets are multiples of an ``align``ment (:func:`window_alignment`): 1 token for a melody
(any offset), a whole bar of tokens for the chorale encoding (64: 16 steps of S A T B), so
every chorale window predicts whole bars from a bar line, its first input the token before
(the bass of the previous step), as the opening window's is BOS. Validation windows start at
multiples of ``L``, which is a multiple of the step (:func:`check_window`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from rlmusic.errors import UserError

IGNORE = -100  # target value of padding positions (cross_entropy's ignore_index)
# rows of (tune, offset) -> (inputs, targets) (B, L) each: a batch's layout
BatchFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def with_bos_np(tunes: Sequence[np.ndarray], bos_token: int) -> list[np.ndarray]:
    """Each tune as int64 ``[BOS, x_0, .., x_{n-1}]``."""
    return [np.concatenate([[bos_token], np.asarray(t, dtype=np.int64)]) for t in tunes]


class WindowError(UserError, ValueError):
    """A ``train.window`` the encoding cannot cut whole time steps with (a user error: the
    CLI prints it as one line)."""


def window_alignment(encoding: Any) -> int:
    """Tokens between allowed window offsets: 1 for a one-token-a-step encoding (a melody:
    any offset, as always), else a whole bar of tokens (the chorale encoding: 4 x 16 = 64).

    >>> from rlmusic.data.chorale_encoding import ChoraleEncoding
    >>> from rlmusic.data.encoding import MelodyEncoding
    >>> window_alignment(MelodyEncoding()), window_alignment(ChoraleEncoding())
    (1, 64)
    """
    per_step = int(getattr(encoding, "tokens_per_step", 1))
    if per_step == 1:
        return 1
    return encoding.tokens_for(encoding.steps_per_bar)


def check_window(window: int, encoding: Any) -> None:
    """``train.window`` must hold whole time steps of the encoding.

    >>> from rlmusic.data.chorale_encoding import ChoraleEncoding
    >>> try:
    ...     check_window(130, ChoraleEncoding())
    ... except WindowError as exc:
    ...     print(exc)
    train.window=130 is not a multiple of the chorale encoding's 4 tokens a step (soprano, alto, tenor, bass): use whole bars, e.g. train.window=128 (2 bars) or 256 (4 bars)
    """
    per_step = int(getattr(encoding, "tokens_per_step", 1))
    if window < 1:
        raise WindowError(f"train.window={window} must be at least 1 token")
    if window % per_step:
        bar = window_alignment(encoding)
        raise WindowError(
            f"train.window={window} is not a multiple of the {encoding.kind} encoding's "
            f"{per_step} tokens a step ({', '.join(encoding.voice_names)}): use whole bars, "
            f"e.g. train.window={2 * bar} (2 bars) or {4 * bar} (4 bars)"
        )


def _mid_offsets(n: int, window: int, align: int) -> int:
    """How many aligned mid-tune offsets a tune of ``n`` tokens has: ``align, 2 align, ..``
    up to ``n - window`` (all L+1 tokens inside ``[BOS] + tune``)."""
    return (n - window) // align if n > window else 0


def epoch_windows(
    lengths: Sequence[int], window: int, seed: int, epoch: int, align: int = 1
) -> np.ndarray:
    """(N, 2) rows of (tune index, offset) for one epoch, shuffled; ``lengths`` are tune lengths.

    Every tune contributes its opening (offset 0) and ``n // window`` random mid-tune windows
    at offsets that are multiples of ``align`` (a tune with no such offset: its opening only).
    """
    rng = np.random.default_rng([seed, epoch])
    rows = [(i, 0) for i in range(len(lengths))]
    for i, n in enumerate(lengths):
        if align == 1:
            if n > window:  # shorter tunes fit whole in their opening window
                # offsets 1..n-window keep all L+1 tokens inside [BOS] + tune (length n+1)
                offsets = rng.integers(1, n - window + 1, size=n // window)
                rows += [(i, int(o)) for o in offsets]
        elif _mid_offsets(n, window, align):
            slots = rng.integers(1, _mid_offsets(n, window, align) + 1, size=n // window)
            rows += [(i, int(o) * align) for o in slots]
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


def transpose_windows(
    inputs: np.ndarray,
    targets: np.ndarray,
    draws: np.ndarray,
    max_shift: int,
    first_pitch_token: int,
    vocab_size: int,
    voice_size: int | None = None,
) -> np.ndarray:
    """Move each window's pitch tokens (every voice together) by one shift, in place.

    Row ``b``'s shift is ``draws[b]`` (uniform in [0, 1)) mapped onto the shifts in
    ``-max_shift..max_shift`` that keep all its pitches inside the vocabulary. NOTE_OFF,
    NO_EVENT, BOS (``vocab_size``) and padding stay. Returns the shifts. ``voice_size``: the
    tokens of one voice's block (the chorale encoding's; None: one block, the vocabulary): a
    pitch moves inside its voice's block.

    >>> x = np.array([[5, 1, 2, 0]]); y = np.array([[1, 2, 0, -100]])
    >>> transpose_windows(x, y, np.array([0.0]), 2, 2, 8).tolist(), x.tolist(), y.tolist()
    ([0], [[5, 1, 2, 0]], [[1, 2, 0, -100]])
    >>> transpose_windows(x, y, np.array([0.99]), 2, 2, 8).tolist(), x.tolist(), y.tolist()
    ([2], [[7, 1, 4, 0]], [[1, 4, 0, -100]])
    """
    block = voice_size or vocab_size
    shifts = np.zeros(len(inputs), dtype=np.int64)
    for b in range(len(inputs)):
        x_pitch = (inputs[b] % block >= first_pitch_token) & (inputs[b] < vocab_size)
        y_pitch = (targets[b] >= 0) & (targets[b] % block >= first_pitch_token)
        values = np.concatenate([inputs[b][x_pitch], targets[b][y_pitch]]) % block
        if not len(values):
            continue
        low = max(-max_shift, first_pitch_token - int(values.min()))
        high = min(max_shift, block - 1 - int(values.max()))
        shift = low + int(draws[b] * (high - low + 1))
        inputs[b][x_pitch] += shift
        targets[b][y_pitch] += shift
        shifts[b] = shift
    return shifts


def iter_batches(rows: np.ndarray, batch_size: int, drop_last: bool) -> Iterator[np.ndarray]:
    stop = len(rows) - len(rows) % batch_size if drop_last else len(rows)
    for start in range(0, stop, batch_size):
        yield rows[start : start + batch_size]


def steps_per_epoch(lengths: Sequence[int], window: int, batch_size: int, align: int = 1) -> int:
    """Optimizer steps in one epoch (the last partial batch is dropped)."""
    mid = sum(n // window for n in lengths if _mid_offsets(n, window, align))
    return (len(lengths) + mid) // batch_size


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
