"""Every option of every config group composes with the task it belongs to, fits that task's
schema and instantiates: experiment, hparams_search, hydra/launcher (joblib, submitit_slurm,
ray), algo, reward, data, model, critic. No cluster, no Ray instance, no training."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rlmusic.config import ConfigError, validate_config

CONF = Path(__file__).resolve().parents[1] / "conf"
TASKS_WITH_RECIPES = ("finetune", "pretrain", "evaluate")
# values an option leaves for the user to give (`???`)
REQUIRED: dict[str, list[str]] = {}


def options(group: str) -> list[str]:
    """The options of ``conf/<group>/`` (nested ones as ``sub/name``)."""
    root = CONF / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def composed(task: str, overrides: list[str], hydra: bool = False) -> DictConfig:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return compose(task, overrides=overrides, return_hydra_config=hydra)


def fitting_tasks(group: str, option: str) -> list[str]:
    """The tasks whose config, with ``group=option``, composes and fits the schema."""
    fits = []
    for task in TASKS_WITH_RECIPES:
        try:
            cfg = composed(task, [f"{group}={option}", *REQUIRED.get(f"{group}/{option}", [])])
            validate_config(task, cfg)
        except (ConfigError, ConfigCompositionException):  # another task's recipe
            continue
        fits.append(task)
    return fits


def plugin(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f'{module} is not installed (pip install "rlmusic[sweeps]")')


@pytest.mark.parametrize("task", TASKS_WITH_RECIPES)
def test_experiment_and_hparams_search_are_groups_of_every_task(task: str) -> None:
    choices = composed(task, [], hydra=True).hydra.runtime.choices
    assert "experiment" in choices and "hparams_search" in choices


@pytest.mark.parametrize("option", options("experiment"))
def test_every_experiment_composes_for_its_task(option: str) -> None:
    fits = fitting_tasks("experiment", option)
    assert fits, f"experiment={option} fits none of {TASKS_WITH_RECIPES}"
    cfg = composed(fits[0], [f"experiment={option}"], hydra=True)
    if option.startswith("compare_algos/") and option != "compare_algos/evaluate":
        assert fits == ["finetune"] and cfg.algo.name == option.split("/")[1]
        assert cfg.hydra.run.dir.endswith(f"compare_algos/{cfg.algo.name}")  # resumable
    if option.startswith("pretrain_"):
        assert fits == ["pretrain"] and cfg.model.name == option.removeprefix("pretrain_")
    if option == "rl_tuner_paper":
        assert cfg.algo.name == "rl_tuner" and cfg.reward.c == 0.5
        assert cfg.algo.total_timesteps == 1_000_000 and cfg.reward.prior.weight == 1.0
    if option == "compare_algos/evaluate":
        assert fits == ["evaluate"] and len(cfg.compare_to) == 3


def test_experiments_keep_the_shipped_recipes() -> None:
    """What scripts/build_pretrained.sh ran before it became a wrapper."""
    lstm = composed("pretrain", ["experiment=pretrain_note_lstm"])
    assert (lstm.train.epochs, lstm.train.window, lstm.train.lr, lstm.threads) == (5, 128, 2e-3, 1)
    mt = composed("pretrain", ["experiment=pretrain_music_transformer"])
    assert (mt.train.epochs, mt.train.window, mt.train.lr) == (3, 64, 1e-3)
    assert mt.model.max_relative_position == 64 and mt.data.source == "all"


@pytest.mark.parametrize("option", options("hparams_search"))
def test_every_hparams_search_composes_and_its_sweeper_instantiates(option: str) -> None:
    plugin("hydra_plugins.hydra_optuna_sweeper")
    from hydra_plugins.hydra_optuna_sweeper._impl import (
        create_optuna_distribution_from_override,
    )

    fits = fitting_tasks("hparams_search", option)
    assert fits, f"hparams_search={option} fits none of {TASKS_WITH_RECIPES}"
    overrides = [f"hparams_search={option}", *REQUIRED.get(f"hparams_search/{option}", [])]
    cfg = composed(fits[0], overrides, hydra=True)
    assert cfg.objective and cfg.hydra.sweeper.direction == cfg.objective_direction
    assert cfg.objective_direction in ("minimize", "maximize")
    if fits[0] == "finetune":
        assert cfg.objective.startswith("eval/") and cfg.final_eval.enabled
    sweeper = instantiate(cfg.hydra.sweeper)
    assert type(sweeper).__name__ == "OptunaSweeper"
    parser = OverridesParser.create()
    for key, value in cfg.hydra.sweeper.params.items():
        # every searched key exists in the task's config (a typo would fail each trial)
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", key
        (override,) = parser.parse_overrides([f"{key}={value}"])
        create_optuna_distribution_from_override(override)  # a valid Optuna search space


@pytest.mark.parametrize("option", options("hydra/launcher"))
def test_every_launcher_composes_and_instantiates(option: str) -> None:
    needs = {
        "local": "hydra_plugins.hydra_joblib_launcher",
        "slurm": "hydra_plugins.hydra_submitit_launcher",
        "ray_cluster": "hydra_plugins.hydra_ray_launcher",
    }
    plugin(needs[option])
    cfg = composed("finetune", [f"hydra/launcher={option}", "experiment=kl_grid"], hydra=True)
    launcher = instantiate(cfg.hydra.launcher)
    expected = {"local": "JoblibLauncher", "slurm": "SlurmLauncher", "ray_cluster": "RayLauncher"}
    assert type(launcher).__name__ == expected[option]


def test_submitit_slurm_config_composes_without_a_cluster() -> None:
    plugin("hydra_plugins.hydra_submitit_launcher")
    for launcher in ("slurm", "submitit_slurm"):  # ours, and the plug-in's own
        cfg = composed("finetune", [f"hydra/launcher={launcher}"], hydra=True)
        node = cfg.hydra.launcher
        assert node._target_.endswith("SlurmLauncher")
        assert node.submitit_folder.startswith("multirun/finetune/")  # beside the job folders
        assert node.submitit_folder.endswith("/.submitit/%j")
        assert node.timeout_min > 0 and node.nodes == 1
    ours = composed(
        "finetune", ["hydra/launcher=slurm", "hydra.launcher.partition=cpu"], hydra=True
    )
    assert ours.hydra.launcher.partition == "cpu" and ours.hydra.launcher.cpus_per_task == 4


@pytest.mark.parametrize("option", options("algo"))
def test_every_algo_composes_and_resolves_its_trainer(option: str) -> None:
    from rlmusic.algos import get_train

    cfg = validate_config("finetune", composed("finetune", [f"algo={option}"]))
    assert callable(get_train(str(cfg.algo.name)))


@pytest.mark.parametrize("option", options("reward"))
def test_every_reward_composes_and_builds(option: str) -> None:
    from rlmusic.data.chorale_encoding import ChoraleEncoding
    from rlmusic.data.encoding import MelodyEncoding
    from rlmusic.rewards.build import build_reward

    cfg = validate_config("finetune", composed("finetune", [f"reward={option}"]))
    node = OmegaConf.to_container(cfg.reward, resolve=True)
    node.pop("prior")  # the prior is the KL reference (rlmusic.algos.finetune_setup), not a rule
    encoding = ChoraleEncoding() if option == "chorale" else MelodyEncoding()
    if option == "chorale":  # its realism critic is trained on the chorales on first use
        node["extra"].pop("realism")
    reward = build_reward(node, encoding)  # the melody presets' critics ship with the package
    tokens = torch.randint(0, encoding.vocab_size, (2, 32)).numpy()
    total, shares = reward.score(tokens)
    assert total.shape == (2, 32) and set(shares) >= set(node["rules"])


@pytest.mark.parametrize("option", options("data"))
def test_every_data_option_composes_and_names_a_source(option: str) -> None:
    from rlmusic.data.sources import SOURCES

    cfg = validate_config(
        "prepare_data", composed("prepare_data", [f"data={option}", "data.path=/x"])
    )
    assert cfg.data.source in SOURCES


@pytest.mark.parametrize("option", options("model"))
def test_every_model_composes_and_instantiates(option: str) -> None:
    from rlmusic.data.encodings import encoding_from_cfg
    from rlmusic.tasks.pretrain import model_from_cfg

    # model=custom names the user's module: the test helper's plain-torch GRU
    user = ["model._target_=tests.user_models.TinyGRU"] if option == "custom" else []
    cfg = validate_config("pretrain", composed("pretrain", [f"model={option}", *user]))
    model = model_from_cfg(cfg.model, encoding_from_cfg(cfg.encoding))
    logits = model(torch.zeros(1, 4, dtype=torch.long))
    assert logits.shape == (1, 4, model.vocab_size)


@pytest.mark.parametrize("option", options("critic"))
def test_every_critic_composes_and_its_model_instantiates(option: str) -> None:
    from rlmusic.critics import CriticConfig
    from rlmusic.critics.cnn import CausalCNN

    cfg = composed("train_critic", [f"critic={option}"])
    assert cfg.critic.name == option
    if "model" in cfg.critic:  # the ensemble is made of generators, not a model of its own
        model = CausalCNN(CriticConfig(vocab_size=38, **cfg.critic.model))
        assert sum(p.numel() for p in model.parameters()) > 0
    else:
        assert len(cfg.critic.members) >= 1


def test_a_reward_extra_term_passes_finetune_validation() -> None:
    """The README's `+reward.extra...` terms (and a search over their weight) fit the schema;
    a misspelt key beside them is still named."""
    extra = "+reward.extra.stepwise={_target_: my_rewards.stepwise, weight: 0.5}"
    cfg = validate_config("finetune", composed("finetune", [extra]))
    assert cfg.reward.extra.stepwise.weight == 0.5
    with pytest.raises(ConfigError, match="unknown config key 'reward.cc'"):
        validate_config("finetune", composed("finetune", [extra, "+reward.cc=1"]))
