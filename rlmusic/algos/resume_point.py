"""Reading a training run's resume point: one check of what wrote it, shared by every
algorithm's ``resume.pt`` (written by :mod:`rlmusic.algos.harness`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlmusic.errors import UserError
from rlmusic.models.checkpoint import read_torch_file


class ResumeError(UserError, ValueError):
    """A run folder's resume point that this run cannot continue (the CLI prints one line)."""


def read_resume_point(
    path: Path, file_format: str, version: int, run: Mapping[str, Any], kind: str
) -> dict[str, Any]:
    """The state saved at ``path`` once it is known to belong to this kind of run.

    ``run`` holds what a resume point must share with the run resuming it (the algorithm,
    composition length, ...); a differing value is named with both sides first, so another
    algorithm's file says which algorithm wrote it.

    Raises:
        ResumeError: (a ``ValueError``) another kind of run's file, another format (``kind`` names the expected
            one) or another version of this one.
        CheckpointError: a damaged file or one holding pickled objects.
    """
    state = read_torch_file(path)
    saved = state.get("run", {}) if isinstance(state, dict) else {}
    diff = {k: (saved.get(k), v) for k, v in run.items() if k in saved and saved.get(k) != v}
    if diff:
        detail = ", ".join(f"{k} {a!r} (this run: {b!r})" for k, (a, b) in diff.items())
        raise ResumeError(
            f"{path} was written by another kind of run: {detail}; re-run the same command to "
            "resume it, or use a new output folder (hydra.run.dir)"
        )
    if not isinstance(state, dict) or state.get("format") != file_format:
        raise ResumeError(
            f"{path}: not {kind} (format={file_format!r}; an earlier release's resume file "
            "cannot be continued): start the run in a new output folder (hydra.run.dir)"
        )
    if state.get("version") != version:
        raise ResumeError(
            f"{path} is a resume point of version {state.get('version')} and this release reads "
            f"version {version}: start the run again in a new output folder (hydra.run.dir)"
        )
    return state
