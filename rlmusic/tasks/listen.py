"""`rlmusic listen`: a static page of blind A/B pairs of two models' pieces.

``rlmusic listen models.a=pretrained:note_lstm models.b=outputs/finetune/x pairs=20 out=DIR``
draws ``pairs`` pieces of ``length`` time steps from each model (same seed; in ``encoding``,
a chorale's step being four tokens; specs as in ``rlmusic compare``:
a generator, a run folder, a MIDI folder or ``heldout``) and writes ``DIR/listen.html`` with
its ``samples/`` and ``audio/`` (``DIR``: ``out``, else ``page/`` in the run folder): a folder
to serve to listeners as it is. The answer key (which model each piece is) goes beside it,
``DIR.key.json``, never into it (:mod:`rlmusic.evaluation.listening`); the command prints both
paths. The file a listener downloads loads with
``rlmusic.critics.load_preferences(path, samples_dir=DIR/"samples")``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from rlmusic.config.preflight import preflight
from rlmusic.data.encodings import encoding_from_cfg
from rlmusic.evaluation import audio
from rlmusic.evaluation.columns import (
    GENERATOR,
    HELDOUT,
    load_column,
    soprano_conditions,
    spec_kind,
    split_heldout,
)
from rlmusic.evaluation.listening import key_path, write_listening_page
from rlmusic.models.registry import checkpoint_conditioning
from rlmusic.runtime import resolve_device, run_folder

log = logging.getLogger(__name__)


def page_folder() -> Path:
    """The page's folder when ``out`` is null: ``page/`` in the run folder (Hydra's, else
    outputs/listen), so what is served holds neither the run's config nor its log."""
    return run_folder(None, fallback="outputs/listen") / "page"


def run(cfg: DictConfig) -> Path:
    """Write the listening page per ``cfg`` (conf/listen.yaml); returns its path."""
    preflight("listen", cfg, resolve_spec=spec_kind)  # two models, every spec, the counts
    models = {str(k): str(v) for k, v in cfg.models.items()}
    pairs, seed = int(cfg.pairs), int(cfg.seed)
    renderer = audio.from_cfg(cfg)
    encoding = encoding_from_cfg(cfg.encoding)
    length = int(cfg.length)  # time steps: load_column samples encoding.tokens_for(length)
    pool = conditions = None
    generators = [spec for spec in models.values() if spec_kind(spec)[0] == GENERATOR]
    harmonising = any(checkpoint_conditioning(spec) for spec in generators)
    if harmonising or any(spec_kind(spec)[0] == HELDOUT for spec in models.values()):
        from rlmusic.evaluation.objective import held_out

        held = held_out(cfg, encoding)  # split by data.split_seed, never the run's seed
        openings = held.openings(encoding.tokens_for(length))  # cut in tokens
        reference, pool = split_heldout(openings, held.split_seed, pairs)
        # two harmonisers harmonise the same sopranos: pair i is one melody harmonised twice
        conditions = soprano_conditions(generators, reference, encoding, "listen")
    device = resolve_device(str(cfg.device))
    a, b = (
        load_column(name, spec, pairs, length, seed, encoding, pool, device, 0, conditions)
        for name, spec in models.items()
    )
    out = Path(cfg.out) if cfg.get("out") else page_folder()
    path = write_listening_page((a, b), encoding, out, pairs, seed, renderer, float(cfg.qpm))
    shown = min(pairs, len(a.tokens), len(b.tokens))
    log.info("%d pairs of %s and %s (%s)", shown, a.name, b.name, renderer.describe(encoding))
    print(f"listening page: {path} (serve {out} as it is: it holds no answer key)")
    print(f"answer key: {key_path(out)} (for the experimenter: keep it from the listeners)")
    print(f"preferences load with samples_dir={Path(out) / 'samples'}")
    return path
