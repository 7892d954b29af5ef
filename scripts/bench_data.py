#!/usr/bin/env python
"""Benchmark: cold preparation of a corpus (fresh cache) and its cached reload.

    python scripts/bench_data.py                 # the default corpus (data=all), all cores
    python scripts/bench_data.py --source essen --workers 1
    python scripts/bench_data.py --cache-dir ~/.cache/rlmusic   # and leave that cache filled

Prints a small table: tunes kept and rejected (by reason) per collection, notes folded into
range, cold and cached time, and the load average (other jobs on the machine slow the cold run).
Never used as a timed test.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from rlmusic.data import MelodyEncoding, prepare_corpus
from rlmusic.data.summary import summarize


def _rejected_by_source(rejected: list[tuple[str, str]]) -> dict[str, Counter]:
    """collection -> Counter of reasons (ids are ``collection/file#tune``; MIDI folders: paths)."""
    out: dict[str, Counter] = {}
    for name, reason in rejected:
        source = name.split("/", 1)[0] if "/" in name else "midi_dir"
        out.setdefault(source, Counter())[reason.split(":")[0]] += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="all")
    parser.add_argument("--workers", default="auto")
    parser.add_argument(
        "--cache-dir",
        help="prepare into this folder and keep it (default: a temporary folder, removed after)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        cache = Path(args.cache_dir).expanduser() if args.cache_dir else Path(temporary)
        before = set(cache.glob("*.npz")) if cache.is_dir() else set()
        config = {
            "source": args.source,
            "cache_dir": str(cache),
            "split_seed": 0,
            "workers": args.workers,
        }
        load_before = os.getloadavg()
        started = time.perf_counter()
        corpus = prepare_corpus(config, MelodyEncoding(), progress=False)
        cold = time.perf_counter() - started
        load_after = os.getloadavg()
        reused = before & set(cache.glob("*.npz"))
        started = time.perf_counter()
        prepare_corpus(config, MelodyEncoding(), progress=False)
        cached = time.perf_counter() - started
    summary = summarize(corpus)
    by_source = _rejected_by_source(corpus.rejected)
    print(f"cores available: {len(os.sched_getaffinity(0))}, workers: {args.workers}")
    print("| collection | tunes kept | rejected (reason) |\n|---|---|---|")
    for source, kept in summary.kept_by_source.items():
        reasons = ", ".join(f"{n} {r}" for r, n in by_source.get(source, Counter()).most_common())
        print(f"| {source} | {kept} | {reasons} |")
    print(f"| **total** | **{summary.kept}** | {summary.rejected} |")
    print(f"rejected: {summary.rejected} {summary.rejected_by_reason}")
    print(
        f"notes: {summary.notes}, outside the range before folding: {summary.folded_notes} "
        f"({100 * summary.folded_share:.3f}%), tokens: {summary.tokens}"
    )
    print(f"cold preparation: {cold:.1f} s   cached reload: {cached:.2f} s")
    print(
        "load average (1/5/15 min) before the cold run: "
        + "/".join(f"{x:.2f}" for x in load_before)
        + ", after: "
        + "/".join(f"{x:.2f}" for x in load_after)
    )
    if reused:
        print(f"NOTE: {len(reused)} cache file(s) existed before: the cold time is not cold")


if __name__ == "__main__":
    main()
