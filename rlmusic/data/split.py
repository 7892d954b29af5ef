"""The held-out split: which tunes a model is judged on and a critic is kept from.

Every tune goes to ``train``, ``valid`` or ``test`` by a hash of its id under ``data.split_seed``
(:func:`rlmusic.data.corpus.split_of`). The split seed is a fixed number of the ``data`` config,
not the run's ``seed``: ``rlmusic compare seed=1`` samples other pieces, but judges them against
the same held-out tunes as ``seed=0``, none of which the shipped models (split seed 0) or an
``auto`` critic trained on. Re-splitting is a choice of its own (``data.split_seed=3``, or
``data.split_seed='${seed}'`` to follow the run's seed again).

Every result file that scores against held-out tunes records the split it used
(:func:`split_record`): the seed, the fractions, the counts and a digest of the test ids.

>>> HeldOutSplit.from_cfg({"split_seed": 0}).assign(["a", "b"]).tolist()
['train', 'train']
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlmusic.config.validate import ConfigError
from rlmusic.data.corpus import SPLITS, Corpus, CorpusError, split_of

SPLIT_SEED_KEY = "split_seed"
RENAMED_KEY = "seed"  # data.seed: the split seed's name until it stopped following the run's


@dataclass(frozen=True)
class HeldOutSplit:
    """How a ``data`` config splits its tunes (``data.split_seed``, ``data.valid_fraction``,
    ``data.test_fraction``)."""

    seed: int = 0
    valid_fraction: float = 0.05
    test_fraction: float = 0.05

    @classmethod
    def from_cfg(cls, data_cfg: Mapping[str, Any]) -> HeldOutSplit:
        """The split a ``data`` config names (an unset key: its default above).

        Raises:
            ConfigError: the config sets ``data.seed`` (renamed ``data.split_seed``).
            CorpusError: fractions that leave no train split.
        """
        if RENAMED_KEY in data_cfg:
            raise ConfigError(
                f"data.{RENAMED_KEY} was renamed data.{SPLIT_SEED_KEY} (the held-out split, now "
                f"fixed instead of following the run's seed): give data.{SPLIT_SEED_KEY}="
                f"{data_cfg[RENAMED_KEY]} to re-split on purpose, or drop it"
            )
        split = cls(
            int(data_cfg.get(SPLIT_SEED_KEY, cls.seed)),
            float(data_cfg.get("valid_fraction", cls.valid_fraction)),
            float(data_cfg.get("test_fraction", cls.test_fraction)),
        )
        valid, test = split.valid_fraction, split.test_fraction
        if not (0 <= valid and 0 <= test and valid + test < 1):
            raise CorpusError(
                f"data.valid_fraction={valid} and data.test_fraction={test} must leave a train split"
            )
        return split

    def assign(self, tune_ids: Iterable[Any]) -> np.ndarray:
        """The split of each tune id: (N,) of ``train`` | ``valid`` | ``test``."""
        return np.array(
            [
                split_of(str(t), self.seed, self.valid_fraction, self.test_fraction)
                for t in tune_ids
            ],
            dtype="<U5",
        )


def split_record(corpus: Corpus, data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What a result file records of the split it scored against: the split's settings, the
    tunes per split and a SHA-1 of the sorted test-split tune ids (the held-out tunes, as
    ``corpus`` split them)."""
    split = HeldOutSplit.from_cfg(data_cfg)
    ids = np.asarray(corpus.metadata["tune_id"]).astype(str)
    test_ids = sorted(ids[corpus.split == "test"].tolist())
    return {
        "source": str(data_cfg.get("source", "all")),
        SPLIT_SEED_KEY: split.seed,
        "valid_fraction": split.valid_fraction,
        "test_fraction": split.test_fraction,
        **{f"n_{name}": int((corpus.split == name).sum()) for name in SPLITS},
        "test_ids_sha1": ids_sha1(test_ids),
    }


def ids_sha1(tune_ids: Iterable[str]) -> str:
    """The SHA-1 of tune ids, sorted, one a line (:func:`split_record`'s ``test_ids_sha1``)."""
    return hashlib.sha1("\n".join(sorted(str(t) for t in tune_ids)).encode()).hexdigest()


__all__ = ["SPLIT_SEED_KEY", "HeldOutSplit", "ids_sha1", "split_record"]
