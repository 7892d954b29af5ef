"""Every mistake a command can know from its config is one line before any work
(rlmusic.config.preflight): the objective among the metrics the task returns, counts, the
model lists of compare and listen, generator specs, the device. Each runs the CLI's ``main``
in this process, as tests/test_cli_errors.py does."""

from __future__ import annotations

import copy
import functools
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from rlmusic.config import ConfigError, validate_config
from rlmusic.config.preflight import MetricNames, compare_metric_names, preflight
from rlmusic.data.chorale_encoding import ChoraleEncoding
from rlmusic.data.encoding import MelodyEncoding
from rlmusic.evaluation.checks import REFERENCE_LOGP_METRIC
from rlmusic.evaluation.model_eval import evaluate_samples
from rlmusic.evaluation.objective import CRITIC_METRIC, evaluation_metrics
from rlmusic.models.sampling import sample_seeded
from rlmusic.tasks import finetune
from tests.conftest import tiny_lstm
from tests.test_cli_errors import assert_one_line, run_main


def composed(task: str, overrides: list[str]):
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        return validate_config(task, compose(task, overrides=overrides))


@functools.cache
def _base(task: str) -> DictConfig:
    return composed(task, ["+models.a=heldout", "+models.b=heldout"] if task == "listen" else [])


def with_values(task: str, **values: object) -> DictConfig:
    """The task's default config (composed once) with ``values`` (``a__b``: ``a.b``) set."""
    cfg = copy.deepcopy(_base(task))
    for key, value in values.items():
        OmegaConf.update(cfg, key.replace("__", "."), value, merge=False)
    return cfg


