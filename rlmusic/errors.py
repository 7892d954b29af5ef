"""The user's mistakes as one family of exceptions: what the CLI reports in one line.

A :class:`UserError` is raised where a mistake in what the user gave is detected -- a config
value, a checkpoint, an input file or folder, a missing optional dependency -- and its message
names the value or file and the fix. ``rlmusic`` prints it as ``error: <message>`` on stderr and
exits with status 2, without a traceback (``HYDRA_FULL_ERROR=1`` shows one); any other
exception is a bug and keeps its traceback.

The family (each keeps the built-in base its callers already catch):

* :class:`rlmusic.config.ConfigError` (``ValueError``): a config key or value;
* :class:`rlmusic.models.CheckpointError` (``RuntimeError``): a checkpoint or pretrained name;
* :class:`rlmusic.data.CorpusError` (``RuntimeError``): a corpus source, folder or cache;
* :class:`rlmusic.data.MelodyLoadError`, :class:`rlmusic.critics.preference_file.PreferenceFileError`
  (``ValueError``): a melody or preference file;
* :class:`rlmusic.rewards.base.RewardError` (``ValueError``): a reward value, or a term that
  returned something unusable;
* :class:`MissingDependencyError` (``ImportError``): an optional extra that is not installed.

This module imports nothing: every layer may raise these.
"""

from __future__ import annotations

import os

# the exit status of every user error (the CLI's unknown task and a bad config value included)
EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in what the user gave (not a bug): the message names the value or file and
    says how to fix it; the CLI prints it as one line."""


class MissingDependencyError(UserError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install`` extra."""


def one_line(message: object) -> str:
    """``message`` as one line: its lines joined by spaces (a message may quote a library's
    multi-line error).

    >>> one_line("a.pt: not a checkpoint (bad\\n  header)")
    'a.pt: not a checkpoint (bad header)'
    """
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def full_traceback_wanted() -> bool:
    """Whether the user asked for tracebacks (``HYDRA_FULL_ERROR=1``, as Hydra reads it)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


__all__ = [
    "EXIT_USER_ERROR",
    "MissingDependencyError",
    "UserError",
    "full_traceback_wanted",
    "one_line",
]
