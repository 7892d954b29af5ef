"""`rlmusic pretrain`: supervised (MLE) pretraining of a NoteLSTM or MusicTransformer.

``run(cfg)`` prepares the corpus (or loads its cache), builds the model from ``cfg.model``,
and trains it with :class:`rlmusic.training.loop.Pretrainer`. The run directory keeps
``last.pt`` (resume), ``best.pt`` (best validation NLL), ``model.safetensors`` (the best
weights, what ``checkpoint=`` and ``rlmusic sample`` take), ``metrics.csv`` and ``tb/``.
Re-running the same command resumes; torchrun runs it data-parallel.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from rlmusic.data.corpus import Corpus
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.models.checkpoint import build_model
from rlmusic.runtime import run_folder
from rlmusic.training import distributed
from rlmusic.training.config import TrainConfig
from rlmusic.training.loop import Pretrainer

log = logging.getLogger(__name__)

MODEL_META_KEYS = ("name", "arch")  # model-node keys that are not config fields


def model_from_cfg(model_cfg: DictConfig | dict, encoding: MelodyEncoding) -> torch.nn.Module:
    """The ``model`` node of a config (``arch`` + its config fields) -> a fresh generator."""
    node = (
        OmegaConf.to_container(model_cfg, resolve=True)
        if isinstance(model_cfg, DictConfig)
        else dict(model_cfg)
    )
    fields_ = {k: v for k, v in node.items() if k not in MODEL_META_KEYS}
    fields_["vocab_size"] = encoding.vocab_size
    return build_model(str(node.get("arch")), fields_, where=f"model={node.get('name', '?')}")


def train_config(cfg: DictConfig) -> TrainConfig:
    node = OmegaConf.to_container(cfg.train, resolve=True)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(node) - known)
    if unknown:
        raise ValueError(
            f"train has no field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return TrainConfig(**node)


def output_dir(cfg: DictConfig) -> Path:
    """``cfg.out_dir``, else Hydra's run directory, else outputs/pretrain/<model>."""
    return run_folder(
        cfg.get("out_dir"),
        fallback=Path("outputs/pretrain") / str(cfg.model.get("name", cfg.model.arch)),
    )


def load_corpus(cfg: DictConfig, encoding: MelodyEncoding, info: distributed.DistInfo) -> Corpus:
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
    from rlmusic.data.encoding import encoding_from_cfg

    if cfg.resume not in ("auto", "never"):
        raise ValueError(f"resume={cfg.resume!r}; known: auto, never")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    info = distributed.setup(str(cfg.device))
    trainer: Pretrainer | None = None
    try:
        encoding = encoding_from_cfg(cfg.encoding)
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
        model = model_from_cfg(cfg.model, encoding)
        # then one dropout stream per process (rank 0's is the single-process one)
        if info.rank:
            torch.manual_seed(seed + 1_000_003 * info.rank)
        trainer = Pretrainer(
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
