"""`rlmusic data`: prepare the configured corpus (or load its cache) and print its summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from rlmusic.data.encodings import encoding_from_cfg
from rlmusic.data.prepare import prepare_corpus
from rlmusic.data.summary import CorpusSummary, format_summary, summarize
from rlmusic.runtime import run_folder

log = logging.getLogger(__name__)


def run(cfg: DictConfig, output_dir: Path | None = None) -> CorpusSummary:
    encoding = encoding_from_cfg(cfg.encoding)
    corpus = prepare_corpus(cfg.data, encoding, progress=bool(cfg.get("progress", True)))
    summary = summarize(corpus)
    print(format_summary(summary, show_all_rejected=cfg.data.source == "midi_dir"))
    output_dir = run_folder(output_dir)
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "summary.json").write_text(json.dumps(summary.as_dict(), indent=2))
        with open(output_dir / "rejected.tsv", "w") as handle:
            handle.write("input\treason\n")
            handle.writelines(f"{name}\t{reason}\n" for name, reason in corpus.rejected)
        log.info("summary and rejected inputs written to %s", output_dir)
    return summary
