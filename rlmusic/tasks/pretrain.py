"""`rlmusic pretrain`: supervised (MLE) pretraining of a NoteLSTM or MusicTransformer.

``run(cfg)`` prepares the corpus (or loads its cache), builds the model from ``cfg.model``,
and trains it with :class:`rlmusic.pretraining.loop.Pretrainer`. The run directory keeps
``last.pt`` (resume), ``best.pt`` (best validation NLL), ``model.safetensors`` (the best
weights, what ``checkpoint=`` and ``rlmusic sample`` take), ``metrics.csv`` and ``tb/``.
Re-running the same command resumes; torchrun runs it data-parallel.

``init=<checkpoint>`` (``pretrained:<name>``, a file or a run directory) starts from that
checkpoint's weights instead: supervised fine-tuning on the configured corpus. The model then
defaults to the checkpoint's architecture and sizes (:func:`model_from_init`), training takes
``train.init_lr`` and ``train.init_warmup_steps`` (:meth:`TrainConfig.for_init`), and every
saved checkpoint records the spec in ``info["init"]``.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from rlmusic.config import ConfigError
from rlmusic.data.corpus import Corpus
from rlmusic.data.encodings import Encoding
from rlmusic.models.checkpoint import (
    CheckpointError,
    build_model,
    generator_config,
    load_checkpoint,
)
from rlmusic.models.policy import POLICY_KEY, PRETRAINED_PREFIX, portable_spec
from rlmusic.pretraining import distributed
from rlmusic.pretraining.config import TrainConfig
from rlmusic.pretraining.loop import Pretrainer
from rlmusic.runtime import run_folder

log = logging.getLogger(__name__)

MODEL_META_KEYS = ("name", "arch")  # model-node keys that are not config fields


def model_from_cfg(model_cfg: DictConfig | dict, encoding: Encoding) -> torch.nn.Module:
    """The ``model`` node of a config (``arch`` + its config fields) -> a fresh generator."""
    node = (
        OmegaConf.to_container(model_cfg, resolve=True)
        if isinstance(model_cfg, DictConfig)
        else dict(model_cfg)
    )
    fields_ = {k: v for k, v in node.items() if k not in MODEL_META_KEYS}
    fields_["vocab_size"] = encoding.vocab_size
    return build_model(str(node.get("arch")), fields_, where=f"model={node.get('name', '?')}")


# model fields a fine-tuning run may set to other values than its checkpoint's: no weight
# depends on them (every other field -- the architecture and its sizes -- must match)
TUNABLE_MODEL_FIELDS = ("dropout",)


def _model_group_file(arch: str) -> dict[str, Any]:
    """conf/model/<arch>.yaml as plain values ({} when there is none)."""
    import rlmusic.conf

    path = Path(rlmusic.conf.__file__).parent / "model" / f"{arch}.yaml"
    return dict(OmegaConf.to_container(OmegaConf.load(path))) if path.is_file() else {}


def _default_model_arch() -> str:
    """The model group conf/pretrain.yaml's defaults list picks (``model: lstm``)."""
    import rlmusic.conf

    node = OmegaConf.load(Path(rlmusic.conf.__file__).parent / "pretrain.yaml")
    for entry in node.get("defaults", []):
        if isinstance(entry, DictConfig) and "model" in entry:
            return str(entry["model"])
    return "lstm"


