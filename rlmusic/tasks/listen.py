"""`rlmusic listen`: a static page of blind A/B pairs of two models' pieces.

``rlmusic listen models.a=pretrained:note_lstm models.b=outputs/finetune/x pairs=20 out=DIR``
draws ``pairs`` pieces from each model (same seed and length; specs as in ``rlmusic compare``:
a generator, a run folder, a MIDI folder or ``heldout``) and writes ``DIR/listen.html`` with
its ``samples/``, ``audio/`` and ``key.json`` (:mod:`rlmusic.evaluation.listening`). The file a
listener downloads loads with ``rlmusic.critics.load_preferences(path,
samples_dir=DIR/"samples")``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from rlmusic.data.encoding import encoding_from_cfg
from rlmusic.evaluation import audio
from rlmusic.evaluation.columns import HELDOUT, load_column, spec_kind, split_heldout
from rlmusic.evaluation.listening import write_listening_page
from rlmusic.runtime import resolve_device, run_folder

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> Path:
    """Write the listening page per ``cfg`` (conf/listen.yaml); returns its path."""
    models = {str(k): str(v) for k, v in (cfg.get("models") or {}).items()}
    if len(models) != 2:
        raise ValueError(
            f"a listening page compares exactly two models (models.a=SPEC models.b=SPEC), "
            f"got {len(models)}: {sorted(models)}"
        )
    pairs, length, seed = int(cfg.pairs), int(cfg.length), int(cfg.seed)
    if pairs < 1 or length < 1:
        raise ValueError(f"need pairs >= 1 and length >= 1, got pairs={pairs}, length={length}")
    renderer = audio.from_cfg(cfg)
    encoding = encoding_from_cfg(cfg.encoding)
    pool = None
    if any(spec_kind(spec)[0] == HELDOUT for spec in models.values()):
        from rlmusic.evaluation.objective import held_out_openings

        _, pool = split_heldout(held_out_openings(cfg, encoding, length), seed, pairs)
    device = resolve_device(str(cfg.device))
    a, b = (
        load_column(name, spec, pairs, length, seed, encoding, pool, device)
        for name, spec in models.items()
    )
    out = run_folder(cfg.get("out"), fallback="outputs/listen")
    path = write_listening_page((a, b), encoding, out, pairs, seed, renderer, float(cfg.qpm))
    shown = min(pairs, len(a.tokens), len(b.tokens))
    log.info("%d pairs of %s and %s (%s)", shown, a.name, b.name, renderer.describe())
    print(f"listening page: {path}")
    print(f"preferences load with samples_dir={Path(out) / 'samples'}")
    return path
