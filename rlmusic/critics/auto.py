"""``checkpoint: auto`` for a discriminator term: the realism critic follows the data.

The default reward's realism term (conf/reward/default.yaml) names ``checkpoint: auto``.
:func:`resolve_auto_critics` turns every ``auto`` into a concrete critic, given the run's
``data`` config and its start model:

* **shipped** -- ``pretrained:discriminator`` when ``data`` is the corpus it was trained on:
  its record's ``trained.real.data`` (``all``), read whole (no ``limit``, the default
  ``min_notes``, as scripts/build_discriminator.sh built it). The start model does not enter
  this choice: realism is the data's, the shipped critic's runs (docs/finetuning.md) start from
  both shipped generators, and a folk model of one's own would otherwise retrain a folk critic.
* **cached** -- otherwise the discriminator trained on this data against this start model, kept
  as a train-critic run folder ``<data.cache_dir>/critics/<key>/`` (``critic.safetensors``,
  ``critic.log``, ``metrics.json``, ``config.yaml``). The key digests the data's train split
  (token content, so a renamed folder or a re-prepared cache of the same tunes keeps it), the
  start model's weights, the encoding and :class:`AutoCriticSettings`.
* **trained** -- otherwise one is trained now, when the caller passes ``train`` (``rlmusic
  finetune`` does: the ``rlmusic train-critic critic=discriminator`` code path, real windows of
  the train split against the start model's samples, a fixed number of seeded steps), and
  cached under that key. Without ``train`` (``build_reward``: ``rlmusic compare``, scripts) a
  missing critic is an error that says how to get one.

Without a ``data`` config (``build_reward(cfg, encoding)`` alone) there is nothing to follow:
``auto`` is the shipped critic, with a warning naming it. Any other ``checkpoint`` is used as
given. Every choice is logged in one line (:meth:`CriticChoice.describe`) and returned as a
record (:meth:`CriticChoice.record`) for the run's tuned checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlmusic.critics.io import DEFAULT_NAME, read_critic_record
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards.base import RewardError

log = logging.getLogger(__name__)

AUTO = "auto"
SHIPPED = "pretrained:discriminator"
CRITICS_DIR = "critics"  # under data.cache_dir
SETTINGS_KEY = "auto"  # reward.extra.<term>.auto: {steps, windows, samples}: AutoCriticSettings
KEY_VERSION = 1  # bump when what an auto critic trains on changes: every cached one retrains
# the data keys that choose which tunes a corpus holds, as the shipped critic was built
# (scripts/build_discriminator.sh: data=all at conf/data/all.yaml's defaults)
SHIPPED_DATA = {"path": None, "limit": None, "min_notes": 8}


@dataclass(frozen=True)
class AutoCriticSettings:
    """How an ``auto`` critic trains (the rest is conf/critic/discriminator.yaml).

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
    length: int = 32  # steps per window and sample, as the shipped critic's: it scores every
    # prefix, so like the shipped one it serves a run of any length
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


@dataclass
class TrainRequest:
    """What a ``train`` callback trains: a discriminator on ``corpus``'s train split against
    ``start``'s samples, written as a train-critic run folder into ``out``."""

    data: dict[str, Any]  # the data config (its seed: the split the corpus carries)
    corpus: Any  # rlmusic.data.corpus.Corpus, already prepared
    start: str  # the generator spec whose samples are the generated side
    encoding: MelodyEncoding
    settings: AutoCriticSettings
    out: Path
    device: str


Trainer = Callable[[TrainRequest], Mapping[str, Any]]  # -> train-critic's result (wall_s, ...)


@dataclass
class CriticChoice:
    """Which critic a discriminator term uses, and why.

    Attributes:
        term: the reward.extra name (``realism``).
        checkpoint: the spec the term loads.
        source: ``shipped`` | ``cached`` | ``trained`` | ``given`` (an explicit checkpoint).
        reason: why (for the log line).
        key: the cache key (cached / trained).
        metrics: the critic's validation figures (from its record).
        trained: what it was trained on and against (from its record).
        data: the data it follows (``all``, ``midi_dir:/folder``).
        wall_s: training time (trained only).
    """

    term: str
    checkpoint: str
    source: str
    reason: str = ""
    key: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    trained: dict[str, Any] = field(default_factory=dict)
    data: str | None = None
    wall_s: float | None = None

    def describe(self) -> str:
        """One log line: which critic, why, and how well it tells real from generated."""
        what = {
            "shipped": "the shipped",
            "cached": "cached",
            "trained": f"freshly trained ({self.wall_s:.1f} s)" if self.wall_s else "trained",
            "given": "as given",
        }[self.source]
        figures = ", ".join(
            f"{name} {self.metrics[name]:.3f}"
            for name in ("accuracy", "auc")
            if isinstance(self.metrics.get(name), (int, float))
        )
        against = ", ".join(self.trained.get("fake", {}).get("generators") or []) or "?"
        data = self.data or self.trained.get("real", {}).get("data", "?")
        return (
            f"reward.extra.{self.term}: {what} discriminator {self.checkpoint} (data={data} "
            f"against {against}; validation {figures or 'figures unknown'}){self.reason}"
        )

    def record(self) -> dict[str, Any]:
        """JSON-safe, for the tuned checkpoint's ``info["critics"]``."""
        keep = ("accuracy", "auc", "balanced_accuracy", "n_valid_real", "n_valid_fake", "steps")
        return {
            "checkpoint": self.checkpoint,
            "source": self.source,
            "key": self.key,
            "data": self.data or self.trained.get("real", {}).get("data"),
            "against": self.trained.get("fake", {}).get("generators"),
            "metrics": {k: self.metrics[k] for k in keep if k in self.metrics},
            "wall_s": self.wall_s,
        }


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