def _command_line_model_keys() -> tuple[bool, set[str]]:
    """Under Hydra: whether the command line chose ``model=``, and the ``model.<key>`` it set."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False, set()
    chose_arch, keys = False, set()
    for override in HydraConfig.get().overrides.task:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "model":
            chose_arch = True
        elif key.startswith("model."):
            keys.add(key.split(".")[1])
    return chose_arch, keys


def chosen_model_fields(model_cfg: DictConfig | dict) -> tuple[bool, set[str]]:
    """What of ``model`` the user chose rather than left at its defaults: (the architecture?,
    the fields).

    A field counts as chosen where it differs from its group file (conf/model/<arch>.yaml: an
    override, an experiment) or the command line sets it; the architecture where it is not the
    default group's, or the command line names a ``model=`` group.
    """
    node = (
        OmegaConf.to_container(model_cfg, resolve=True)
        if isinstance(model_cfg, DictConfig)
        else dict(model_cfg)
    )
    arch = str(node.get("arch"))
    group = _model_group_file(arch)
    fields_ = {k for k, v in node.items() if k not in MODEL_META_KEYS and group.get(k) != v}
    chose_arch, typed = _command_line_model_keys()
    return chose_arch or arch != _default_model_arch(), fields_ | (typed - set(MODEL_META_KEYS))


def init_path(spec: str) -> Path:
    """The checkpoint file or run directory ``init=`` names (``pretrained:<name>`` included)."""
    if spec.startswith(PRETRAINED_PREFIX):
        from rlmusic.models.registry import pretrained_path

        return pretrained_path(spec[len(PRETRAINED_PREFIX) :])
    return Path(spec).expanduser()


def model_from_init(
    spec: str, model_cfg: DictConfig | dict, encoding: Encoding
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The generator ``init=spec`` holds, checked against the config -> (model, its model node).

    The model defaults to the checkpoint's: its architecture and sizes need not be repeated.
    What the user chose (:func:`chosen_model_fields`) must match it, except the fields in
    :data:`TUNABLE_MODEL_FIELDS` (dropout), which the fine-tuning run may change.

    Raises:
        ConfigError: another architecture, size or token encoding than the checkpoint's (one
            line naming both values), or a checkpoint that holds an RL policy, not a generator.
        CheckpointError: an unreadable checkpoint or unknown pretrained name.
    """
    try:
        checkpoint, saved_encoding, info = load_checkpoint(init_path(spec))
    except CheckpointError as exc:
        where = "init" if spec in str(exc) else f"init={spec}"  # the message names the file
        raise CheckpointError(f"{where}: {exc}") from None
    if info.get(POLICY_KEY):
        raise ConfigError(
            f"init={spec} holds a {info[POLICY_KEY].get('kind', '?')}-learning policy, not a "
            "generator's softmax; start from its prior or from a generator checkpoint"
        )
    if saved_encoding != encoding:
        diff = [
            f"{k}={v} (the config: {getattr(encoding, k)})"
            for k, v in asdict(saved_encoding).items()
            if getattr(encoding, k) != v
        ]
        raise ConfigError(f"init={spec} was trained on another encoding: {', '.join(diff)}")
    node = (
        OmegaConf.to_container(model_cfg, resolve=True)
        if isinstance(model_cfg, DictConfig)
        else dict(model_cfg)
    )
    chose_arch, chosen = chosen_model_fields(model_cfg)
    saved_config = {k: v for k, v in generator_config(checkpoint).items() if k != "vocab_size"}
    if chose_arch and node.get("arch") != checkpoint.arch:
        raise ConfigError(
            f"init={spec} holds model={checkpoint.arch}, the config asks for "
            f"model={node.get('arch')}; drop model= (init sets the model) or start from scratch"
        )
    for key in sorted(chosen - set(TUNABLE_MODEL_FIELDS)):
        if key in saved_config and node.get(key) != saved_config[key]:
            raise ConfigError(
                f"init={spec} holds model={checkpoint.arch} with {key}={saved_config[key]}, "
                f"the config asks for model.{key}={node.get(key)}; drop the override (init sets "
                "the model's sizes) or start from scratch"
            )
    config = {**saved_config, **{k: node[k] for k in TUNABLE_MODEL_FIELDS if k in chosen}}
    model = build_model(checkpoint.arch, {**config, "vocab_size": encoding.vocab_size}, where=spec)
    model.load_state_dict(checkpoint.state_dict())
    if node.get("arch") == checkpoint.arch:
        name = node.get("name", checkpoint.arch)
    else:
        name = _model_group_file(checkpoint.arch).get("name", checkpoint.arch)
    return model, {"name": name, "arch": checkpoint.arch, **config}


