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


def test_a_learner_may_run_the_reward_at_its_own_rule_scale(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from omegaconf import OmegaConf

    from rlmusic.config import ConfigError
    from rlmusic.tasks.finetune import learner_scale

    reward = {"c": 3.0, "rules": ["tonic"], "constraints": {"tonic": {"at_least": 0.3}}}
    algo = OmegaConf.create({"name": "rl_tuner", "reward_c": 1.0})
    with caplog.at_level("INFO"):
        assert learner_scale(reward, algo) == {**reward, "c": 1.0}
    assert "reward.c = 1 for algo=rl_tuner (algo.reward_c; the preset's is 3.0)" in caplog.text
    assert reward["c"] == 3.0  # the caller's config is not changed
    assert learner_scale(reward, OmegaConf.create({"reward_c": None})) is reward
    assert learner_scale({"prior": {}}, algo) == {"prior": {}}  # no rules: nothing to scale
    with pytest.raises(ConfigError, match="algo.reward_c must be > 0, got 0"):
        learner_scale(reward, OmegaConf.create({"reward_c": 0}))
