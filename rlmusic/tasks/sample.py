"""`rlmusic sample`: draw pieces from a generator; write MIDI, MusicXML and the tokens.

``run(cfg)`` loads ``cfg.checkpoint`` (``pretrained:<name>``, a file or a pretrain run dir),
samples ``n`` pieces of ``length`` time steps (after the optional primer) with the incremental
``step``, in the checkpoint's encoding (a step is one token of a melody, four of a chorale:
``encoding.tokens_for(length)``), and writes into the output folder:

* ``sample_000.mid`` .. one MIDI file per sample (at ``qpm``; a chorale has a track per voice,
  soprano first),
* ``sample_000.musicxml`` .. for the first ``musicxml`` samples (a chorale in four staves),
* ``tokens.npy`` (n, tokens) int64 — the samples as tokens, primer included.

The same seed, checkpoint, arguments and ``batch_size`` give the same files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from rlmusic.config.preflight import preflight
from rlmusic.data.io import load_piece, save_midi, save_musicxml
from rlmusic.models.registry import load_generator
from rlmusic.models.sampling import generate
from rlmusic.runtime import resolve_device, run_folder

log = logging.getLogger(__name__)


@dataclass
class SampleResult:
    tokens: np.ndarray  # (n, tokens of the primer and of length steps) int64
    out_dir: Path
    midi: list[Path]
    musicxml: list[Path]


def output_dir(cfg: DictConfig) -> Path:
    return run_folder(cfg.get("out"), fallback="outputs/sample")


def run(cfg: DictConfig) -> SampleResult:
    """Sample per ``cfg`` (conf/sample.yaml) and write the files; returns tokens and paths."""
    preflight("sample", cfg)  # n, length, the sampling arguments, the checkpoint: before work
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    model, encoding = load_generator(str(cfg.checkpoint), device=device)
    primer = None
    if cfg.get("primer"):
        primer = load_piece(str(cfg.primer), encoding)
        log.info("primer %s: %d steps", cfg.primer, encoding.steps_in(primer))
    rng = torch.Generator(device=device).manual_seed(int(cfg.seed))
    tokens = generate(
        model,
        n=int(cfg.n),
        length=encoding.tokens_for(int(cfg.length)),
        rng=rng,
        temperature=float(cfg.temperature),
        top_k=int(cfg.top_k),
        top_p=float(cfg.top_p),
        primer=primer,
        batch_size=int(cfg.batch_size),
        device=device,
    )
    out = output_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "tokens.npy", tokens)
    width = max(3, len(str(len(tokens) - 1)))
    midi = [
        save_midi(t, out / f"sample_{i:0{width}d}.mid", encoding, qpm=float(cfg.qpm))
        for i, t in enumerate(tokens)
    ]
    xml = [
        save_musicxml(t, out / f"sample_{i:0{width}d}.musicxml", encoding)
        for i, t in enumerate(tokens[: int(cfg.musicxml)])
    ]
    print(
        f"{len(midi)} samples of {encoding.steps_in(tokens[0]) if len(tokens) else 0} steps "
        f"from {cfg.checkpoint} -> {out} "
        f"({len(xml)} MusicXML)"
    )
    return SampleResult(tokens, out, midi, xml)
