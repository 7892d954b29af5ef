"""The critics' network: a causal 1-D CNN over token embeddings that scores every prefix.

``CausalCNN(tokens (B, T)) -> scores (B, T)``: the score at step ``t`` reads ``tokens[:, :t+1]``
only. Every convolution pads on the left alone, so a step never sees the future and a prefix
scored on its own gets exactly the scores it gets inside a longer sequence (the reward seam's
causality). Dilations double per block, so a few blocks cover a whole 32-step composition.

The discriminator reads the score as a logit ``P(real | prefix)``; the preference model reads
it as a Bradley-Terry utility. Both are this one architecture (``arch = "causal_cnn"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CriticConfig:
    """Everything that shapes a :class:`CausalCNN`; saved in the critic's checkpoint.

    Args:
        vocab_size: token classes (the encoding's; no BOS: a critic reads melodies only).
        embed_dim: width of the token embedding.
        channels: width of every convolution block.
        kernel_size: taps per convolution.
        dilations: one residual block per entry; the receptive field is
            ``1 + (kernel_size - 1) * sum(dilations)`` steps (63 by default).
        dropout: inside the blocks (training only).
    """

    vocab_size: int = 38
    embed_dim: int = 32
    channels: int = 64
    kernel_size: int = 3
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.embed_dim < 1 or self.channels < 1:
            raise ValueError(f"vocab_size, embed_dim and channels must be positive: {self}")
        if self.kernel_size < 1 or not self.dilations or min(self.dilations) < 1:
            raise ValueError(f"kernel_size and every dilation must be >= 1: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        self.dilations = [int(d) for d in self.dilations]  # OmegaConf lists -> plain ints

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel_size - 1) * sum(self.dilations)


@dataclass
class CNNTrainConfig:
    """How a critic network trains (``critic.train`` in conf/critic/*.yaml); the discriminator
    and the preference model subclass it with their own defaults.

    Args:
        steps: optimizer steps (an upper bound when ``time_s`` is set).
        time_s: also stop after this many seconds (None: no limit).
        batch_size: rows (discriminator: half real, half generated) or pairs per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        holdout: share of the data held out for the validation figures.
        log_every: steps between training-log lines (0: none).
        model: the network's shape.
    """

    steps: int = 2000
    time_s: float | None = None
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    holdout: float = 0.2
    log_every: int = 200
    model: CriticConfig = field(default_factory=CriticConfig)

    min_batch = 1  # a class attribute, not a field: the smallest batch that trains

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):  # from a config node
            self.model = CriticConfig(**self.model)
        if self.steps < 0 or self.batch_size < self.min_batch or self.lr <= 0:
            raise ValueError(f"need steps >= 0, batch_size >= {self.min_batch} and lr > 0: {self}")


def causal_conv(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """(B, C, T) -> (B, C', T) through ``conv`` padded on the left only.

    float64 inputs (the reward terms' scoring) go through explicit taps and one matmul: CPU
    conv1d has no fast float64 kernel (15x slower), and float64 matmuls give the same values
    whatever the batch size or length (float32 kernels differ in the last bits by shape).
    """
    (k,), (d,) = conv.kernel_size, conv.dilation
    x = F.pad(x, ((k - 1) * d, 0))  # pad the past, never the future
    if x.dtype != torch.float64:
        return conv(x)
    steps = x.shape[2] - (k - 1) * d
    taps = torch.stack([x[:, :, j * d : j * d + steps] for j in range(k)], dim=2)  # (B, C, k, T)
    cols = taps.flatten(1, 2).transpose(1, 2)  # (B, T, C*k), the weight's (C, k) order
    return F.linear(cols, conv.weight.flatten(1), conv.bias).transpose(1, 2)


class CausalBlock(nn.Module):
    """Residual block: ``x + mix(silu(conv_dilated(silu(x))))``, causal."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = causal_conv(F.silu(x), self.conv)  # (B, C, T)
        return x + self.drop(causal_conv(F.silu(h), self.mix))


class CausalCNN(nn.Module):
    """Token embedding -> causal dilated residual blocks -> one score per prefix."""

    arch = "causal_cnn"  # checkpoints name the architecture; a mismatch is caught on load

    def __init__(self, config: CriticConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = config.vocab_size
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.proj = nn.Conv1d(config.embed_dim, config.channels, 1)
        self.blocks = nn.ModuleList(
            CausalBlock(config.channels, config.kernel_size, d, config.dropout)
            for d in config.dilations
        )
        self.head = nn.Conv1d(config.channels, 1, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 -> scores (B, T); position t sees tokens[:, :t+1] only."""
        x = causal_conv(self.embed(tokens).transpose(1, 2), self.proj)  # (B, C, T)
        for block in self.blocks:
            x = block(x)
        return causal_conv(F.silu(x), self.head).squeeze(1)  # (B, T)


def check_tokens(tokens: torch.Tensor, vocab_size: int, who: str = "the critic") -> torch.Tensor:
    """Stop on a wrong rank or a token outside ``0..vocab_size-1`` (an embedding would crash)."""
    if tokens.ndim != 2:
        raise ValueError(f"{who} takes a (B, T) token array, got shape {tuple(tokens.shape)}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise ValueError(
            f"{who}: tokens outside the vocabulary 0..{vocab_size - 1} "
            f"(got {int(tokens.min())}..{int(tokens.max())})"
        )
    return tokens
