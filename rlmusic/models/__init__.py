"""Generators (NoteLSTM, MusicTransformer), their checkpoints, pretrained models and sampling.

>>> from rlmusic.models import load_generator
>>> model, encoding = load_generator("pretrained:note_lstm")  # doctest: +SKIP
"""

from rlmusic.models.base import Generator, prefill, sequence_log_probs, with_bos
from rlmusic.models.checkpoint import (
    ARCHITECTURES,
    CheckpointError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)
from rlmusic.models.lstm import LSTMConfig, NoteLSTM
from rlmusic.models.registry import (
    PRETRAINED,
    list_pretrained,
    load_generator,
    load_pretrained,
    pretrained_path,
)
from rlmusic.models.sampling import generate
from rlmusic.models.transformer import KVCache, MusicTransformer, TransformerConfig

__all__ = [
    "ARCHITECTURES",
    "PRETRAINED",
    "CheckpointError",
    "Generator",
    "KVCache",
    "LSTMConfig",
    "MusicTransformer",
    "NoteLSTM",
    "TransformerConfig",
    "build_model",
    "generate",
    "list_pretrained",
    "load_checkpoint",
    "load_generator",
    "load_pretrained",
    "prefill",
    "pretrained_path",
    "save_checkpoint",
    "sequence_log_probs",
    "with_bos",
]
