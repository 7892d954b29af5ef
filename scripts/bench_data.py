#!/usr/bin/env python
"""Benchmark: cold preparation of a corpus (fresh cache) and its cached reload.

    python scripts/bench_data.py                 # the default corpus (data=all), all cores
    python scripts/bench_data.py --source essen --workers 1

Prints a small table: tunes kept per collection, notes folded into range, cold and cached time.
Never used as a timed test.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from rlmusic.data import MelodyEncoding, prepare_corpus
from rlmusic.data.summary import summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="all")
    parser.add_argument("--workers", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        config = {"source": args.source, "cache_dir": cache, "seed": 0, "workers": args.workers}
        started = time.perf_counter()
        corpus = prepare_corpus(config, MelodyEncoding(), progress=False)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        prepare_corpus(config, MelodyEncoding(), progress=False)
        cached = time.perf_counter() - started
    summary = summarize(corpus)
    print(f"cores available: {len(os.sched_getaffinity(0))}, workers: {args.workers}")
    print("| collection | tunes kept |\n|---|---|")
    for source, kept in summary.kept_by_source.items():
        print(f"| {source} | {kept} |")
    print(f"| **total** | **{summary.kept}** |")
    print(f"rejected: {summary.rejected} {summary.rejected_by_reason}")
    print(
        f"notes: {summary.notes}, outside the range before folding: {summary.folded_notes} "
        f"({100 * summary.folded_share:.3f}%)"
    )
    print(f"cold preparation: {cold:.1f} s   cached reload: {cached:.2f} s")


if __name__ == "__main__":
    main()
