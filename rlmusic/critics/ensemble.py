"""The ensemble critic (RL-Duet): K frozen generators judge each token by its log-likelihood.

``mean_t = mean_k log p_k(x_t | x_<t)`` is the reward; ``std_t`` across the members is their
disagreement, logged and optionally penalised (``mean - lambda * std``: uncertainty-weighted
optimisation, Coste et al. 2024), so the policy is not paid for tokens only some members like.
Members are anything :func:`rlmusic.models.load_generator` takes (``pretrained:<name>``,
checkpoint files, run folders); a saved ensemble holds the members' weights, not their paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlmusic.critics.io import read_critic_record, record_encoding, save_critic_record
from rlmusic.critics.stats import binary_auc
from rlmusic.data.encodings import Encoding
from rlmusic.models.base import frozen, sequence_log_probs
from rlmusic.models.checkpoint import CheckpointError, build_model, generator_config

ARCH = "generator_ensemble"
GRID = ("min_pitch", "max_pitch", "steps_per_quarter")  # what members must share


class EnsembleCritic:
    """Frozen generators scored together; ``names`` say where each came from.

    ``precision="float64"`` (default) makes every value independent of the batch and the
    length it is computed in (2-4x slower on CPU than ``"float32"``).
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        names: Sequence[str],
        encoding: Encoding,
        device: torch.device | str = "cpu",
        batch_size: int = 1024,
        precision: str = "float64",
    ) -> None:
        if precision not in ("float64", "float32"):
            raise ValueError(f"precision {precision!r}; known: float64, float32")
        if not members or len(members) != len(names):
            raise ValueError(f"need one name per member and >= 1 member, got {len(members)}")
        self.device = torch.device(device)
        # float64 by default: a float32 transformer's values move in the last bits with the
        # sequence length, and a reward must not depend on how long the array it reads is
        self.dtype = torch.float64 if precision == "float64" else torch.float32
        self.members = [frozen(m.to(self.device, self.dtype)) for m in members]
        self.names = list(names)
        self.encoding = encoding
        self.vocab_size = encoding.vocab_size
        self.batch_size = batch_size

    def _tensor(self, tokens: np.ndarray) -> torch.Tensor:
        tokens = torch.as_tensor(np.asarray(tokens, dtype=np.int64), device=self.device)
        if tokens.ndim != 2:
            raise ValueError(f"the ensemble takes (B, T) tokens, got shape {tuple(tokens.shape)}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens outside the ensemble's vocabulary 0..{self.vocab_size - 1}")
        return tokens

    @torch.no_grad()
    def member_log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """(B, T) tokens -> (K, B, T) ``log p_k(x_t | x_<t)``, one forward per member and chunk."""
        tokens = self._tensor(tokens)
        if tokens.shape[1] == 0 or len(tokens) == 0:
            return np.zeros((len(self.members), *tokens.shape))
        out = [
            torch.cat(
                [
                    sequence_log_probs(m, tokens[i : i + self.batch_size]).float()
                    for i in range(0, len(tokens), self.batch_size)
                ]
            )
            for m in self.members
        ]
        return torch.stack(out).cpu().numpy().astype(np.float64)  # (K, B, T)

    def mean_and_std(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, T) mean log-likelihood over members and (B, T) their disagreement (std)."""
        log_probs = self.member_log_probs(tokens)  # (K, B, T)
        return log_probs.mean(axis=0), log_probs.std(axis=0)


def same_grid(a: Encoding, b: Encoding) -> bool:
    """Whether two encodings share a token grid: the kind (a chorale's tokens are not a
    melody's) and :data:`GRID`."""
    return a.kind == b.kind and all(getattr(a, f) == getattr(b, f) for f in GRID)


def build_ensemble(
    specs: Sequence[str], device: torch.device | str = "cpu", precision: str = "float64"
) -> EnsembleCritic:
    """An ensemble of generator specs (``pretrained:note_lstm``, checkpoint paths, ...).

    Raises:
        ValueError: no member, or members on different token grids.
    """
    from rlmusic.models.registry import load_generator

    if not specs:
        raise ValueError("an ensemble needs at least one member spec")
    members, encodings = zip(*(load_generator(str(s), device=device) for s in specs))
    for spec, encoding in zip(specs, encodings):
        if not same_grid(encoding, encodings[0]):
            raise ValueError(
                f"ensemble members must share the token grid ({', '.join(GRID)}): {spec!r} has "
                f"{encoding}, {specs[0]!r} has {encodings[0]}"
            )
    names = [str(s) for s in specs]
    return EnsembleCritic(list(members), names, encodings[0], device, precision=precision)


def evaluate_ensemble(
    critic: EnsembleCritic, real: np.ndarray, fake: np.ndarray | None = None
) -> dict[str, Any]:
    """Figures on held-out real windows (and generated ones, when given).

    ``nll``: the ensemble's mean ``-log p`` per real token; ``nll/<member>`` each member's;
    ``disagreement_real`` / ``_fake``: mean std per token; ``auc``: real vs generated windows
    ranked by mean log-likelihood per token.
    """
    real_lp = critic.member_log_probs(real)  # (K, Nr, T)
    figures: dict[str, Any] = {
        "nll": float(-real_lp.mean()),
        **{f"nll/{name}": float(-lp.mean()) for name, lp in zip(critic.names, real_lp)},
        "disagreement_real": float(real_lp.std(axis=0).mean()),
        "n_valid_real": int(real_lp.shape[1]),
    }
    if fake is not None and len(fake):
        fake_lp = critic.member_log_probs(fake)  # (K, Nf, T')
        scores = np.concatenate([real_lp.mean(axis=(0, 2)), fake_lp.mean(axis=(0, 2))])
        labels = np.concatenate([np.ones(real_lp.shape[1]), np.zeros(fake_lp.shape[1])])
        figures.update(
            disagreement_fake=float(fake_lp.std(axis=0).mean()),
            auc=binary_auc(scores, labels),
            n_valid_fake=int(fake_lp.shape[1]),
        )
    return figures


def save_ensemble(
    path: str | Path,
    critic: EnsembleCritic,
    metrics: dict[str, Any] | None = None,
    trained: dict[str, Any] | None = None,
) -> Path:
    """Save every member's weights (``member<k>.<param>``) with its arch and config."""
    members, state = [], {}
    for k, (name, model) in enumerate(zip(critic.names, critic.members)):
        members.append({"spec": name, "arch": model.arch, "config": generator_config(model)})
        state.update({f"member{k}.{key}": v.float() for key, v in model.state_dict().items()})
    config = {"members": members}
    return save_critic_record(
        path, "ensemble", ARCH, config, critic.encoding, state, metrics, trained
    )


def load_ensemble(
    path: str | Path, device: torch.device | str = "cpu", precision: str = "float64"
) -> tuple[EnsembleCritic, dict[str, Any]]:
    """A saved ensemble and its metadata (the record without weights).

    Raises:
        CheckpointError: naming the file: damage, another kind, weights that do not fit.
    """
    record = read_critic_record(path, "ensemble")
    where = record["path"]
    if record["arch"] != ARCH:
        raise CheckpointError(f"{where}: architecture {record['arch']!r}, expected {ARCH!r}")
    encoding = record_encoding(record)
    specs = record["config"].get("members") if isinstance(record["config"], dict) else None
    if not specs:
        raise CheckpointError(f"{where}: an ensemble checkpoint without members")
    members = []
    for k, spec in enumerate(specs):
        model = build_model(str(spec.get("arch")), dict(spec.get("config") or {}), where=where)
        prefix = f"member{k}."
        state = {
            key[len(prefix) :]: v
            for key, v in record["state_dict"].items()
            if key.startswith(prefix)
        }
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:400]
            raise CheckpointError(f"{where}: member {k} weights do not fit ({detail})") from None
        members.append(model)
    names = [str(spec.get("spec", f"member{k}")) for k, spec in enumerate(specs)]
    meta = {k: v for k, v in record.items() if k != "state_dict"}
    return EnsembleCritic(members, names, encoding, device, precision=precision), meta
