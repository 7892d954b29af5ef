"""Critic checkpoints, under the generators' safe-checkpoint rules: tensors and JSON, no code.

A critic file holds ``format = "rlmusic-critic"``, ``version``, ``kind`` (``discriminator`` |
``preference`` | ``ensemble``), ``arch``, ``config``, ``encoding``, ``metrics`` (the held-out
validation figures) and ``trained`` (seed, data, what it was trained against), plus the
weights. ``*.safetensors`` files keep those fields as JSON strings in the header's metadata;
any other name is a torch file of tensors and plain values, read with
``torch.load(weights_only=True)`` only (:func:`rlmusic.models.checkpoint.read_torch_file`).

Anything else -- a missing, truncated or foreign file, a generator checkpoint, a critic of
another kind -- raises :class:`~rlmusic.models.checkpoint.CheckpointError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rlmusic.data.encodings import Encoding, encoding_from_record, encoding_record
from rlmusic.models.checkpoint import (
    CheckpointError,
    _is_safetensors,
    _read_safetensors,
    atomic_torch_save,
    read_torch_file,
)

CRITIC_FORMAT = "rlmusic-critic"
CRITIC_VERSION = 1
KINDS = ("discriminator", "preference", "ensemble")
DEFAULT_NAME = "critic.safetensors"  # what train-critic writes into its run folder


def save_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict) -> None:
    """Write tensors plus JSON-encoded metadata as safetensors, atomically (write, rename).

    A generic twin of the safetensors branch of ``rlmusic.models.checkpoint.save_checkpoint``
    (which is not a separate helper there).
    """
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # safetensors refuses shared storage; contiguous CPU copies make every tensor its own
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        str(tmp),
        {k: json.dumps(v) for k, v in metadata.items()},
    )
    tmp.chmod(0o644)  # safetensors creates 0600 files; checkpoints are shared artefacts
    tmp.replace(path)


def save_critic_record(
    path: str | Path,
    kind: str,
    arch: str,
    config: dict[str, Any],
    encoding: Encoding,
    state_dict: dict[str, torch.Tensor],
    metrics: dict[str, Any] | None = None,
    trained: dict[str, Any] | None = None,
) -> Path:
    """Save a critic: ``*.safetensors`` as safetensors, any other name as a torch file."""
    if kind not in KINDS:
        raise ValueError(f"unknown critic kind {kind!r}; known: {', '.join(KINDS)}")
    path = Path(path)
    meta = {
        "format": CRITIC_FORMAT,
        "version": CRITIC_VERSION,
        "kind": kind,
        "arch": arch,
        "config": config,
        "encoding": encoding_record(encoding),
        "metrics": dict(metrics or {}),
        "trained": dict(trained or {}),
    }
    json.dumps(meta)  # fail here, not half-way through a write, on a non-JSON value
    if path.suffix == ".safetensors":
        save_safetensors(path, state_dict, meta)
    else:
        tensors = {k: v.detach().cpu() for k, v in state_dict.items()}
        atomic_torch_save({**meta, "state_dict": tensors}, path)
    return path


PRETRAINED_PREFIX = "pretrained:"
PRETRAINED_DIR = (
    Path(__file__).parent / "pretrained"
)  # shipped critics (scripts/build_discriminator.sh)


def list_pretrained_critics() -> list[str]:
    """Names of the shipped critics (``pretrained:<name>``)."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))


def resolve_critic_path(path: str | Path) -> Path:
    """A critic file, a train-critic run folder holding ``critic.safetensors``, or
    ``pretrained:<name>`` for a shipped critic."""
    if str(path).startswith(PRETRAINED_PREFIX):
        name = str(path)[len(PRETRAINED_PREFIX) :]
        shipped = PRETRAINED_DIR / f"{name}.safetensors"
        if not shipped.is_file():
            known = ", ".join(list_pretrained_critics()) or "none"
            raise CheckpointError(f"{path}: no shipped critic named {name!r}; shipped: {known}")
        return shipped
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / DEFAULT_NAME).is_file():
            raise CheckpointError(f"{path}: a directory without {DEFAULT_NAME}")
        path = path / DEFAULT_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: no such critic checkpoint")
    return path