def train_config(cfg: DictConfig) -> TrainConfig:
    node = OmegaConf.to_container(cfg.train, resolve=True)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(node) - known)
    if unknown:
        raise ValueError(
            f"train has no field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    train = TrainConfig(**node)
    return train.for_init() if cfg.get("init") else train


def pretrainer_class(condition: str | None, encoding: Encoding) -> type[Pretrainer]:
    """The trainer for ``condition``: None (a generator) or ``soprano`` (a harmoniser: it
    reads the whole soprano, then writes alto, tenor and bass; chorale encoding only)."""
    if condition is None:
        return Pretrainer
    if condition != "soprano":
        raise ValueError(f"condition={condition!r}; known: null (a generator), soprano")
    if encoding.kind != "chorale":
        raise ValueError(
            f"condition=soprano trains a harmoniser: it needs data=chorales (four voices), "
            f"got the {encoding.kind} encoding"
        )
    from rlmusic.pretraining.harmoniser import HarmoniserPretrainer

    return HarmoniserPretrainer


def output_dir(cfg: DictConfig) -> Path:
    """``cfg.out_dir``, else Hydra's run directory, else outputs/pretrain/<model>."""
    return run_folder(
        cfg.get("out_dir"),
        fallback=Path("outputs/pretrain") / str(cfg.model.get("name", cfg.model.arch)),
    )


def load_corpus(cfg: DictConfig, encoding: Encoding, info: distributed.DistInfo) -> Corpus:
    """Prepare the corpus once: the main process parses and caches, the others read the cache."""
    from rlmusic.data.prepare import prepare_corpus

    progress = bool(cfg.get("progress", True))
    if info.is_main:
        corpus = prepare_corpus(cfg.data, encoding, progress=progress)
    distributed.barrier(info)
    if not info.is_main:
        corpus = prepare_corpus(cfg.data, encoding, progress=False)
    return corpus


def run(
    cfg: DictConfig,
    corpus: Corpus | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train per ``cfg`` (conf/pretrain.yaml); ``corpus`` replaces ``cfg.data`` (tests, notebooks).

    Returns:
        The last validation metrics, the best validation NLL and the run directory.
    """
    from rlmusic.data.encodings import encoding_from_cfg
    from rlmusic.pretraining.windows import check_window

    if cfg.resume not in ("auto", "never"):
        raise ValueError(f"resume={cfg.resume!r}; known: auto, never")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    info = distributed.setup(str(cfg.device))
    trainer: Pretrainer | None = None
    try:
        encoding = encoding_from_cfg(cfg.encoding)
        check_window(int(cfg.train.window), encoding)  # before any parse or init
        trainer_class = pretrainer_class(cfg.get("condition"), encoding)
        init = portable_spec(cfg.init) if cfg.get("init") else None
        initial: torch.nn.Module | None = None
        if init is not None:  # before the corpus: a mismatch is found before any parse
            initial, model_node = model_from_init(str(cfg.init), cfg.model, encoding)
            cfg = copy.deepcopy(cfg)
            with open_dict(cfg):
                cfg.model = model_node  # what the run trains, in config.yaml and last.pt
        if corpus is None:
            corpus = load_corpus(cfg, encoding, info)
        if corpus.encoding != encoding:
            raise ValueError(
                f"the corpus is encoded with {corpus.encoding}, the config asks for {encoding}"
            )
        out_dir = output_dir(cfg)
        if info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
        distributed.barrier(info)
        seed = int(cfg.seed)
        torch.manual_seed(seed)  # the same initial weights in every process
        model = initial if initial is not None else model_from_cfg(cfg.model, encoding)
        # then one dropout stream per process (rank 0's is the single-process one)
        if info.rank:
            torch.manual_seed(seed + 1_000_003 * info.rank)
        trainer = trainer_class(
            model,
            encoding,
            corpus.tunes("train"),
            corpus.tunes("valid"),
            train_config(cfg),
            out_dir,
            seed,
            info,
            run_config=OmegaConf.to_container(cfg, resolve=True),
            compile=bool(cfg.compile),
            progress=bool(cfg.progress),
            resume=cfg.resume == "auto",
            on_checkpoint=on_checkpoint,
            init=init,
        )
        if info.is_main:
            n_params = sum(p.numel() for p in model.parameters())
            log.info(
                "%s (%s, %.2fM parameters) on %s x%d: %d train / %d valid tunes, %d steps per epoch -> %s",
                cfg.model.get("name", cfg.model.arch),
                cfg.model.arch,
                n_params / 1e6,
                info.device,
                info.world_size,
                len(corpus.tunes("train")),
                len(corpus.tunes("valid")),
                trainer.steps_per_epoch,
                out_dir,
            )
            if init is not None:
                log.info(
                    "starting from init=%s: lr %g after %d warmup steps (train.init_lr, "
                    "train.init_warmup_steps), then cosine decay to %g",
                    init,
                    trainer.cfg.lr,
                    trainer.cfg.warmup_steps,
                    trainer.cfg.lr * trainer.cfg.min_lr_ratio,
                )
        metrics = trainer.fit()
        result = {
            **metrics,
            "best_valid_nll": trainer.best_valid,
            "step": trainer.step,
            "epoch": trainer.epoch,
            "train_seconds": trainer.train_seconds,
            "train_tokens": trainer.train_tokens,
            "out_dir": str(out_dir),
        }
        if info.is_main:
            (out_dir / "result.json").write_text(json.dumps(result, indent=2))
        # every rank done with its collectives before any tears the group down
        distributed.barrier(info)
        return result
    finally:
        if trainer is not None:
            trainer.close()  # its DDP wrapper holds the group: teardown must free it now
        distributed.teardown(info)
