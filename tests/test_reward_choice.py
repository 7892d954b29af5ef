"""The run's log says which ``reward=`` preset runs and who chose it (an algorithm's group may
pick another than the default)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig

from rlmusic.tasks.finetune import log_reward_choice


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ([], "reward=default (the default)"),
        (["algo=ppo"], "reward=default_unconstrained (chosen by conf/algo/ppo.yaml"),
        (["algo=rl_tuner"], "reward=default_unconstrained (chosen by conf/algo/rl_tuner.yaml"),
        (["algo=ppo", "reward=default"], "reward=default (given on the command line)"),
        (["experiment=chorales"], "reward=chorale (experiment=chorales's)"),
    ],
)
def test_the_log_names_the_reward_and_who_chose_it(overrides: list[str], line: str) -> None:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        assert log_reward_choice(str(cfg.algo.name)).startswith(line)
    finally:
        HydraConfig.instance().cfg = None  # leave no Hydra state to the next test
