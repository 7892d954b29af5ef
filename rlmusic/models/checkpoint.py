"""Generator checkpoints: architecture + config + encoding + state dict, and nothing executable.

Two on-disk forms, told apart by their first bytes (not the file name):

* **safetensors** (shipped models): the state dict as tensors, the rest as JSON strings in the
  header's metadata (``format``, ``arch``, ``config``, ``encoding``, ``info``).
* **torch** (``.pt``, what the trainer writes): a dict of tensors and plain Python values,
  read with ``torch.load(weights_only=True)`` only. A training checkpoint (``format:
  rlmusic-train``) holds the same generator dict under ``"generator"`` plus optimizer state.

Anything else -- another architecture or vocabulary than asked for, a state dict that does not
fit its config or holds NaN/inf weights, a truncated file, a pickle of arbitrary objects, a Git
LFS pointer left where the file should be -- raises :class:`CheckpointError` naming the file
and the mismatch. Nothing in a file is ever executed.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rlmusic.data.encodings import Encoding, encoding_from_record, encoding_record
from rlmusic.errors import UserError
from rlmusic.models.custom import CUSTOM_ARCH, build_custom
from rlmusic.models.lstm import LSTMConfig, NoteLSTM
from rlmusic.models.transformer import MusicTransformer, TransformerConfig

GENERATOR_FORMAT = "rlmusic-generator"
TRAIN_FORMAT = "rlmusic-train"
FORMAT_VERSION = 1

# arch name -> (model class, config dataclass)
ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {
    "lstm": (NoteLSTM, LSTMConfig),
    "transformer": (MusicTransformer, TransformerConfig),
}
# a user's own module: ``arch: custom`` with ``config["_target_"]`` (rlmusic.models.custom)
KNOWN_ARCHES = (*ARCHITECTURES, CUSTOM_ARCH)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint could not be used; the message names the file and what is wrong (a user
    error: the CLI prints it as one line)."""


