"""The supervised (MLE) training loop: AdamW, warmup + cosine decay, clipping, exact resume.

One optimizer step reads top to bottom in :meth:`Pretrainer.train_step`; :meth:`Pretrainer.fit`
runs epochs of windows (see :mod:`rlmusic.pretraining.windows`), validates after each, and keeps
``last.pt`` (resume state, every epoch and every ``checkpoint_every_steps``), ``best.pt`` (best
validation NLL) and finally ``model.safetensors`` (the best weights) in the output directory.

Exact resume: the data order is a function of (seed, epoch), and ``last.pt`` holds the model,
optimizer, scheduler, step, position in the epoch and every process's RNG state; running the
same command again after a crash ends with the same weights as an uninterrupted run (on CPU).
Under DDP every process takes a slice of each global batch, and the loss is scaled so that the
averaged gradient is the global per-token mean: N processes train like one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rlmusic.data.encodings import Encoding
from rlmusic.models.checkpoint import CheckpointError, atomic_torch_save, generator_record
from rlmusic.pretraining.config import TrainConfig
from rlmusic.pretraining.distributed import DistInfo, all_reduce_sum
from rlmusic.pretraining.logs import MetricsLog
from rlmusic.pretraining.optim import lr_factor, make_optimizer
from rlmusic.pretraining.state import capture_rng, load_train_state, restore_rng, save_train_state
from rlmusic.pretraining.validation import nll_metrics, window_sums
from rlmusic.pretraining.windows import (
    IGNORE,
    BatchFn,
    check_window,
    epoch_windows,
    iter_batches,
    make_batch,
    steps_per_epoch,
    transpose_windows,
    valid_windows,
    window_alignment,
    with_bos_np,
)
from rlmusic.runtime import choose_autocast

__all__ = ["Pretrainer", "TrainConfig"]  # TrainConfig lives in rlmusic.pretraining.config

log = logging.getLogger(__name__)


class Pretrainer:
    """Trains one generator on tunes; see the module docstring for the files it keeps.

    Args:
        model: a fresh generator (its weights are replaced on resume).
        encoding: the token grid, saved with every checkpoint.
        train_tunes, valid_tunes: token arrays of whole tunes.
        cfg: optimisation and checkpoint settings.
        out_dir: where checkpoints and logs go (the same directory resumes).
        seed: data order (with the epoch) and, already applied by the caller, init/dropout.
        info: this process's rank, world size and device.
        run_config: the task config as plain values, stored with ``last.pt``.
        compile: wrap the model in ``torch.compile`` for training.
        progress: show a progress bar (main process only).
        resume: continue from ``out_dir/last.pt`` when it exists.
        on_checkpoint: called with the step after every ``last.pt`` write (tests simulate
            crashes with it).
        init: the checkpoint ``model``'s weights came from (``pretrained:<name>`` or a path),
            recorded in every checkpoint's ``info["init"]``; None: trained from scratch. A run
            directory resumes only a run that started from the same ``init``.
    """

    def __init__(
        self,
        model: nn.Module,
        encoding: Encoding,
        train_tunes: Sequence[np.ndarray],
        valid_tunes: Sequence[np.ndarray],
        cfg: TrainConfig,
        out_dir: Path,
        seed: int,
        info: DistInfo,
        run_config: dict[str, Any] | None = None,
        compile: bool = False,
        progress: bool = True,
        resume: bool = True,
        on_checkpoint: Callable[[int], None] | None = None,
        init: str | None = None,
    ) -> None:
        if cfg.batch_size % info.world_size:
            raise ValueError(
                f"train.batch_size={cfg.batch_size} must be a multiple of the "
                f"{info.world_size} processes"
            )
        self.cfg, self.info, self.seed = cfg, info, seed
        self.encoding = encoding
        check_window(cfg.window, encoding)
        if cfg.transpose < 0:
            raise ValueError(f"train.transpose={cfg.transpose} must be >= 0 (semitones; 0 = off)")
        # chorale windows start on bar lines; a melody's anywhere (rlmusic.pretraining.windows)
        self.align = window_alignment(encoding)
        self.out_dir = Path(out_dir)
        self.run_config = run_config or {}
        self.progress = progress and info.is_main
        self.on_checkpoint = on_checkpoint
        self.init = init
        self.model = model.to(info.device)  # the plain module: checkpoints, evaluation
        self.vocab_size = model.vocab_size
        self.train_seqs = with_bos_np(train_tunes, model.bos_token)
        self.valid_seqs = with_bos_np(valid_tunes, model.bos_token)
        self.train_lengths = [len(s) - 1 for s in self.train_seqs]
        self.steps_per_epoch = steps_per_epoch(
            self.train_lengths, cfg.window, cfg.batch_size, self.align
        )
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"{len(train_tunes)} train tunes make fewer windows than one batch of "
                f"{cfg.batch_size}: lower train.batch_size"
            )
        self.total_steps = total = cfg.max_steps or cfg.epochs * self.steps_per_epoch
        self.optimizer = make_optimizer(self.model, cfg)
        # the schedule closes over numbers, not self: no reference cycle keeps the trainer (and
        # its DDP wrapper, which holds the process group) alive until a garbage collection
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(s, cfg.warmup_steps, total, cfg.min_lr_ratio),
        )
        # progress, all saved in last.pt
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best_valid = math.inf
        self.train_tokens = 0
        self.train_seconds = 0.0
        self.last_metrics: dict[str, float] = {}
        if resume and (self.out_dir / "last.pt").exists():
            self._resume(self.out_dir / "last.pt")
        self.train_model: nn.Module = self.model
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [info.device.index] if info.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.model, device_ids=ids)
        if compile:
            self.train_model = torch.compile(self.train_model)
        self.autocast = choose_autocast(info.device)  # bf16 on GPUs that have it; CPU fp32
        self.logs = MetricsLog(self.out_dir, info.is_main, resume_step=self.step)

    def close(self) -> None:
        """Drop the DDP wrapper (it holds the process group) and close the logs.

        Call it before :func:`rlmusic.pretraining.distributed.teardown`; the trainer still
        checkpoints and evaluates on the plain module afterwards, it no longer trains.
        """
        self.train_model = self.model
        self.logs.close()

    # ---- resume ---------------------------------------------------------------------------------
    def _progress(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best_valid": self.best_valid,
            "train_tokens": self.train_tokens,
            "train_seconds": self.train_seconds,
            "last_metrics": self.last_metrics,
        }

    def _resume(self, path: Path) -> None:
        state = load_train_state(path)
        saved = state["generator"]
        mine = generator_record(self.model, self.encoding)
        for key in ("arch", "config", "encoding"):
            if saved.get(key) != mine[key]:
                raise CheckpointError(
                    f"{path}: cannot resume: the run there has {key} {saved.get(key)}, this "
                    f"command asks for {mine[key]}; use another out_dir or resume=never"
                )
        started_from = (saved.get("info") or {}).get("init")
        if started_from != self.init:
            raise CheckpointError(
                f"{path}: cannot resume: the run there started from init={started_from}, this "
                f"command from init={self.init}; use another out_dir or resume=never"
            )
        self.model.load_state_dict(saved["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for key, value in state["progress"].items():
            setattr(self, key, value)
        if not restore_rng(state["rng"], self.info):
            log.warning(
                "%s was written by %d processes, this run has %d: dropout RNG streams restart",
                path,
                len(state["rng"].get("cpu", [])),
                self.info.world_size,
            )
        if self.info.is_main:
            log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.step)

    def _checkpoint_info(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "train_tokens": self.train_tokens,
            "train_seconds": round(self.train_seconds, 1),
            "window": self.cfg.window,
            **({"init": self.init} if self.init else {}),
            **{k: v for k, v in self.last_metrics.items() if isinstance(v, float | int)},
        }

    def save_last(self) -> None:
        rng = capture_rng(self.info)  # collective: every process takes part
        if self.info.is_main:
            save_train_state(
                self.out_dir / "last.pt",
                self.model,
                self.encoding,
                self.optimizer,
                self.scheduler,
                self._progress(),
                rng,
                self.run_config,
                self._checkpoint_info(),
            )
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.step)

    # ---- one step, one evaluation ------------------------------------------------------------
    def layout(self, seqs: Sequence[np.ndarray]) -> BatchFn | None:
        """How ``rows`` of (tune, offset) of ``seqs`` become (inputs, targets); None: the
        windows as read. A conditioned generator's trainer (a harmoniser) lays them out its
        own way, for training and validation alike."""
        return None

    def make_batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training inputs and targets for ``rows`` of (tune, offset)."""
        batch_fn = self.layout(self.train_seqs)
        return batch_fn(rows) if batch_fn else make_batch(self.train_seqs, rows, self.cfg.window)

    def train_step(self, rows: np.ndarray, batch: int = 0) -> tuple[float, int]:
        """One optimizer step on a global batch of windows -> (this process's NLL sum, tokens).

        ``batch`` (the batch's index in its epoch) seeds the transposition augmentation."""
        inputs, targets = self.make_batch(rows)  # (B, L) each
        if self.cfg.transpose:
            draws = np.random.default_rng([self.seed, self.epoch, batch, 1]).random(len(rows))
            transpose_windows(
                inputs,
                targets,
                draws,
                self.cfg.transpose,
                self.encoding.FIRST_PITCH_TOKEN,
                self.vocab_size,
                self.encoding.voice_size,
            )
        global_tokens = int((targets != IGNORE).sum())
        rank, world = self.info.rank, self.info.world_size
        x = torch.from_numpy(inputs[rank::world]).to(self.info.device)
        y = torch.from_numpy(targets[rank::world]).to(self.info.device)
        self.train_model.train()
        with self.autocast():
            logits = self.train_model(x)  # (b, L, V)
        nll_sum = F.cross_entropy(
            logits.float().reshape(-1, self.vocab_size),
            y.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        # DDP averages gradients over processes; scaling by world / global tokens turns that
        # average into the per-token mean of the whole global batch
        loss = nll_sum * world / max(1, global_tokens)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.train_tokens += global_tokens
        return nll_sum.item(), int((y != IGNORE).sum())

    def evaluate(self) -> dict[str, float]:
        """Validation NLL per token (nats), perplexity and next-token accuracy, all processes."""
        lengths = [len(s) - 1 for s in self.valid_seqs]
        rows = valid_windows(lengths, self.cfg.window)[self.info.rank :: self.info.world_size]
        sums = window_sums(
            self.model,
            self.valid_seqs,
            rows,
            self.cfg.window,
            self.cfg.valid_batch_size,
            self.info.device,
            self.layout(self.valid_seqs),
        )
        return nll_metrics(*all_reduce_sum(list(sums), self.info))

    # ---- the loop --------------------------------------------------------------------------------
    def done(self) -> bool:
        return self.step >= self.total_steps or self.epoch >= self.cfg.epochs

    def fit(self) -> dict[str, float]:
        """Train until ``epochs`` (or ``max_steps``); returns the last validation metrics."""
        from tqdm import tqdm

        while not self.done():
            rows = epoch_windows(
                self.train_lengths, self.cfg.window, self.seed, self.epoch, self.align
            )
            batches = list(iter_batches(rows, self.cfg.batch_size, drop_last=True))
            bar = tqdm(
                total=len(batches),
                initial=self.batch_in_epoch,
                desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
                unit="step",
                disable=not self.progress,
                dynamic_ncols=True,
            )
            nll_sum, tokens = 0.0, 0
            started = epoch_started = time.perf_counter()
            epoch_tokens_before = self.train_tokens
            for b in range(self.batch_in_epoch, len(batches)):
                step_nll, step_tokens = self.train_step(batches[b], b)
                self.batch_in_epoch = b + 1
                nll_sum, tokens = nll_sum + step_nll, tokens + step_tokens
                bar.update()
                if self.cfg.log_every_steps and self.step % self.cfg.log_every_steps == 0:
                    bar.set_postfix(nll=f"{step_nll / max(1, step_tokens):.3f}")
                    self.logs.scalars(
                        {
                            "losses/train_nll": step_nll / max(1, step_tokens),
                            "charts/lr": self.scheduler.get_last_lr()[0],
                        },
                        self.step,
                    )
                if self.step >= self.total_steps:
                    break
                if (
                    self.cfg.checkpoint_every_steps
                    and self.step % self.cfg.checkpoint_every_steps == 0
                ):
                    self.train_seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save_last()
            bar.close()
            self.train_seconds += time.perf_counter() - started
            self._end_of_epoch(
                nll_sum,
                tokens,
                complete=self.batch_in_epoch >= len(batches),
                new_tokens=self.train_tokens - epoch_tokens_before,
                elapsed=time.perf_counter() - epoch_started,
            )
        self._export()
        self.logs.close()
        return self.last_metrics

    def _end_of_epoch(
        self, nll_sum: float, tokens: int, complete: bool, new_tokens: int, elapsed: float
    ) -> None:
        nll_sum, tokens = all_reduce_sum([nll_sum, float(tokens)], self.info)
        metrics = self.evaluate()
        metrics.update(
            train_nll=nll_sum / max(1.0, tokens),
            tokens_per_s=new_tokens / max(elapsed, 1e-9),
            lr=self.scheduler.get_last_lr()[0],
        )
        if complete:
            self.epoch += 1
            self.batch_in_epoch = 0
        self.last_metrics = {k: float(v) for k, v in metrics.items()}
        if self.info.is_main:
            log.info(
                "epoch %d step %d: train nll %.4f, valid nll %.4f (ppl %.3f, acc %.3f), %.0f tokens/s",
                self.epoch,
                self.step,
                metrics["train_nll"],
                metrics["valid_nll"],
                metrics["valid_ppl"],
                metrics["valid_acc"],
                metrics["tokens_per_s"],
            )
            self.logs.scalars(
                {
                    "valid/nll_per_token": metrics["valid_nll"],
                    "valid/perplexity": metrics["valid_ppl"],
                    "valid/accuracy": metrics["valid_acc"],
                    "losses/train_nll_epoch": metrics["train_nll"],
                    "charts/tokens_per_s": metrics["tokens_per_s"],
                },
                self.step,
            )
            self.logs.epoch_row(
                {
                    **metrics,
                    "epoch": self.epoch,
                    "step": self.step,
                    "train_tokens": self.train_tokens,
                    "train_seconds": round(self.train_seconds, 2),
                }
            )
        valid = metrics["valid_nll"]
        # no validation split: the latest weights count as the best
        improved = math.isnan(valid) or valid < self.best_valid
        if improved:
            self.best_valid = valid if not math.isnan(valid) else self.best_valid
            if self.info.is_main:
                atomic_torch_save(
                    generator_record(self.model, self.encoding, self._checkpoint_info()),
                    self.out_dir / "best.pt",
                )
        if self.info.is_main and complete and self.cfg.keep_epoch_checkpoints:
            atomic_torch_save(
                generator_record(self.model, self.encoding, self._checkpoint_info()),
                self.out_dir / f"epoch_{self.epoch:03d}.pt",
            )
        self.save_last()  # last: a crash after this point resumes with best.pt already written

    def _export(self) -> None:
        """``model.safetensors``: the best weights with their metrics, for sampling and RL."""
        if not self.info.is_main or not (self.out_dir / "best.pt").exists():
            return
        from rlmusic.models.checkpoint import load_checkpoint, save_checkpoint

        best, encoding, info = load_checkpoint(self.out_dir / "best.pt")
        save_checkpoint(self.out_dir / "model.safetensors", best, encoding, info)
