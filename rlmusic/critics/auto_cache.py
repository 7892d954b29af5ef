"""The cache of ``checkpoint: auto`` critics: their settings, their key, and training one into it.

An auto critic is a discriminator trained on a corpus's train split against a start model's
samples (:func:`rlmusic.critics.training.train_corpus_discriminator`, the code
``rlmusic train-critic critic=discriminator`` runs), kept as a run folder
``<data.cache_dir>/critics/<key>/`` (``critic.safetensors``, ``critic.log``, ``metrics.json``,
``config.yaml``: what it was trained on and how). The key digests the train split's tokens (so
a renamed folder or a re-prepared cache of the same tunes keeps it), the start model's weights,
the encoding and the :class:`AutoCriticSettings`. Which critic ``auto`` means is
:mod:`rlmusic.critics.auto`'s business.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlmusic.critics.io import DEFAULT_NAME, read_critic_record
from rlmusic.critics.training import DiscriminatorRecipe, train_corpus_discriminator
from rlmusic.data.corpus import Corpus
from rlmusic.data.encodings import Encoding, encoding_record
from rlmusic.rewards.base import RewardError

log = logging.getLogger(__name__)

CRITICS_DIR = "critics"  # under data.cache_dir
SETTINGS_KEY = "auto"  # reward.extra.<term>.auto: {steps, windows, samples}: AutoCriticSettings
KEY_VERSION = 1  # bump when what an auto critic trains on changes: every cached one retrains


@dataclass(frozen=True)
class AutoCriticSettings:
    """How an ``auto`` critic trains; the rest is :class:`DiscriminatorRecipe`'s defaults
    (conf/critic/discriminator.yaml's).

    ``steps`` is a step count, not a time (the same weights on any machine). Measured on one
    thread of a shared 2-core machine, 160 Renaissance MIDI files (146 train tunes) against a
    note LSTM fine-tuned on them: 58 s in all (8 s sampling, 46 s for 600 steps), held-out
    accuracy 0.756, AUC 0.820. On 148 Palestrina top voices against an LSTM trained on them,
    300 / 600 / 1,000 steps reached AUC 0.73 / 0.91 / 0.94: past 600 steps more time buys
    little, and a busy machine stays under two minutes.
    """

    steps: int = 600
    windows: int = 8192  # real windows cut from the train split (held-out share included)
    samples: int = 4096  # compositions sampled from the start model
    length: int = 32  # time steps per window and sample, as the shipped critic's: it scores
    # every prefix, so like the shipped one it serves a run of any length (a chorale: 4 tokens
    # a step)
    seed: int = 0  # the critic's weights, tune split, windows and samples

    @classmethod
    def from_spec(cls, node: Mapping[str, Any] | None) -> AutoCriticSettings:
        node = dict(node or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(node) - known)
        if unknown:
            raise RewardError(
                f"reward.extra.<term>.{SETTINGS_KEY} has no key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: int(v) for k, v in node.items()})

    def recipe(self, start: str) -> DiscriminatorRecipe:
        """The discriminator these settings train against the start model ``start``: a fixed
        step count, no time cap (the same weights on any machine)."""
        shipped = DiscriminatorRecipe()
        return replace(
            shipped,
            generators=(str(start),),
            samples=self.samples,
            windows=self.windows,
            length=self.length,
            train=replace(shipped.train, steps=self.steps, time_s=None),
        )


# ---- identities --------------------------------------------------------------------------------
def model_identity(model: nn.Module) -> str:
    """A digest of a generator's weights (names, dtypes, shapes, values) and class."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{value.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())  # the bytes, any dtype
    return digest.hexdigest()[:16]


def tunes_identity(tunes: list[np.ndarray]) -> str:
    """A digest of token sequences, in order (a corpus split's content)."""
    digest = hashlib.sha256()
    for tune in tunes:
        array = np.ascontiguousarray(tune, dtype=np.int64)
        digest.update(len(array).to_bytes(8, "little"))
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def encoding_identity(encoding: Encoding) -> dict[str, Any]:
    """The encoding as keys and records name it: its fields, and its kind unless a melody (the
    keys of melody critics cached before kinds existed stay theirs)."""
    return asdict(encoding) if encoding.kind == "melody" else encoding_record(encoding)


def cache_key(
    train_tunes: str, start: str, encoding: Encoding, settings: AutoCriticSettings
) -> str:
    """The cache key of an auto critic: what it trains on, against, and how."""
    blob = {
        "version": KEY_VERSION,
        "train_tunes": train_tunes,
        "start": start,
        "encoding": encoding_identity(encoding),
        "settings": asdict(settings),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def critics_dir(data: Mapping[str, Any]) -> Path:
    """Where auto critics are cached: ``<data.cache_dir>/critics``."""
    base = data.get("cache_dir") or Path.home() / ".cache" / "rlmusic"
    return Path(str(base)).expanduser() / CRITICS_DIR


# ---- the cache folder --------------------------------------------------------------------------
def complete(folder: Path) -> bool:
    """A cached critic that reads back (a damaged one is trained again, not trusted)."""
    if not (folder / DEFAULT_NAME).is_file():
        return False
    try:
        read_critic_record(folder, "discriminator")
        return True
    except Exception as exc:  # CheckpointError and whatever a torn file raises
        log.warning("cached critic %s does not read back (%s); training it again", folder, exc)
        return False


def train_into(
    folder: Path,
    corpus: Corpus,
    data: Mapping[str, Any],
    start: str,
    settings: AutoCriticSettings,
    device: torch.device | str,
) -> float:
    """Train the auto critic of ``corpus``'s train split against ``start`` into ``folder``;
    its wall time in seconds.

    It trains in a scratch folder beside ``folder``, then renames it into place: an interrupted
    run never leaves half a critic, and of two runs training the same one the first to finish
    wins (the other's is dropped).
    """
    from omegaconf import OmegaConf

    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        recipe = settings.recipe(start)
        run = train_corpus_discriminator(corpus, data, recipe, scratch, settings.seed, device)
        record = {
            "data": dict(data),
            "encoding": encoding_identity(corpus.encoding),
            "start": str(start),
            "auto": asdict(settings),
            "critic": recipe.to_node(),
            "seed": settings.seed,
            "length": settings.length,
            "device": str(device),
            "key": folder.name,
        }
        OmegaConf.save(OmegaConf.create(record), scratch / "config.yaml")
        _rename_inside(scratch, folder)
        if folder.exists() and not complete(folder):
            shutil.rmtree(folder)  # a damaged earlier one
        try:
            os.rename(scratch, folder)
        except OSError:  # another process put the same critic there first
            if not complete(folder):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return run.wall_s


def _rename_inside(scratch: Path, folder: Path) -> None:
    """The run folder's own records name the folder it will live in, not the scratch one."""
    for name in ("metrics.json", "config.yaml"):
        path = scratch / name
        if path.is_file():
            path.write_text(path.read_text().replace(str(scratch), str(folder)))