def build_model(arch: str, config: dict[str, Any], where: str = "model config") -> nn.Module:
    """A fresh generator from an architecture name and its config fields.

    ``arch == "custom"`` imports ``config["_target_"]`` and calls it with ``vocab_size`` and
    the config's other keys (:func:`rlmusic.models.custom.build_custom`).

    Raises:
        CheckpointError: unknown architecture or config field, a user's module that does not
            import or rejects its arguments (``where`` prefixes the message).
    """
    if arch == CUSTOM_ARCH:
        return build_custom(config, CheckpointError, where)
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{where}: unknown architecture {arch!r}; known: {', '.join(KNOWN_ARCHES)}"
        )
    model_cls, config_cls = ARCHITECTURES[arch]
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise CheckpointError(
            f"{where}: {arch} has no config field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    try:
        return model_cls(config_cls(**config))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: invalid {arch} config ({exc})") from None


def unwrap(model: nn.Module) -> nn.Module:
    """The plain generator inside DDP and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):  # DDP
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile
            model = model._orig_mod
        else:
            return model


def generator_config(model: nn.Module) -> dict[str, Any]:
    """A generator's config as plain values: what :func:`build_model` rebuilds it from."""
    config = unwrap(model).config
    return dict(config) if isinstance(config, Mapping) else asdict(config)


def generator_record(
    model: nn.Module, encoding: Encoding, info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The checkpoint dict of a generator: plain values and CPU tensors only."""
    model = unwrap(model)
    return {
        "format": GENERATOR_FORMAT,
        "version": FORMAT_VERSION,
        "arch": model.arch,
        "config": generator_config(model),
        "encoding": encoding_record(encoding),
        "info": dict(info or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write then rename: a crash (even kill -9) mid-save never leaves a half file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    encoding: Encoding,
    info: dict[str, Any] | None = None,
) -> Path:
    """Save a generator: ``*.safetensors`` as safetensors, anything else as a torch file."""
    path = Path(path)
    record = generator_record(model, encoding, info)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {k: json.dumps(v) for k, v in record.items() if k != "state_dict"}
        tmp = path.with_name(path.name + ".tmp")
        # safetensors refuses shared storage; contiguous copies make every tensor its own
        save_file({k: v.contiguous() for k, v in record["state_dict"].items()}, tmp, metadata)
        tmp.chmod(0o644)  # safetensors creates 0600 files; checkpoints are shared artefacts
        tmp.replace(path)
    else:
        atomic_torch_save(record, path)
    return path


# A Git LFS pointer file starts with this line (git-lfs spec v1); a clone without git-lfs (or
# before ``git lfs pull``) leaves one in place of every tracked checkpoint.
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def check_not_lfs_pointer(path: Path) -> None:
    """Raise :class:`CheckpointError` if ``path`` is a Git LFS pointer, not the file itself."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
    except OSError:
        return  # the reader that follows says what is wrong with the path
    if not head.startswith(_LFS_POINTER):
        return
    fields = dict(
        line.split(" ", 1) for line in head.decode("ascii", "replace").splitlines() if " " in line
    )
    size = f"{fields['size']}-byte " if fields.get("size", "").isdigit() else ""
    raise CheckpointError(
        f"{path}: this is a Git LFS pointer, not the checkpoint (the {size}file itself was "
        "never fetched); run `git lfs pull` to fetch it"
    )


# the fix for a damaged file, in every message about one
_REFETCH = "copy or download it again, or give another checkpoint"


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"  # u64 header length, then the JSON header


def read_torch_file(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with its failures turned into CheckpointError."""
    check_not_lfs_pointer(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the file ({exc.strerror})") from None
    # torch.save writes a zip archive, or (legacy) a pickle; anything else would reach the
    # unpickler as garbage and fail as if it held Python objects
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise CheckpointError(
            f"{path}: truncated or not a torch checkpoint (neither a safetensors nor a torch "
            f"file); {_REFETCH}"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(
                f"{path}: holds pickled Python objects, not just tensors and plain values; "
                "refusing to unpickle it (loading is weights_only: nothing in a file runs)"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
    except Exception as exc:  # garbage bytes make the unpickler fail in any number of ways
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: truncated or not a torch checkpoint ({first[:200]}); {_REFETCH}"
        ) from None


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import safe_open

    check_not_lfs_pointer(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state_dict = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(
            f"{path}: truncated or not a safetensors file ({exc}); {_REFETCH}"
        ) from None
    try:
        record = {k: json.loads(v) for k, v in metadata.items()}
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: unreadable rlmusic metadata ({exc})") from None
    record["state_dict"] = state_dict
    return record


def read_record(path: str | Path) -> dict[str, Any]:
    """The generator dict stored in ``path`` (a generator or training checkpoint), unvalidated."""
    path = Path(path)
    if path.is_dir():
        path = find_in_directory(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        safetensors = _is_safetensors(path)
    except OSError as exc:  # no permission, an I/O error
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror})") from None
    record = _read_safetensors(path) if safetensors else read_torch_file(path)
    if isinstance(record, dict) and record.get("format") == TRAIN_FORMAT:
        record = record.get("generator")
    if not isinstance(record, dict) or record.get("format") != GENERATOR_FORMAT:
        raise CheckpointError(
            f"{path}: not an rlmusic generator checkpoint (no format={GENERATOR_FORMAT!r} entry)"
        )
    if record.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {record['version']} is newer than this "
            f"rlmusic reads ({FORMAT_VERSION}); upgrade rlmusic"
        )
    return record


def check_finite(state_dict: Any, path: str | Path) -> None:
    """Refuse NaN/inf weights (a diverged run's save): a model would sample garbage from them.

    Raises:
        CheckpointError: naming ``path`` and every tensor holding a non-finite value.
    """
    if not isinstance(state_dict, dict):
        return  # load_state_dict reports the shape problem
    bad = [
        f"{name} ({int((~torch.isfinite(tensor)).sum())} of {tensor.numel()})"
        for name, tensor in state_dict.items()
        if isinstance(tensor, torch.Tensor)
        and tensor.is_floating_point()
        and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise CheckpointError(
            f"{path}: non-finite weights (NaN or inf) in {len(bad)} tensor(s): {shown}; "
            "refusing a model that would sample from them"
        )


# what a run folder's model is, first found first: a fine-tuning run's tuned policy, then a
# pretraining run's best weights, then its best or last training checkpoint
RUN_FOLDER_FILES = ("tuned.safetensors", "model.safetensors", "best.pt", "last.pt")


def find_in_directory(directory: Path) -> Path:
    """A run directory's model: tuned.safetensors (fine-tuning), else model.safetensors, else
    best.pt, else last.pt (pretraining)."""
    for name in RUN_FOLDER_FILES:
        if (directory / name).is_file():
            return directory / name
    raise CheckpointError(
        f"{directory}: a directory without {', '.join(RUN_FOLDER_FILES[:-1])} or "
        f"{RUN_FOLDER_FILES[-1]}"
    )


def load_checkpoint(
    path: str | Path,
    arch: str | None = None,
    vocab_size: int | None = None,
    encoding: Encoding | None = None,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, Encoding, dict[str, Any]]:
    """Load a generator checkpoint, checking it against what the caller expects.

    Args:
        path: a checkpoint file (safetensors or torch) or a run directory.
        arch: expected architecture (``lstm`` | ``transformer`` | ``custom``); None accepts any.
        vocab_size: expected output vocabulary; None accepts any.
        encoding: expected token encoding (every field); None accepts any.
        device: where the returned model lives.

    Returns:
        The model in eval mode, the checkpoint's encoding and its ``info`` dict.

    Raises:
        CheckpointError: naming ``path`` and the mismatch or damage.
    """
    record = read_record(path)
    try:
        saved_arch, config = str(record["arch"]), dict(record["config"])
        saved_encoding = encoding_from_record(record["encoding"], str(path))
        state_dict = record["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete or invalid checkpoint ({exc!r})") from None
    if arch is not None and saved_arch != arch:
        raise CheckpointError(
            f"{path}: architecture mismatch: the checkpoint holds a {saved_arch!r} model, "
            f"expected {arch!r}"
        )
    saved_vocab = int(config.get("vocab_size", -1))
    if saved_vocab != saved_encoding.vocab_size:
        raise CheckpointError(
            f"{path}: inconsistent checkpoint: model vocab_size {saved_vocab} but its "
            f"encoding has {saved_encoding.vocab_size} tokens"
        )
    if vocab_size is not None and saved_vocab != vocab_size:
        raise CheckpointError(
            f"{path}: vocabulary mismatch: the checkpoint's model has vocab_size "
            f"{saved_vocab}, expected {vocab_size}"
        )
    if encoding is not None and saved_encoding != encoding:
        saved, expected = encoding_record(saved_encoding), encoding_record(encoding)
        # the kind first: a chorale checkpoint where a melody was expected says so
        diff = {k: (v, expected.get(k)) for k, v in saved.items() if expected.get(k) != v}
        detail = ", ".join(f"{k}={a} (expected {b})" for k, (a, b) in diff.items())
        raise CheckpointError(f"{path}: encoding mismatch: {detail}")
    check_finite(state_dict, path)
    model = build_model(saved_arch, config, where=str(path))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:500]
        raise CheckpointError(
            f"{path}: the weights do not fit a {saved_arch} with config {config} ({detail})"
        ) from None
    return model.to(device).eval(), saved_encoding, dict(record.get("info") or {})
