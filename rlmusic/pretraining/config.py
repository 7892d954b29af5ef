"""The ``train`` node of conf/pretrain.yaml as a dataclass.

Its own module so that :mod:`rlmusic.pretraining.optim` and :mod:`rlmusic.pretraining.loop` both
import it without importing each other. :mod:`rlmusic.pretraining.loop` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass
class TrainConfig:
    """The ``train`` node of conf/pretrain.yaml.

    Args:
        epochs: passes of windows over the train split.
        batch_size: windows per optimizer step, over all processes together.
        window: tokens per window (the context length the model trains on); a multiple of
            the encoding's tokens a step (4 for chorales: whole bars are 64).
        lr: peak learning rate after warmup.
        min_lr_ratio: the cosine decay ends at ``lr * min_lr_ratio``.
        warmup_steps: linear warmup from 0.
        weight_decay: AdamW decay on matrices and embeddings (not biases or norms).
        beta1, beta2: AdamW betas.
        grad_clip: max global gradient norm (0 = off).
        max_steps: stop after this many optimizer steps (None = all epochs).
        checkpoint_every_steps: also write ``last.pt`` every this many steps (0 = per epoch).
        keep_epoch_checkpoints: also keep ``epoch_NNN.pt`` per epoch.
        log_every_steps: TensorBoard train-loss interval.
        valid_batch_size: windows per validation batch.
        init_lr, init_warmup_steps: what replaces ``lr`` and ``warmup_steps`` when training
            starts from a checkpoint's weights (``init=``, :meth:`for_init`): fine-tuning takes
            a lower peak and a short warmup, then the same cosine decay.
        transpose: augmentation: each training window moves all its pitches by a random shift
            in ``-transpose..transpose`` semitones that keeps them in range (0 = off; the
            shifts depend only on the seed, the epoch and the batch).
    """

    epochs: int = 8
    batch_size: int = 64
    window: int = 128
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    max_steps: int | None = None
    checkpoint_every_steps: int = 0
    keep_epoch_checkpoints: bool = False
    log_every_steps: int = 50
    valid_batch_size: int = 128
    init_lr: float = 1e-3
    init_warmup_steps: int = 20
    transpose: int = 0

    def for_init(self) -> TrainConfig:
        """This config as fine-tuning from a checkpoint runs it: ``init_lr`` and
        ``init_warmup_steps`` in place of ``lr`` and ``warmup_steps``.

        >>> TrainConfig(lr=2e-3, warmup_steps=200, init_lr=5e-4, init_warmup_steps=20).for_init().lr
        0.0005
        """
        return replace(self, lr=self.init_lr, warmup_steps=self.init_warmup_steps)
