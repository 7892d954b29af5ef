"""A cache of two-sample critic test figures, so a comparison pays for each critic once.

The critic test (:mod:`rlmusic.evaluation.two_sample_critic`) trains a fresh critic on one
thread of the CPU from seeded inputs, so its figure is a function of

* the rows it fits and is scored on, both sides (the held-out tunes' windows, cut by the
  corpus, its split and the split seed, and the model's pieces, drawn by the model and seed),
* the critic's settings, the run's seed, the bootstrap's resamples and confidence,
* the code that trains and scores it, and torch's and numpy's versions.

The key digests exactly those: the rows themselves (not the names that produced them, so a
re-prepared corpus of the same tunes, or a model re-saved under another path, keeps its
figures; a changed tune or piece changes the key), the settings, and the source of the modules
that compute the figure (an edit to any of them is a new key, with no version to bump by hand).
The sanity row (real against real) and the supervised model's row are the same at every
comparison of a corpus and split, so a second comparison, or a demo after a fine-tune, trains
only the new model's critic.

One JSON file a figure: ``<cache_dir>/critic_test/<key>.json``, written beside and renamed
into place (a reader never sees half a file). A file that does not read back is computed
again, with a one-line warning, and overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlmusic.evaluation.bootstrap import Interval

log = logging.getLogger(__name__)

FOLDER = "critic_test"  # under the rlmusic cache dir (data.cache_dir)
# the modules whose code decides a figure: the test, the critic, its training and statistics
SOURCES = (
    "rlmusic.evaluation.two_sample_critic",
    "rlmusic.evaluation.bootstrap",
    "rlmusic.critics.discriminator",
    "rlmusic.critics.cnn",
    "rlmusic.critics.stats",
    "rlmusic.critics.data",
)


def default_dir() -> Path:
    """``$RLMUSIC_CACHE_DIR`` or ``~/.cache/rlmusic`` (the data groups' ``cache_dir``)."""
    return Path(os.environ.get("RLMUSIC_CACHE_DIR") or Path.home() / ".cache" / "rlmusic")


def code_version() -> str:
    """A digest of :data:`SOURCES`' source files and of torch's and numpy's versions."""
    import importlib

    import torch

    h = hashlib.sha256(f"torch {torch.__version__} numpy {np.__version__}".encode())
    for name in SOURCES:
        module = importlib.import_module(name)
        h.update(name.encode())
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()


def digest(*arrays: np.ndarray) -> str:
    """A digest of arrays' dtypes, shapes and bytes (equal rows, equal digest)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_key(material: Mapping[str, Any]) -> str:
    """The key of a figure: a digest of ``material`` (JSON-ready: digests, settings, seeds)."""
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:24]


class CriticTestCache:
    """Critic test figures under ``folder`` (``<cache_dir>/critic_test``), one file a key.

    Args:
        folder: where the files live (created on the first write).
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder).expanduser()

    @classmethod
    def under(cls, cache_dir: Path | str | None) -> CriticTestCache:
        """The cache in ``<cache_dir>/critic_test`` (None: :func:`default_dir`)."""
        return cls(Path(str(cache_dir or default_dir())).expanduser() / FOLDER)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> tuple[Interval, dict[str, Any]] | None:
        """The figure stored under ``key``; None when there is none or it does not read back
        (warned in one line: the caller computes it again and :meth:`put` overwrites it)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            if record.get("key") != key:
                raise ValueError(f"it holds key {record.get('key')!r}")
            iv = record["interval"]
            interval = Interval(*(math.nan if iv[k] is None else float(iv[k]) for k in VALUES))
            figures = dict(record["figures"])
        except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError: a ValueError
            log.warning(
                "critic test cache %s does not read back (%s); computing it again", path, exc
            )
            return None
        return interval, figures

    def put(self, key: str, interval: Interval, figures: Mapping[str, Any], about: Any) -> Path:
        """Store a figure under ``key`` (``about``: what it measured, for a reader of the file);
        the file's path. A cache folder that cannot be written is warned about, not fatal."""
        record = {
            "key": key,
            "interval": interval.as_dict(),
            "figures": {k: _plain(v) for k, v in figures.items()},
            "about": about,
        }
        path = self.path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".json", dir=self.folder)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f, indent=1)
            Path(tmp).replace(path)
        except OSError as exc:
            log.warning("critic test cache %s: cannot write there (%s); not cached", path, exc)
        return path


VALUES = ("value", "low", "high")


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, NaN as None (strict JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