def read_critic_record(path: str | Path, kind: str) -> dict[str, Any]:
    """The record in ``path`` (a file or run folder), checked to be a critic of ``kind``.

    Raises:
        CheckpointError: missing or damaged file, not a critic, another kind, a newer format.
    """
    path = resolve_critic_path(path)
    record = _read_safetensors(path) if _is_safetensors(path) else read_torch_file(path)
    if not isinstance(record, dict) or record.get("format") != CRITIC_FORMAT:
        found = record.get("format") if isinstance(record, dict) else None
        what = f" (it is a {found!r} file)" if found else ""
        raise CheckpointError(
            f"{path}: not an rlmusic critic checkpoint (no format={CRITIC_FORMAT!r} entry){what}"
        )
    if record.get("version", 0) > CRITIC_VERSION:
        raise CheckpointError(
            f"{path}: critic format version {record['version']} is newer than this rlmusic "
            f"reads ({CRITIC_VERSION}); upgrade rlmusic"
        )
    if record.get("kind") != kind:
        raise CheckpointError(
            f"{path}: holds a critic of kind {record.get('kind')!r}, expected {kind!r}"
        )
    missing = [k for k in ("arch", "config", "encoding", "state_dict") if k not in record]
    if missing:
        raise CheckpointError(f"{path}: incomplete critic checkpoint (no {', '.join(missing)})")
    record["path"] = str(path)
    return record


def record_encoding(record: dict[str, Any]) -> Encoding:
    try:
        return encoding_from_record(record["encoding"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{record.get('path')}: invalid encoding ({exc})") from None


def save_cnn_critic(
    path: str | Path,
    model: torch.nn.Module,
    kind: str,
    encoding: Encoding,
    metrics: dict[str, Any] | None = None,
    trained: dict[str, Any] | None = None,
) -> Path:
    """Save a :class:`~rlmusic.critics.cnn.CausalCNN` critic (discriminator or preference)."""
    from rlmusic.critics.cnn import CausalCNN

    if not isinstance(model, CausalCNN):
        raise TypeError(f"expected a CausalCNN, got {type(model).__name__}")
    return save_critic_record(
        path,
        kind,
        model.arch,
        asdict(model.config),
        encoding,
        model.state_dict(),
        metrics,
        trained,
    )


def load_cnn_critic(
    path: str | Path, kind: str, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, Encoding, dict[str, Any]]:
    """Load a CausalCNN critic of ``kind``: (model in eval mode, encoding, metadata).

    The metadata is the record without its weights: ``metrics``, ``trained``, ``config``, ...

    Raises:
        CheckpointError: naming the file: damage, another kind or architecture, weights that
            do not fit the config.
    """
    from rlmusic.critics.cnn import CausalCNN, CriticConfig

    record = read_critic_record(path, kind)
    where = record["path"]
    if record["arch"] != CausalCNN.arch:
        raise CheckpointError(
            f"{where}: architecture {record['arch']!r}, expected {CausalCNN.arch!r}"
        )
    encoding = record_encoding(record)
    try:
        model = CausalCNN(CriticConfig(**record["config"]))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: invalid critic config ({exc})") from None
    if model.vocab_size != encoding.vocab_size:
        raise CheckpointError(
            f"{where}: inconsistent critic: vocab_size {model.vocab_size} but its encoding has "
            f"{encoding.vocab_size} tokens"
        )
    try:
        model.load_state_dict(record["state_dict"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:400]
        raise CheckpointError(f"{where}: the weights do not fit the config ({detail})") from None
    meta = {k: v for k, v in record.items() if k != "state_dict"}
    return model.to(device).eval(), encoding, meta