# (command line, what the one line names); every one fails before any work
MISTAKES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "finetune-objective": (
        ["finetune", "objective=nope"],
        ("objective='nope' is not a metric this run returns", "final/{kl/prior_per_token"),
    ),
    "finetune-objective-term": (
        ["finetune", "reward=rl_tuner", "objective=final/reward/realism"],
        ("objective='final/reward/realism'", "did you mean 'final/reward/"),
    ),
    "finetune-refresh-ppo": (
        ["finetune", "algo=ppo", "critic_refresh.every=5"],
        ("critic_refresh.every > 0 needs algo=batched",),
    ),
    "finetune-final-eval-without-data": (
        ["finetune", "~data", "final_eval.enabled=true"],
        ("final_eval", "needs a `data` group"),
    ),
    "sample-n": (["sample", "n=0"], ("rlmusic sample: need n >= 1", "got n=0")),
    "sample-device": (["sample", "device=gpu"], ("device='gpu' is not a device",)),
    "sample-objective": (
        ["sample", "+objective=x"],  # conf/sample.yaml sets none: Hydra wants the +
        ("objective='x', but this task's result has no metrics",),
    ),
    "evaluate-n": (["evaluate", "n=0"], ("rlmusic evaluate: need n >= 1",)),
    "compare-no-models": (["compare"], ("rlmusic compare: no models given", "models.NAME=SPEC")),
    "compare-objective": (
        ["compare", "models.a=heldout", "objective=nope"],
        ("objective='nope' is not a metric", "its metrics: a/<name>; critic/<name>"),
    ),
    "compare-missing-spec": (
        ["compare", "models.a=heldout", "models.b=no/such/run"],
        ("'no/such/run': no such file or folder",),
    ),
    "listen-one-model": (
        ["listen", "models.a=heldout"],
        ("rlmusic listen compares exactly two models", "got 1: ['a']"),
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_a_mistake_is_one_line_before_any_work(
    mistake: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def work(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{mistake}: work started before the mistake was found")

    # the first work each task does: prepare a corpus, load a generator, train a critic
    monkeypatch.setattr("rlmusic.data.prepare.prepare_corpus", work)
    monkeypatch.setattr("rlmusic.tasks.finetune.resolve_auto_critics", work)
    monkeypatch.setattr("rlmusic.tasks.finetune.build_setup", work)
    args, named = MISTAKES[mistake]
    code, lines = run_main([*args, f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    assert_one_line(code, lines, *named)
    # nothing written but Hydra's own record of the command
    assert all(p.name == ".hydra" or p.suffix == ".log" for p in (tmp_path / "run").iterdir())


def test_finetune_with_an_unknown_objective_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case, unpatched: `rlmusic finetune objective=nope` ran the whole run, then
    failed with a KeyError traceback."""
    run = tmp_path / "run"
    started = time.perf_counter()
    code, lines = run_main(["finetune", "objective=nope", f"hydra.run.dir={run}"], capsys)
    assert time.perf_counter() - started < 5  # a default run takes minutes
    assert_one_line(code, lines, "objective='nope'")
    assert not (run / "tuned.safetensors").exists() and not (run / "run_config.yaml").exists()


# the same checks on a config, without Hydra's main: (task, values set, what the error names)
VALUES: dict[str, tuple[str, dict[str, object], str]] = {
    "finetune-eval-row": ("finetune", {"objective": "eval/interval_l2"}, "'eval/interval_l1'"),
    "finetune-direction": ("finetune", {"objective_direction": "up"}, "'maximize', 'minimize'"),
    "finetune-length": ("finetune", {"length": 0}, "need length >= 1"),
    "finetune-final-eval-n": (
        "finetune",
        {"objective": "eval/interval_l1", "final_eval__n": 0},
        "need final_eval.n >= 1",
    ),
    "finetune-threads": ("finetune", {"threads": 0}, "need threads >= 1"),
    "finetune-prior": ("finetune", {"reward__prior__checkpoint": "no/such.pt"}, "no such"),
    "sample-top-p": ("sample", {"top_p": 0.0}, "need top_p in (0, 1] (1 = off)"),
    "sample-batch-size": ("sample", {"batch_size": 0}, "need batch_size >= 1"),
    "sample-cuda": ("sample", {"device": "cuda:64"}, "CUDA GPU(s) visible"),
    "compare-confidence": (
        "compare",
        {"models": {"a": "heldout"}, "bootstrap__confidence": 1.0},
        "need bootstrap.confidence in (0, 1)",
    ),
    "compare-holdout": (
        "compare",
        {"models": {"a": "heldout"}, "critic__holdout": 0.0},
        "need critic.holdout in (0, 1)",
    ),
    "compare-empty-spec": ("compare", {"models": {"a": " "}}, "a spec is a non-empty string"),
    "compare-objective-model": (
        "compare",
        {"models": {"a": "heldout"}, "objective": "b/distinct share"},
        "its metrics: a/<name>; critic/<name>",
    ),
    "listen-three-models": (
        "listen",
        {"models": {"a": "heldout", "b": "heldout", "c": "heldout"}},
        "exactly two models",
    ),
    "listen-objective": ("listen", {"objective": "x"}, "this task's result has no metrics"),
    "evaluate-prior": ("evaluate", {"prior": "pretrained:nope"}, "unknown pretrained model"),
    "evaluate-compare-to": (
        "evaluate",
        {"compare_to": ["no/such.pt"]},
        "compare_to[0]=no/such.pt: no such checkpoint",
    ),
    "sample-temperature": ("sample", {"temperature": -1.0}, "need temperature >= 0"),
    "compare-n": ("compare", {"models": {"a": "heldout"}, "n": 1}, "need n >= 2"),
    "listen-pairs": ("listen", {"pairs": 0}, "need pairs >= 1"),
}


@pytest.mark.parametrize("case", list(VALUES))
def test_a_bad_value_is_refused_by_the_preflight(case: str) -> None:
    from rlmusic.errors import UserError
    from rlmusic.evaluation.columns import spec_kind

    task, values, named = VALUES[case]
    cfg = with_values(task, **values)
    names = finetune.metric_names(cfg) if task == "finetune" else None
    with pytest.raises(UserError) as raised:
        preflight(task, cfg, names, resolve_spec=spec_kind)
    assert named in str(raised.value) and "\n" not in str(raised.value)


# ---- the names an objective may take --------------------------------------------------------
def test_every_metric_a_finetune_run_returns_is_a_valid_objective() -> None:
    cfg = with_values("finetune")
    names = finetune.metric_names(cfg)
    for objective in (
        "final/reward/total",
        "final/reward/realism",  # the default reward's critic term
        "final/reward/tonic",
        "final/policy/distinct_share",
        "eval/interval_l1",
        "eval/critic_accuracy",
        "eval/notes_in_motif_per_onset",
        "eval/reference_logp_per_onset",
        "reward/total",
        "losses/td",
        "charts/steps_per_s",
        "constraint/tonic/multiplier",
    ):
        cfg.objective = objective
        preflight("finetune", cfg, names)


def test_reward_terms_follow_the_configured_reward() -> None:
    default = finetune.metric_names(with_values("finetune"))
    literal = finetune.metric_names(composed("finetune", ["reward=rl_tuner"]))
    assert "final/reward/realism" in default and "final/reward/realism" not in literal
    extra = composed("finetune", ["reward=rl_tuner", "+reward.extra.mine={name: key}"])
    assert "final/reward/mine" in finetune.metric_names(extra)
    assert "final/reward/prior" not in default  # the prior is the KL reference, not a term


def test_the_eval_names_are_the_evaluations_rows() -> None:
    """The end-of-run evaluation's rows, computed on real samples, are exactly the eval/*
    names the preflight accepts (plus the start model's log p and the critic test's row)."""
    generator = tiny_lstm(0)
    tokens, logp = sample_seeded(generator, 8, 16, 0)
    reference = list(sample_seeded(tiny_lstm(1), 8, 16, 1)[0])
    produced = {REFERENCE_LOGP_METRIC, CRITIC_METRIC}
    # the melody vocabulary's tokens are valid chorale tokens too: 16 tokens, 4 four-voice steps
    for encoding in (MelodyEncoding(), ChoraleEncoding()):
        evaluation = evaluate_samples("tuned", tokens, encoding, logp, generator, reference)
        produced |= set(evaluation_metrics(evaluation))
    assert finetune.eval_metric_names() == produced


def test_compare_objectives_are_per_model() -> None:
    cfg = composed("compare", ["+models.tuned=heldout", "critic.enabled=false"])
    names = compare_metric_names(cfg)
    assert "tuned/distinct share" in names and "tuned/" not in names
    assert "critic/critic sanity: held-out vs held-out" not in names  # no critic test: no row
    assert "critic/x" in compare_metric_names(composed("compare", ["+models.tuned=heldout"]))


def test_metric_names_describe_every_family_on_one_line() -> None:
    names = MetricNames(frozenset({"final/a", "final/b", "x"}), {"losses/": None})
    assert names.describe() == "final/{a, b}; x; losses/<name>"


def test_a_direct_run_checks_too(tmp_path: Path) -> None:
    """A task's run(cfg), outside the CLI, makes the same checks (as a ValueError)."""
    from rlmusic.tasks import sample

    cfg = composed("sample", ["n=0", f"out={tmp_path}"])
    with pytest.raises(ConfigError, match="need n >= 1"):
        sample.run(cfg)
    assert not any(tmp_path.iterdir())


def test_objectives_of_the_shipped_recipes_pass() -> None:
    """The objectives conf/ sets (finetune's default, the experiments, the Optuna search)."""
    for overrides in (
        [],
        ["experiment=kl_grid"],
        ["experiment=realism_frontier"],
        ["hparams_search=finetune_optuna"],
    ):
        cfg = composed("finetune", overrides)
        preflight("finetune", cfg, finetune.metric_names(cfg))


@pytest.mark.parametrize(
    "args",
    [["data", "data.seed=1"], ["compare", "+data.seed=1"], ["finetune", "final_eval.data_seed=3"]],
    ids=["data.seed", "+data.seed", "final_eval.data_seed"],
)
def test_a_renamed_key_names_its_heir(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run_main(args, capsys)
    assert_one_line(code, lines, "was renamed", "data.split_seed")
