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
        (["algo=rl_tuner"], "reward=default (the default)"),
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


def test_a_learner_may_run_the_reward_at_its_own_scale_and_bands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from rlmusic.config import ConfigError
    from rlmusic.tasks.finetune import learner_reward

    bands = {"tonic": {"at_least": 0.32}}
    own = {"c": 1.0, "constraints": {"tonic": {"at_least": 0.33}}}
    reward = {"c": 3.0, "rules": ["tonic"], "constraints": bands, "by_algo": {"rl_tuner": own}}
    with caplog.at_level("INFO"):
        assert learner_reward(reward, "rl_tuner") == {**reward, **own}
    assert "reward for algo=rl_tuner (reward.by_algo.rl_tuner): c 1.0 instead of 3.0" in caplog.text
    assert reward["c"] == 3.0 and reward["constraints"] is bands  # the caller's is not changed
    assert learner_reward(reward, "ppo") is reward  # not named: the reward as it is
    with pytest.raises(ConfigError, match="reward.by_algo.ppo.c must be > 0, got 0"):
        learner_reward({"by_algo": {"ppo": {"c": 0}}}, "ppo")
    with pytest.raises(ConfigError, match="reward.by_algo.ppo: rules cannot differ by learner"):
        learner_reward({"by_algo": {"ppo": {"rules": []}}}, "ppo")


def test_the_default_gives_rl_tuner_its_scale_and_wider_margins() -> None:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=["algo=rl_tuner"])
    from omegaconf import OmegaConf

    from rlmusic.tasks.finetune import learner_reward

    reward = learner_reward(OmegaConf.to_container(cfg.reward, resolve=True), "rl_tuner")
    assert reward["c"] == 1.0 and reward["constraints"]["tonic"]["at_least"] == 0.33
    batched = learner_reward(OmegaConf.to_container(cfg.reward, resolve=True), "batched")
    assert batched["c"] == 3.0 and batched["constraints"]["tonic"]["at_least"] == 0.32
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=["algo=rl_tuner", "reward=default_unconstrained"])
    plain = learner_reward(OmegaConf.to_container(cfg.reward, resolve=True), "rl_tuner")
    assert plain["constraints"] is None and plain["c"] == 1.0  # no bands slip back in
