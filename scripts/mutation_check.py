#!/usr/bin/env python
"""Mutation check of the learners: does the fast suite notice a learner going backwards?

Each mutant is one textual edit of one source file (a sign flipped, a clip removed, a target
network frozen) plus the fast tests that should catch it. The script copies the working tree
to a private folder once, then for each mutant applies the edit there, runs those tests with
``pytest -x`` exactly as CI runs them (the slow ones deselected) and restores the file. A
mutant is *killed* when the tests fail, *survived* when they pass. The working tree is never
touched, so this can run beside other work.

The mutants are data, one module per learner family in ``scripts/mutants/<area>.py``, each
defining ``MUTANTS``: a list of dicts with

- ``name``: what the edit breaks, in words;
- ``file``: the source file, relative to the repository root;
- ``old`` / ``new``: the text replaced (it must occur exactly once: a mutant that no longer
  applies is an error, never a silent pass);
- ``tests``: pytest node ids or files that should catch it.

Usage (CI does not run it; it takes minutes)::

    python scripts/mutation_check.py                 # every area
    python scripts/mutation_check.py --area batched  # one area
    python scripts/mutation_check.py --list          # the mutants, without running them
    python scripts/mutation_check.py --name "ratio"  # mutants whose name contains the text

It prints one line per mutant and the score (killed / total) and exits non-zero when any
mutant survived.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANT_DIR = ROOT / "scripts" / "mutants"
# what the private copy leaves out: the venv, caches, run outputs
IGNORED = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", "*.pyc", "outputs", "multirun", "runs", ".pytest_cache"
)


@dataclass(frozen=True)
class Mutant:
    area: str
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


def load_mutants(areas: list[str] | None) -> list[Mutant]:
    """Every mutant of the named areas (all areas when None), in file order."""
    paths = sorted(MUTANT_DIR.glob("*.py"))
    known = [p.stem for p in paths if not p.stem.startswith("_")]
    if areas:
        unknown = sorted(set(areas) - set(known))
        if unknown:
            sys.exit(f"error: unknown area {', '.join(unknown)}; known: {', '.join(known)}")
    mutants: list[Mutant] = []
    for path in paths:
        if path.stem not in known or (areas and path.stem not in areas):
            continue
        spec = importlib.util.spec_from_file_location(f"mutants_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        for entry in module.MUTANTS:
            mutants.append(Mutant(area=path.stem, **{**entry, "tests": tuple(entry["tests"])}))
    return mutants


def private_copy() -> Path:
    """The working tree copied to a temporary folder that imports ahead of the editable install.

    The installed package maps ``rlmusic.envs`` and ``rlmusic.conf`` to the top-level ``envs/``
    and ``conf/`` folders; links inside the copy's ``rlmusic/`` give the same layout on
    ``PYTHONPATH``, so every import (subprocesses included) resolves inside the copy.
    """
    target = Path(tempfile.mkdtemp(prefix="rlmusic-mutants-")) / "repo"
    shutil.copytree(ROOT, target, ignore=IGNORED, symlinks=True)
    for name in ("envs", "conf"):
        (target / "rlmusic" / name).symlink_to(target / name, target_is_directory=True)
    return target


def run_tests(copy: Path, tests: tuple[str, ...], timeout_s: float) -> tuple[bool, str]:
    """(passed, last lines of output) for ``pytest -x`` on these tests inside the copy."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout_s:.0f} s (counted as killed)"
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return done.returncode == 0, tail


def check_imports_resolve_in_copy(copy: Path) -> None:
    """Fail loudly if the copy's package is not the one imported (the check would be void)."""
    env = {**os.environ, "PYTHONPATH": str(copy)}
    probe = (
        "import rlmusic, rlmusic.envs, rlmusic.conf; print(rlmusic.__file__, rlmusic.envs.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=copy, env=env, capture_output=True, text=True
    )
    if out.returncode or str(copy) not in out.stdout.split()[0] or str(copy) not in out.stdout:
        sys.exit(f"error: the private copy is not what imports: {out.stdout}{out.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--area", action="append", help="an area (scripts/mutants/<area>.py)")
    parser.add_argument("--name", help="only mutants whose name contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutant")
    args = parser.parse_args()

    mutants = load_mutants(args.area)
    if args.name:
        mutants = [m for m in mutants if args.name.lower() in m.name.lower()]
    if args.list:
        for m in mutants:
            print(f"{m.area:10s} {m.name}  [{m.file}]  <- {' '.join(m.tests)}")
        return 0
    if not mutants:
        sys.exit("error: no mutant matches")

    copy = private_copy()
    check_imports_resolve_in_copy(copy)
    ok, tail = run_tests(copy, tuple(sorted({t for m in mutants for t in m.tests})), args.timeout)
    if not ok:
        sys.exit(f"error: the tests fail before any mutation, so no mutant can be judged:\n{tail}")

    survivors: list[Mutant] = []
    for m in mutants:
        path = copy / m.file
        original = path.read_text()
        count = original.count(m.old)
        if count != 1:
            sys.exit(f"error: mutant {m.name!r}: its text occurs {count} times in {m.file}")
        path.write_text(original.replace(m.old, m.new))
        started = time.perf_counter()
        try:
            passed, tail = run_tests(copy, m.tests, args.timeout)
        finally:
            path.write_text(original)
        verdict = "SURVIVED" if passed else "killed"
        print(
            f"{verdict:8s} {time.perf_counter() - started:6.1f} s  {m.area}: {m.name}", flush=True
        )
        if passed:
            survivors.append(m)
            print(f"         tests run: {' '.join(m.tests)}\n         {tail}", flush=True)
    shutil.rmtree(copy.parent, ignore_errors=True)
    killed = len(mutants) - len(survivors)
    print(f"\nmutation score: {killed}/{len(mutants)} killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
