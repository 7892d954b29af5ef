"""A prepared corpus: token sequences of whole tunes, their metadata and a seeded split.

Stored as one ``.npz`` (no pickles): the tunes' tokens concatenated in ``tokens`` with
``offsets`` marking where each starts, one array per metadata column, and the rejected
inputs with their reasons.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.data.encodings import encoding_from_record, encoding_record
from rlmusic.errors import UserError

SPLITS = ("train", "valid", "test")
METADATA_COLUMNS = ("source", "tune_id", "title", "key", "transposition", "notes", "folded_notes")


class CorpusError(UserError, RuntimeError):
    """A corpus could not be prepared or loaded (names the source or file and the reason; a
    user error: the CLI prints it as one line)."""


def split_of(tune_id: str, seed: int, valid_fraction: float, test_fraction: float) -> str:
    """Deterministic split by tune: a seeded hash, so adding tunes never moves the others."""
    digest = hashlib.blake2b(f"{seed}:{tune_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


@dataclass
class Corpus:
    """Tunes as uint8 token arrays plus per-tune metadata columns and a split per tune."""

    encoding: MelodyEncoding
    tokens: list[np.ndarray]
    metadata: dict[str, np.ndarray]
    split: np.ndarray  # (N,) of "train" | "valid" | "test"
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (input name, reason)

    def __len__(self) -> int:
        return len(self.tokens)

    def tunes(self, split: str) -> list[np.ndarray]:
        """The token arrays of one split, in corpus order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return [t for t, s in zip(self.tokens, self.split) if s == split]

    @classmethod
    def from_tunes(
        cls,
        tunes: list[np.ndarray],
        encoding: MelodyEncoding,
        seed: int = 0,
        valid_fraction: float = 0.05,
        test_fraction: float = 0.05,
        metadata: dict[str, list] | None = None,
        rejected: list[tuple[str, str]] | None = None,
    ) -> Corpus:
        """Build a corpus from token arrays (tests, user pipelines). Ids default to indices."""
        n = len(tunes)
        columns: dict[str, list] = {
            "source": ["user"] * n,
            "tune_id": [f"tune{i}" for i in range(n)],
            "title": [""] * n,
            "key": [""] * n,
            "transposition": [0] * n,
            "notes": [len(encoding.decode(t)) for t in tunes],
            "folded_notes": [0] * n,
        }
        columns.update(metadata or {})
        split = np.array(
            [split_of(i, seed, valid_fraction, test_fraction) for i in columns["tune_id"]]
        )
        return cls(
            encoding=encoding,
            tokens=[np.asarray(t, dtype=np.uint8) for t in tunes],
            metadata={k: np.asarray(v) for k, v in columns.items()},
            split=split,
            rejected=list(rejected or []),
        )

    # ---- persistence (npz, no pickles) ------------------------------------------------------
    def save(self, path: Path) -> None:
        path = Path(path)
        lengths = np.array([len(t) for t in self.tokens], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays = {
            "tokens": np.concatenate(self.tokens) if self.tokens else np.zeros(0, np.uint8),
            "offsets": offsets,
            "split": self.split.astype(str),
            "encoding": np.array(json.dumps(encoding_record(self.encoding), sort_keys=True)),
            "rejected_name": np.array([r[0] for r in self.rejected], dtype=str),
            "rejected_reason": np.array([r[1] for r in self.rejected], dtype=str),
        }
        arrays.update({f"meta_{k}": v for k, v in self.metadata.items()})
        # write then rename: an interrupted save never leaves a half cache behind; the temporary
        # name is this writer's own, so two processes preparing the same shared cache (the
        # default ~/.cache/rlmusic) never move each other's half-written file
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp.npz")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(tmp, **arrays)
            tmp.replace(path)
        except OSError as exc:  # a read-only, full or mistyped cache folder: the user's to fix
            why = "it is a file" if path.parent.is_file() else exc.strerror or str(exc)
            raise CorpusError(
                f"{path.parent}: cannot write the corpus cache there ({why}); give a writable "
                "folder: data.cache_dir=<folder> (or RLMUSIC_CACHE_DIR)"
            ) from None
        finally:
            if tmp.exists():  # (False, not an error, when the folder is not one)
                tmp.unlink()

    @classmethod
    def load(cls, path: Path) -> Corpus:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                offsets = data["offsets"]
                flat = data["tokens"]
                tokens = [flat[a:b].copy() for a, b in zip(offsets[:-1], offsets[1:])]
                encoding = encoding_from_record(json.loads(str(data["encoding"])))
                metadata = {k[len("meta_") :]: data[k] for k in data.files if k.startswith("meta_")}
                rejected = list(
                    zip(data["rejected_name"].tolist(), data["rejected_reason"].tolist())
                )
                split = data["split"]
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise CorpusError(f"{path}: not a readable rlmusic corpus cache ({exc})") from exc
        return cls(encoding, tokens, metadata, split, rejected)
