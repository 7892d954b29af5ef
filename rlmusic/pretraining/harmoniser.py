"""Supervised training of a harmoniser: the chorale trainer with the soprano read first.

Windows are cut from whole chorales exactly as :class:`~rlmusic.pretraining.loop.Pretrainer`
cuts them (whole bars, from bar lines); each is then laid out as
:func:`rlmusic.data.harmonisation.conditioned_window` lays it: the window's whole soprano, a
BOS, then the window's steps, with targets only on the alto, tenor and bass. Validation NLL is
therefore the NLL per *chosen* token (A, T, B), the number to set beside the unconditional
model's on the same tokens (:func:`lower_voice_nll`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rlmusic.data.harmonisation import CONDITIONING_KEY, SOPRANO, conditioned_window, free_mask
from rlmusic.pretraining.loop import Pretrainer
from rlmusic.pretraining.validation import nll_metrics, window_sums
from rlmusic.pretraining.windows import IGNORE, BatchFn, make_batch, valid_windows, with_bos_np


def conditioned_batch(
    seqs: Sequence[np.ndarray], rows: np.ndarray, window: int, encoding: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of (tune, offset) on ``[BOS] + tune`` sequences -> conditioned (inputs, targets).

    A window's steps are the plain window's targets (``tune[o : o + window]``); short windows
    at a tune's end are padded (inputs 0, targets :data:`IGNORE`).
    """
    steps = window // encoding.tokens_per_step
    width = window + steps + 1
    inputs = np.zeros((len(rows), width), dtype=np.int64)
    targets = np.full((len(rows), width), IGNORE, dtype=np.int64)
    for b, (i, o) in enumerate(rows):
        frames = seqs[i][o + 1 : o + window + 1]
        frames = frames[: len(frames) - len(frames) % encoding.tokens_per_step]
        if not len(frames):
            continue
        x, y = conditioned_window(frames, encoding)
        inputs[b, : len(x)], targets[b, : len(y)] = x, y
    return inputs, targets


class HarmoniserPretrainer(Pretrainer):
    """:class:`Pretrainer` on conditioned windows; its checkpoints record the conditioning."""

    def layout(self, seqs: Sequence[np.ndarray]) -> BatchFn | None:
        return lambda rows: conditioned_batch(seqs, rows, self.cfg.window, self.encoding)

    def _checkpoint_info(self) -> dict[str, Any]:
        return {**super()._checkpoint_info(), CONDITIONING_KEY: SOPRANO}


def _lower_voice_rows(
    seqs: Sequence[np.ndarray], rows: np.ndarray, window: int, encoding: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The plain windows with the soprano's targets ignored: an unconditional model scored on
    the tokens a harmoniser chooses."""
    inputs, targets = make_batch(seqs, rows, window)
    for b, (_, o) in enumerate(rows):
        # target j is tune token o + j: a soprano when (o + j) % 4 == 0
        soprano = ~free_mask(o + window, encoding)[o:]
        targets[b][soprano] = IGNORE
    return inputs, targets


@torch.no_grad()
def lower_voice_nll(
    model: nn.Module,
    tunes: Sequence[np.ndarray],
    encoding: Any,
    window: int = 256,
    conditioned: bool = True,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """NLL per alto / tenor / bass token on whole chorales, in windows of ``window`` tokens.

    ``conditioned``: the model reads each window's soprano first (a harmoniser); else it reads
    the window as an unconditional chorale model does, from BOS, and is scored on the same
    tokens.
    """
    seqs = with_bos_np(tunes, model.bos_token)
    rows = valid_windows([len(s) - 1 for s in seqs], window)

    def batch_fn(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if conditioned:
            return conditioned_batch(seqs, batch, window, encoding)
        return _lower_voice_rows(seqs, batch, window, encoding)

    sums = window_sums(model, seqs, rows, window, batch_size, torch.device(device), batch_fn)
    return nll_metrics(*sums)
