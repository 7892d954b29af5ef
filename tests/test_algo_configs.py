"""Each algorithm's settings are declared once: its config class (rlmusic.algos.CONFIGS).

conf/algo/<name>.yaml composes onto the class (Hydra's ConfigStore, conf/__init__.py), so the
composed ``algo`` node must equal the class's defaults, except for a documented set of values
the YAML changes on purpose (:data:`PURPOSEFUL`, empty: none today).
"""

from __future__ import annotations

import dataclasses
import typing

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from rlmusic.algos import CONFIGS, get_config_class, resumable_algo_keys
from rlmusic.algos.settings import node_fields, node_schema, read_config
from rlmusic.tasks.finetune import RESUMABLE_KEYS

# algo name -> {key: value conf/algo/<name>.yaml sets on purpose, and why (in a comment)}
PURPOSEFUL: dict[str, dict[str, object]] = {name: {} for name in CONFIGS}
TYPES = (int, float, bool, str)


def composed_algo(name: str) -> dict:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", [f"algo={name}"])
    return OmegaConf.to_container(cfg.algo, resolve=True)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_yaml_adds_nothing_to_the_config_class(name: str) -> None:
    cls = get_config_class(name)
    defaults = {f.name: f.default for f in node_fields(cls)}
    composed = composed_algo(name)
    assert composed == {**defaults, **PURPOSEFUL[name]}
    for key, value in composed.items():  # ints stay ints, floats floats
        assert type(value) is type(defaults[key]) or defaults[key] is None, key


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_key_is_typed(name: str) -> None:
    cls = get_config_class(name)
    hints = typing.get_type_hints(node_schema(cls))
    for f in node_fields(cls):
        allowed = set(typing.get_args(hints[f.name])) - {type(None)} or {hints[f.name]}
        assert allowed <= set(TYPES), f"{name}: algo.{f.name} is {hints[f.name]}"
        assert f.default is not dataclasses.MISSING, f"{name}: algo.{f.name} has no default"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_shipped_defaults_pass_their_own_checks(name: str) -> None:
    read_config(get_config_class(name), composed_algo(name), length=32)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_overrides_are_typed_at_compose_time(name: str) -> None:
    key = next(f.name for f in node_fields(get_config_class(name)) if f.type == "float")
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        assert compose("finetune", [f"algo={name}", f"algo.{key}=1e-3"]).algo[key] == 1e-3
        with pytest.raises(Exception, match="Error merging override"):
            compose("finetune", [f"algo={name}", f"algo.{key}=abc"])
        with pytest.raises(Exception, match="nope"):
            compose("finetune", [f"algo={name}", "algo.nope=1"])


def test_resumable_keys_come_from_the_config_classes() -> None:
    algo_keys = tuple(k for k in RESUMABLE_KEYS if k.startswith("algo."))
    assert algo_keys == resumable_algo_keys()
    assert "algo.iterations" in algo_keys and "algo.lr" not in algo_keys
