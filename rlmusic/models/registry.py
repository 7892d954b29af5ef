"""Generators by name: the shipped pretrained checkpoints and ``checkpoint=`` specs in configs.

``load_generator("pretrained:note_lstm")`` and ``load_generator("runs/x/best.pt")`` are the
two spellings every task accepts; both return ``(model, encoding)`` with the model in eval mode.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rlmusic.data.encodings import Encoding
from rlmusic.models.checkpoint import CheckpointError, load_checkpoint, read_record
from rlmusic.models.policy import POLICY_KEY, PRETRAINED_PREFIX, build_policy, portable_spec

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"

# name -> (file in PRETRAINED_DIR, architecture, one-line description)
PRETRAINED: dict[str, tuple[str, str, str]] = {
    "note_lstm": (
        "note_lstm.safetensors",
        "lstm",
        "NoteLSTM 2x256 trained on the default corpus (data=all), RL Tuner encoding",
    ),
    "music_transformer": (
        "music_transformer.safetensors",
        "transformer",
        "MusicTransformer (relative attention) trained on the default corpus, RL Tuner encoding",
    ),
    "chorale_lstm": (
        "chorale_lstm.safetensors",
        "lstm",
        "NoteLSTM 2x256 trained on Bach's four-part chorales (data=chorales), chorale encoding",
    ),
    "chorale_transformer": (
        "chorale_transformer.safetensors",
        "transformer",
        "MusicTransformer (relative attention) trained on Bach's chorales, chorale encoding",
    ),
    "chorale_harmoniser": (
        "chorale_harmoniser.safetensors",
        "lstm",
        "chorale_lstm fine-tuned to harmonise: reads a soprano, writes alto, tenor and bass",
    ),
}


def _pretrained_specs() -> str:
    """The pretrained specs, for messages: ``pretrained:music_transformer, pretrained:note_lstm``."""
    return ", ".join(f"{PRETRAINED_PREFIX}{name}" for name in sorted(PRETRAINED))


def list_pretrained() -> dict[str, str]:
    """Shipped checkpoint names and their descriptions."""
    return {name: description for name, (_, _, description) in PRETRAINED.items()}


def pretrained_path(name: str) -> Path:
    """The file of a shipped checkpoint.

    Raises:
        CheckpointError: an unknown name (the message lists the known ones) or a missing file.
    """
    if name not in PRETRAINED:
        raise CheckpointError(
            f"{PRETRAINED_PREFIX}{name}: unknown pretrained model; known: {_pretrained_specs()}"
        )
    path = PRETRAINED_DIR / PRETRAINED[name][0]
    if not path.is_file():
        raise CheckpointError(
            f"{path}: pretrained model {name!r} is not installed; rebuild it with "
            "scripts/build_pretrained.sh"
        )
    return path


def load_pretrained(name: str, device: torch.device | str = "cpu") -> tuple[nn.Module, Encoding]:
    """A shipped generator by name (offline): ``(model in eval mode, its encoding)``."""
    model, encoding, _ = load_checkpoint(
        pretrained_path(name), arch=PRETRAINED[name][1], device=device
    )
    return model, encoding


def load_generator(
    spec: str | Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, Encoding]:
    """``pretrained:<name>`` or a checkpoint path / run directory -> (policy, encoding).

    The returned model is the policy the checkpoint records (``info["policy"]``, see
    :mod:`rlmusic.models.policy`): a G-learning run's ``p_prior * exp(G)``, a Psi-learning run's
    ``softmax(Psi / c)``; a checkpoint without one is its network's own softmax.

    Raises:
        CheckpointError: an unreadable checkpoint, an unknown or incomplete policy, or a policy
            whose prior cannot be loaded (or names the checkpoint itself).
    """
    return _load(str(spec), device, ())


def _load(
    spec: str, device: torch.device | str, loading: tuple[str, ...]
) -> tuple[nn.Module, Encoding]:
    if spec.startswith(PRETRAINED_PREFIX):
        return load_pretrained(spec[len(PRETRAINED_PREFIX) :], device=device)
    path = Path(spec).expanduser()
    if not path.exists():
        raise CheckpointError(
            f"{spec}: no such checkpoint file or run folder (give a checkpoint file, a run "
            f"folder, or one of {_pretrained_specs()})"
        )
    model, encoding, info = load_checkpoint(path, device=device)
    policy = info.get(POLICY_KEY)
    if not policy:
        return model, encoding
    here = portable_spec(path)
    if here in loading:  # a prior that names a checkpoint being loaded: no end to it
        raise CheckpointError(f"{path}: its policy's prior leads back to {here}")

    def load_prior(prior_spec: str) -> nn.Module:
        prior, prior_encoding = _load(prior_spec, device, (*loading, here))
        if prior_encoding != encoding:
            raise CheckpointError(
                f"{path}: its policy's prior {prior_spec} has another token encoding"
            )
        return prior

    try:
        return build_policy(model, policy, str(path), load_prior).to(device), encoding
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def checkpoint_info(spec: str | Path) -> dict:
    """The ``info`` record of ``pretrained:<name>`` or a checkpoint path / run folder."""
    spec = str(spec)
    if spec.startswith(PRETRAINED_PREFIX):
        return dict(read_record(pretrained_path(spec[len(PRETRAINED_PREFIX) :])).get("info") or {})
    return dict(read_record(Path(spec).expanduser()).get("info") or {})


def checkpoint_encoding(spec: str | Path) -> Encoding:
    """The token encoding of ``pretrained:<name>`` or a checkpoint path / run folder, read from
    its record without building the model."""
    from rlmusic.data.encodings import encoding_from_record

    spec = str(spec)
    if spec.startswith(PRETRAINED_PREFIX):
        record = read_record(pretrained_path(spec[len(PRETRAINED_PREFIX) :]))
    else:
        record = read_record(Path(spec).expanduser())
    return encoding_from_record(record["encoding"], spec)


def checkpoint_conditioning(spec: str | Path) -> str | None:
    """``"soprano"`` when the checkpoint is a harmoniser (it reads a soprano first), else
    None (:mod:`rlmusic.data.harmonisation`)."""
    from rlmusic.data.harmonisation import conditioning_of

    try:
        return conditioning_of(checkpoint_info(spec))
    except ValueError as exc:
        raise CheckpointError(f"{spec}: {exc}") from None


def judging_prior(spec: str) -> str:
    """The supervised model a checkpoint's samples are judged under (log p, KL): the KL
    reference a fine-tuned checkpoint records, else the model it was tuned from, else itself.
    Tasks use it when ``prior`` is left null, so the prior follows the model the user chose."""
    if spec.startswith(PRETRAINED_PREFIX):
        return spec
    info = load_checkpoint(Path(spec).expanduser())[2]
    reference = info.get("reference")
    if reference and reference != "start":
        return str(reference)
    return str(info.get("tuned_from") or spec)
