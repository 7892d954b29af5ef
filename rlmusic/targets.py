"""Import the user's own code named by a Hydra-style ``_target_`` dotted path.

Reward terms (``reward.extra.<name>._target_``) and generators (``model._target_``) name the
user's code the same way: an import path on ``PYTHONPATH``, arguments from the config. Nothing
is ever read from a file's bytes: a checkpoint records the path and the arguments, and loading
it imports the module again.

This module imports only :mod:`rlmusic.errors`: every layer may use it.
"""

from __future__ import annotations

import importlib
from typing import Any

from rlmusic.errors import UserError


def import_target(path: str, error: type[Exception] = UserError, where: str = "_target_") -> Any:
    """The object ``path`` (``package.module.name``) names.

    Args:
        path: a dotted path, module then attribute.
        error: the exception raised (one line naming ``where``, the path and what failed).
        where: how the message names the setting (``_target_``, ``model._target_``, a file).

    Raises:
        error: no dot in ``path``, a module that does not import, or no such attribute.

    >>> import_target("collections.OrderedDict").__name__
    'OrderedDict'
    """
    module_name, _, attribute = str(path).rpartition(".")
    if not module_name:
        raise error(f"{where} {path!r} must be a dotted path like my_module.my_name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{where} {path!r}: cannot import {module_name!r} ({exc})") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise error(f"{where} {path!r}: {module_name!r} has no {attribute!r}") from None
