"""The docstring examples of the reward, environment and statistics modules run and are right."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "rlmusic.rewards.base",
    "rlmusic.rewards.theory",
    "rlmusic.rewards.motif",
    "rlmusic.rewards.composite",
    "rlmusic.rewards.prior",
    "rlmusic.rewards.registry",
    "rlmusic.rewards.build",
    "rlmusic.envs",
    "rlmusic.envs.composition",
    "rlmusic.envs.vector",
    "rlmusic.envs.render",
    "rlmusic.evaluation.metrics",  # the statistics share the rules' detectors
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_every_rule_has_an_example() -> None:
    from rlmusic.rewards.theory import RULES

    for name, (rule, _) in RULES.items():
        assert ">>>" in (rule.__doc__ or ""), f"rule {name!r} has no docstring example"
