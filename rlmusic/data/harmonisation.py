"""Harmonisation's token layout: a decoder reads the whole soprano, then writes the chorale
with the soprano's tokens forced.

A harmoniser is an ordinary chorale generator (same vocabulary, same architecture) that reads

    [BOS, S_0, S_1, .., S_{n-1}, BOS, S_0, A_0, T_0, B_0, S_1, A_1, ..]

where ``S_t`` are the given soprano's tokens (block 0 of
:class:`~rlmusic.data.chorale_encoding.ChoraleEncoding`). The second BOS says "the piece starts
here", as the first does for an unconditional model, so the pretrained chorale model is a
harmoniser's natural start. The soprano positions of the piece are *forced*: they are written,
never sampled, and no loss, KL or policy gradient is taken on them. The conditioning costs
``n + 1`` extra positions per ``4 n`` tokens (25% for any length).

A checkpoint that writes this layout records ``info["conditioning"] = "soprano"``
(:data:`CONDITIONING_KEY`).

>>> from rlmusic.data.chorale_encoding import ChoraleEncoding
>>> enc = ChoraleEncoding()
>>> piece = np.array([[38, 84, 132, 167, 1, 52, 103, 154]])  # C5 G4 E4 C3, then all hold
>>> sopranos(piece, enc).tolist()
[[38, 1]]
>>> conditioning_prefix(sopranos(piece, enc), enc).tolist()
[[38, 1, 204]]
>>> forced_tokens(sopranos(piece, enc), enc).tolist()
[[38, -1, -1, -1, 1, -1, -1, -1]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

CONDITIONING_KEY = "conditioning"
SOPRANO = "soprano"  # the one conditioning there is: the whole soprano, then the piece
IGNORE = -100  # cross_entropy's ignore_index (rlmusic.pretraining.windows.IGNORE)


def _check_chorale(encoding: Any) -> None:
    if getattr(encoding, "kind", None) != "chorale":
        raise ValueError(
            f"harmonisation needs the chorale encoding (four voices), got {encoding.kind!r}"
        )


def sopranos(pieces: np.ndarray, encoding: Any) -> np.ndarray:
    """(N, 4 n) chorale tokens -> (N, n) their soprano tokens (block 0: local values)."""
    _check_chorale(encoding)
    pieces = np.asarray(pieces, dtype=np.int64)
    return pieces[..., 0 :: encoding.tokens_per_step]


def conditioning_prefix(soprano: np.ndarray, encoding: Any) -> np.ndarray:
    """(N, n) soprano tokens -> (N, n + 1) ``[S_0 .. S_{n-1}, BOS]``: what a harmoniser reads
    after its own BOS and before the piece."""
    _check_chorale(encoding)
    soprano = np.asarray(soprano, dtype=np.int64)
    if soprano.size and (soprano.min() < 0 or soprano.max() >= encoding.voice_size):
        raise ValueError(f"soprano tokens must be in 0..{encoding.voice_size - 1} (block 0)")
    bos = np.full(soprano.shape[:-1] + (1,), encoding.vocab_size, dtype=np.int64)
    return np.concatenate([soprano, bos], axis=-1)


def forced_tokens(soprano: np.ndarray, encoding: Any) -> np.ndarray:
    """(N, n) soprano tokens -> (N, 4 n) the piece's forced tokens, ``-1`` where it samples."""
    _check_chorale(encoding)
    soprano = np.asarray(soprano, dtype=np.int64)
    per_step = encoding.tokens_per_step
    forced = np.full(soprano.shape[:-1] + (soprano.shape[-1] * per_step,), -1, dtype=np.int64)
    forced[..., 0::per_step] = soprano
    return forced


def free_mask(length: int, encoding: Any) -> np.ndarray:
    """(length,) True where a harmoniser writes (alto, tenor, bass), False on the soprano."""
    return np.arange(length) % encoding.tokens_per_step != 0


def conditioned_window(
    frames: np.ndarray, encoding: Any, train_soprano: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One training pair from whole steps of a chorale: inputs and next-token targets.

    ``frames`` (4 n tokens) -> inputs ``[BOS, S.., BOS, frames[:-1]]`` and targets
    ``[S.., BOS, frames]`` (both ``5 n + 1`` long, the model prepends nothing else), with
    :data:`IGNORE` on every target the harmoniser does not choose: the conditioning and the
    piece's soprano (``train_soprano=True`` keeps the piece's soprano as targets).
    """
    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) % encoding.tokens_per_step:
        raise ValueError(f"a window of {len(frames)} tokens is not whole steps")
    bos = encoding.vocab_size
    soprano = sopranos(frames, encoding)
    inputs = np.concatenate([[bos], soprano, [bos], frames[:-1]])
    targets = np.concatenate([soprano, [bos], frames])
    targets[: len(soprano) + 1] = IGNORE
    if not train_soprano:
        piece = targets[len(soprano) + 1 :]
        piece[~free_mask(len(frames), encoding)] = IGNORE
    return inputs, targets


def harmoniser_reading(
    pieces: np.ndarray, encoding: Any, harmonising: bool = True
) -> tuple[np.ndarray | None, np.ndarray]:
    """How a prior reads finished pieces: ``(prefix, chosen)`` -- a harmoniser reads each
    piece's own soprano first (the prefix, (N, n + 1)) and is judged on the tokens it chose
    ((N, 4 n) bool, alto, tenor and bass); a generator (``harmonising=False``) reads no prefix
    and chose every token.

    >>> from rlmusic.data.chorale_encoding import ChoraleEncoding
    >>> prefix, chosen = harmoniser_reading(np.array([[38, 84, 132, 167]]), ChoraleEncoding())
    >>> prefix.tolist(), chosen.tolist()
    ([[38, 204]], [[False, True, True, True]])
    """
    pieces = np.asarray(pieces, dtype=np.int64)
    if not harmonising:
        return None, np.ones(pieces.shape, dtype=bool)
    prefix = conditioning_prefix(sopranos(pieces, encoding), encoding)
    chosen = np.broadcast_to(free_mask(pieces.shape[-1], encoding), pieces.shape)
    return prefix, chosen


def conditioning_of(info: Mapping[str, Any] | None) -> str | None:
    """A checkpoint's conditioning (``"soprano"``) from its info record; None: unconditional."""
    value = (info or {}).get(CONDITIONING_KEY)
    if value not in (None, SOPRANO):
        raise ValueError(f"unknown conditioning {value!r} in a checkpoint; known: {SOPRANO}")
    return value