def cache_key(
    train_tunes: str, start: str, encoding: MelodyEncoding, settings: AutoCriticSettings
) -> str:
    """The cache key of an auto critic: what it trains on, against, and how."""
    blob = {
        "version": KEY_VERSION,
        "train_tunes": train_tunes,
        "start": start,
        "encoding": asdict(encoding),
        "settings": asdict(settings),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def critics_dir(data: Mapping[str, Any]) -> Path:
    """Where auto critics are cached: ``<data.cache_dir>/critics``."""
    base = data.get("cache_dir") or Path.home() / ".cache" / "rlmusic"
    return Path(str(base)).expanduser() / CRITICS_DIR


def shipped_fits(data: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether ``data`` is the corpus the shipped discriminator was trained on, and why not."""
    record = read_critic_record(SHIPPED, "discriminator")
    corpus = str(record.get("trained", {}).get("real", {}).get("data"))
    source = str(data.get("source", "all"))
    if source != corpus:
        return False, f"data={source}, the shipped critic learnt data={corpus}"
    for key, value in SHIPPED_DATA.items():
        if data.get(key, value) != value:
            return False, f"data.{key}={data.get(key)}, the shipped critic read {key}={value}"
    return True, ""


# ---- training ----------------------------------------------------------------------------------
def train_critic_config(request: TrainRequest) -> Any:
    """The ``rlmusic train-critic critic=discriminator`` config that trains ``request``:
    conf/critic/discriminator.yaml with the start model as the generated side and the
    :class:`AutoCriticSettings`, a fixed step count (no time cap)."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    s = request.settings
    critic = OmegaConf.load(str(files("rlmusic.conf") / "critic" / "discriminator.yaml"))
    critic.real.windows = s.windows
    critic.fake.generators = [request.start]
    critic.fake.n = s.samples
    critic.train.steps = s.steps
    critic.train.time_s = None  # steps, not seconds: the same weights on any machine
    return OmegaConf.create(
        {
            "encoding": asdict(request.encoding),
            "data": dict(request.data),
            "critic": critic,
            "seed": s.seed,
            "device": request.device,
            "threads": None,  # the caller's torch threads
            "length": s.length,
            "out": str(request.out),
            "progress": False,
        }
    )


def _complete(folder: Path) -> bool:
    """A cached critic that reads back (a damaged one is trained again, not trusted)."""
    if not (folder / DEFAULT_NAME).is_file():
        return False
    try:
        read_critic_record(folder, "discriminator")
        return True
    except Exception as exc:  # CheckpointError and whatever a torn file raises
        log.warning("cached critic %s does not read back (%s); training it again", folder, exc)
        return False


def _train_into(folder: Path, request: TrainRequest, train: Trainer) -> float:
    """Train into a scratch folder beside ``folder``, then rename it into place: an interrupted
    run never leaves half a critic, and of two runs training the same one the first to finish
    wins (the other's is dropped)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        request.out = scratch
        result = train(request)
        _rename_inside(scratch, folder)
        if folder.exists() and not _complete(folder):
            shutil.rmtree(folder)  # a damaged earlier one
        try:
            os.rename(scratch, folder)
        except OSError:  # another process put the same critic there first
            if not _complete(folder):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return float(result.get("wall_s", float("nan")))


def _rename_inside(scratch: Path, folder: Path) -> None:
    """The run folder's own records name the folder it will live in, not the scratch one."""
    for name in ("metrics.json", "config.yaml"):
        path = scratch / name
        if path.is_file():
            path.write_text(path.read_text().replace(str(scratch), str(folder)))


# ---- resolution --------------------------------------------------------------------------------
def _choice_from(term: str, checkpoint: str, source: str, **extra: Any) -> CriticChoice:
    record = read_critic_record(checkpoint, "discriminator")
    return CriticChoice(
        term,
        checkpoint,
        source,
        metrics=dict(record.get("metrics") or {}),
        trained=dict(record.get("trained") or {}),
        **extra,
    )


def describe_data(data: Mapping[str, Any]) -> str:
    """``all``, ``essen``, ``midi_dir:/folder``."""
    source = str(data.get("source", "all"))
    return f"{source}:{data.get('path')}" if data.get("path") else source


def resolve_discriminator(
    term: str,
    data: Mapping[str, Any],
    start: str | None,
    settings: AutoCriticSettings | None = None,
    device: str = "cpu",
    train: Trainer | None = None,
) -> CriticChoice:
    """The critic ``checkpoint: auto`` means for ``data`` and the start model ``start``.

    Args:
        term: the reward.extra name (for messages and the record).
        data: the data config (``source``, ``path``, ``seed`` (the split), ``cache_dir``, ...).
        start: the start model's spec: the generated side of a trained critic (the corpus is
            read in its encoding); needed unless the shipped critic fits.
        settings: how a critic trains (None: :class:`AutoCriticSettings`'s defaults).
        device: where it trains.
        train: trains a missing critic; None makes a missing one an error.

    Raises:
        RewardError: no start model to train against, or no critic for this data and start
            model yet and no ``train``.
    """
    fits, why = shipped_fits(data)
    if fits:
        return _choice_from(
            term, SHIPPED, "shipped", reason=" -- it learnt this data", data=describe_data(data)
        )
    from rlmusic.data.prepare import prepare_corpus
    from rlmusic.models import load_generator

    if start is None:
        raise RewardError(
            f"reward.extra.{term}.checkpoint=auto on data={describe_data(data)} needs the start "
            "model (the generated side of a critic trained on the data); give start_checkpoint"
        )
    if start.startswith("pretrained:"):
        log.warning(
            "the start model %s learnt the shipped corpus, not data=%s: for music like your "
            "data, pretrain on it first (rlmusic pretrain data=... , then checkpoint=<that run>)",
            start, describe_data(data),
        )  # fmt: skip
    settings = settings or AutoCriticSettings()
    generator, encoding = load_generator(start)
    corpus = prepare_corpus(data, encoding, progress=False)
    tunes = corpus.tunes("train")
    if not tunes:
        raise RewardError(f"reward.extra.{term}: the data's train split is empty")
    key = cache_key(tunes_identity(tunes), model_identity(generator), encoding, settings)
    folder = critics_dir(data) / key
    reason, where = f" -- {why}", describe_data(data)
    if _complete(folder):
        return _choice_from(
            term, str(folder / DEFAULT_NAME), "cached", reason=reason, key=key, data=where
        )
    if train is None:
        raise RewardError(
            f"reward.extra.{term}.checkpoint=auto: no discriminator trained on data={where} "
            f"against {start} yet ({why}). "
            f"`rlmusic finetune checkpoint={start}` with this data trains and caches one "
            f"({folder}); or name a critic: reward.extra.{term}.checkpoint=<file or "
            "train-critic run folder>"
        )
    log.info(
        "reward.extra.%s: training a discriminator on %d train tunes of data=%s against %s "
        "(%d steps; cached as %s)",
        term, len(tunes), where, start, settings.steps, folder,
    )  # fmt: skip
    request = TrainRequest(dict(data), corpus, start, encoding, settings, folder, device)
    wall = _train_into(folder, request, train)
    return _choice_from(
        term, str(folder / DEFAULT_NAME), "trained", reason=reason, key=key, data=where, wall_s=wall
    )


def resolve_auto_critics(
    reward_cfg: Mapping[str, Any],
    data: Mapping[str, Any] | None,
    start: str | None,
    device: str = "cpu",
    train: Trainer | None = None,
) -> tuple[dict[str, Any], list[CriticChoice]]:
    """Every discriminator term of ``reward_cfg.extra``, its checkpoint made concrete.

    Returns:
        A copy of ``reward_cfg`` whose ``auto`` checkpoints are paths or specs (and without the
        terms' ``auto`` settings), and one :class:`CriticChoice` per discriminator term, each
        logged.
    """
    cfg = copy.deepcopy(dict(reward_cfg))
    choices = []
    for name, spec in (cfg.get("extra") or {}).items():
        if not isinstance(spec, dict) or spec.get("name") != "discriminator":
            continue
        settings = spec.pop(SETTINGS_KEY, None)
        checkpoint = spec.get("checkpoint")
        if checkpoint != AUTO:
            if settings is not None:
                log.warning(
                    "reward.extra.%s.%s is ignored: the checkpoint is given (%s)",
                    name, SETTINGS_KEY, checkpoint,
                )  # fmt: skip
            if checkpoint:  # a missing or foreign file fails here, by name
                choice = _choice_from(name, str(checkpoint), "given")
                log.info("%s", choice.describe())
                choices.append(choice)
            continue
        if data is None:
            choice = _choice_from(name, SHIPPED, "shipped", reason=" -- no data config given")
            log.warning(
                "%s: checkpoint=auto follows the data, and none was given here; pass data "
                "(build_reward(..., data=cfg.data)) or name a critic",
                choice.describe(),
            )
        else:
            choice = resolve_discriminator(
                name,
                data,
                start,
                AutoCriticSettings.from_spec(settings),
                device,
                train,
            )
            log.info("%s", choice.describe())
        spec["checkpoint"] = choice.checkpoint
        choices.append(choice)
    return cfg, choices
