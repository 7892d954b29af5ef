"""Composite, registry, user plug-ins by _target_, presets, and bad terms stopping the run."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module

from rlmusic.data.encoding import MelodyEncoding
from rlmusic.rewards import CompositeReward, RewardError, WeightedTerm, build_reward, build_term
from rlmusic.rewards.prior import PriorLogProb
from rlmusic.rewards.registry import default_context
from rlmusic.rewards.theory import PAPER_RULES, RULES, KeyRule
from tests.toy_generator import ToyGenerator

ENC = MelodyEncoding()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


PRESETS = ["rl_tuner", "rules_only", "key_only", "key_tonic", "basic", "basic_autocorr"]


def test_shares_add_up_to_the_total() -> None:
    reward = build_reward({"c": 0.5, "rules": list(RULES)}, ENC)
    tokens = np.random.default_rng(0).integers(0, 38, (16, 32))
    total, shares = reward.score(tokens)
    np.testing.assert_allclose(sum(shares.values()), total)
    np.testing.assert_allclose(shares["key"], 2.0 * KeyRule()(tokens))  # weight 1/c
    _, no_end = reward.score(tokens, include_sequence_level=False)
    assert not no_end["unique_extremes"].any() and not no_end["autocorrelation"].any()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda t: np.full(t.shape, np.nan), "'broken' returned 32 non-finite values"),
        (lambda t: np.zeros((t.shape[0],)), r"'broken' returned shape \(2,\), expected \(2, 16\)"),
    ],
)
def test_a_bad_term_stops_with_its_name(bad, message: str) -> None:
    composite = CompositeReward([WeightedTerm("key", KeyRule()), WeightedTerm("broken", bad)])
    tokens = np.ones((2, 16), dtype=int)
    with pytest.raises(RewardError, match=message):
        composite.score(tokens)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(
        RewardError,
        match=r"unknown reward term 'keyy'; known: autocorrelation, discriminator, ensemble, key, ",
    ):
        build_term("keyy", default_context(ENC))
    with pytest.raises(RewardError, match="rule_params names rules that are not in reward.rules"):
        build_reward({"rules": ["key"], "rule_params": {"tonic": {"reward": 1}}}, ENC)
    with pytest.raises(RewardError, match="no module named 'nowhere'|cannot import 'nowhere'"):
        build_term({"_target_": "nowhere.term"}, default_context(ENC))


ROOT = Path(__file__).resolve().parents[1]
DOCS = [("README.md", "## Your own reward"), ("docs/rewards.md", "## Custom rewards")]


def doc_example(name: str, heading: str) -> tuple[str, str]:
    """A Custom rewards section's code block and its ``+reward.extra...`` override, as shown."""
    section = (ROOT / name).read_text().split(heading, 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    override = re.search(r"'(\+reward\.extra\.[^']+)'", section)
    assert override, f"{name}: no '+reward.extra...' override in the {heading} section"
    return code, override.group(1)


@pytest.mark.parametrize(("name", "heading"), DOCS, ids=[d[0] for d in DOCS])
def test_a_user_term_from_a_module_outside_the_package(
    name: str, heading: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (ROOT / name).exists():
        pytest.skip(f"{name} is not in this checkout")
    code, override = doc_example(name, heading)
    (tmp_path / "my_rewards.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_rewards", raising=False)
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("list_rewards", overrides=["reward=key_only", override])
    reward = build_reward(cfg.reward, ENC)
    assert reward.names == ["key", "stepwise"]
    total, shares = reward.score(np.array([[14, 16, 1, 18, 37]]))
    assert shares["stepwise"].tolist() == [[0.0, 0.5, 0.0, 0.0, 0.0]]  # hold breaks adjacency
    assert sys.modules["my_rewards"].__file__ == str(tmp_path / "my_rewards.py")


def test_a_user_class_by_target_gets_the_encoding_and_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_class_term.py").write_text(
        "import numpy as np\n\n"
        "class Busy:\n"
        "    def __init__(self, encoding, bonus=1.0):\n"
        "        self.encoding, self.bonus = encoding, bonus\n"
        "    def __call__(self, tokens):\n"
        "        return self.bonus * (tokens >= self.encoding.FIRST_PITCH_TOKEN)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = {"_target_": "my_class_term.Busy", "bonus": 0.25, "weight": 2.0}
    reward = build_reward({"extra": {"busy": spec}}, ENC)
    assert reward.terms[0].term.encoding == ENC and reward.terms[0].weight == 2.0
    assert reward.score(np.array([[14, 1, 0, 16]]))[0].tolist() == [[0.5, 0.0, 0.0, 0.5]]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_builds(preset: str) -> None:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("list_rewards", overrides=[f"reward={preset}", "reward.prior=null"])
    reward = build_reward(cfg.reward, ENC)
    assert reward.names[0] == "key"
    assert all(t.weight == 2.0 for t in reward.terms)


def test_rl_tuner_preset_is_all_nine_plus_the_prior() -> None:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("list_rewards", overrides=["reward=rl_tuner"])
    assert list(cfg.reward.rules) == list(PAPER_RULES)  # RULES also holds the band-only onsets
    assert cfg.reward.c == 0.5 and cfg.reward.prior.weight == 1.0
    assert cfg.reward.prior.checkpoint == "start"  # the model the run starts from


def test_a_start_prior_needs_a_start_model() -> None:
    reward_cfg = {"rules": ["key"], "prior": {"checkpoint": "start", "weight": 1.0}}
    with pytest.raises(RewardError, match="prior.checkpoint=start"):
        build_reward(reward_cfg, ENC)
    reward = build_reward(reward_cfg, ENC, start_checkpoint="pretrained:note_lstm")
    assert reward.names == ["key", "prior"]


def test_prior_term_is_log_p_in_one_batched_pass() -> None:
    model = ToyGenerator()
    tokens = np.random.default_rng(1).integers(0, 38, (4, 12))
    values = PriorLogProb(model)(tokens)
    with torch.no_grad():
        logits = model(torch.cat([torch.full((4, 1), 38), torch.as_tensor(tokens[:, :-1])], 1))
        expected = torch.log_softmax(logits, -1).gather(-1, torch.as_tensor(tokens)[..., None])[
            ..., 0
        ]
    np.testing.assert_allclose(values, expected.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="outside the prior's vocabulary"):
        PriorLogProb(model)(np.array([[40]]))


def test_prior_runs_one_forward_for_the_whole_batch() -> None:
    model = ToyGenerator()
    calls = []
    forward = model.forward
    model.forward = lambda tokens: calls.append(tokens.shape) or forward(tokens)
    PriorLogProb(model)(np.random.default_rng(2).integers(0, 38, (64, 32)))
    assert calls == [(64, 32)]


def test_prior_term_from_a_checkpoint_and_its_encoding_check(tmp_path: Path) -> None:
    models = pytest.importorskip("rlmusic.models")
    if not hasattr(models, "save_checkpoint"):
        pytest.skip("rlmusic.models has no checkpoints yet")
    model = models.NoteLSTM(models.LSTMConfig(embed_dim=8, hidden_size=8, num_layers=1))
    path = models.save_checkpoint(tmp_path / "prior.pt", model, ENC)
    reward = build_reward({"rules": ["key"], "prior": {"checkpoint": str(path)}}, ENC)
    assert reward.names == ["key", "prior"] and reward.terms[1].weight == 1.0
    total, shares = reward.score(np.random.default_rng(3).integers(0, 38, (3, 8)))
    assert (shares["prior"] < 0).all() and total.shape == (3, 8)
    other = MelodyEncoding(min_pitch=36, max_pitch=71)  # 38 tokens, other pitches
    with pytest.raises(RewardError, match="another token grid .* must share the token grid"):
        build_reward({"rules": ["key"], "prior": {"checkpoint": str(path)}}, other)
    wide = MelodyEncoding(min_pitch=36, max_pitch=95)
    with pytest.raises(RewardError, match="has vocab_size 38 but the reward's encoding has 62"):
        build_reward({"rules": ["key"], "prior": {"checkpoint": str(path)}}, wide)


def test_rewards_task_lists_every_term(capsys: pytest.CaptureFixture[str]) -> None:
    from rlmusic.rewards.registry import known_terms
    from rlmusic.tasks.rewards import run

    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("list_rewards", overrides=["reward=basic"])
    listed = run(cfg)
    out = capsys.readouterr().out
    assert listed == known_terms()
    for name, description in known_terms().items():
        assert f"{name}  " in out and description in out
    assert "rules ['key', 'tonic', 'tonic_end', 'repetition']" in out


def test_prior_incremental_path_matches_the_whole_sequence() -> None:
    term = PriorLogProb(ToyGenerator())
    tokens = np.random.default_rng(4).integers(0, 38, (5, 20))
    whole = term(tokens)
    state = None
    for t in range(3, 20):  # from a 3-step primer on, one token at a time
        values, state = term.score_last(tokens[:, : t + 1], state)
        np.testing.assert_allclose(values, whole[:, t], rtol=1e-5, atol=1e-5)
    values, _ = term.score_last(tokens[:2, :4], state)  # a new, shorter batch starts over
    np.testing.assert_allclose(values, whole[:2, 3], rtol=1e-5, atol=1e-5)


def test_score_last_is_the_last_column_of_score() -> None:
    reward = build_reward({"rules": list(RULES)}, ENC)
    reward.terms.append(WeightedTerm("prior", PriorLogProb(ToyGenerator()), 1.0))
    tokens = np.random.default_rng(5).integers(0, 38, (6, 32))
    total, shares = reward.score(tokens)
    state: dict = {}
    for t in range(32):
        last, last_shares = reward.score_last(tokens[:, : t + 1], t == 31, state)
        expected = reward.score(tokens[:, : t + 1], include_sequence_level=t == 31)
        np.testing.assert_allclose(last, expected[0][:, -1], rtol=1e-5, atol=1e-5)
        for name, share in last_shares.items():
            np.testing.assert_allclose(share, shares[name][:, t], rtol=1e-5, atol=1e-5)
    with pytest.raises(RewardError, match="'broken' returned shape"):
        CompositeReward([WeightedTerm("broken", lambda t: t[:, :1] * 1.0)]).score_last(
            tokens[:, :4], False, {}
        )
