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
        (["algo=ppo"], "reward=default (the default)"),  # every learner runs the default
        (["algo=rl_tuner"], "reward=default (the default)"),
        (["algo=ppo", "reward=default_unconstrained"], "reward=default_unconstrained (given on"),
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


def test_a_learner_may_run_the_reward_at_its_own_rule_scale(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from rlmusic.config import ConfigError
    from rlmusic.tasks.finetune import learner_scale

    reward = {"c": 3.0, "rules": ["tonic"], "c_by_algo": {"rl_tuner": 1.0}}
    with caplog.at_level("INFO"):
        assert learner_scale(reward, "rl_tuner") == {**reward, "c": 1.0}
    assert "reward.c = 1 for algo=rl_tuner (reward.c_by_algo; the others' is 3.0)" in caplog.text
    assert reward["c"] == 3.0  # the caller's config is not changed
    assert learner_scale(reward, "ppo") is reward  # not named: the reward's own c
    assert learner_scale({"c": 0.5, "rules": ["tonic"]}, "rl_tuner")["c"] == 0.5  # the paper's
    with pytest.raises(ConfigError, match="reward.c_by_algo.ppo must be > 0, got 0"):
        learner_scale({"c_by_algo": {"ppo": 0}}, "ppo")
