"""RL Tuner over many compositions at once (algo=rl_tuner): acting, gradient steps, runs, resume."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rlmusic.algos.finetune_setup import build_setup
from rlmusic.algos.harness import RESUME_FILE
from rlmusic.algos.rl_tuner.acting import act, policy_logits
from rlmusic.algos.rl_tuner.config import RLTunerConfig
from rlmusic.algos.rl_tuner.targets import piece_targets
from rlmusic.algos.rl_tuner.trainer import RLTunerTrainer
from rlmusic.models import MusicTransformer, TransformerConfig, load_generator
from rlmusic.models.base import sequence_log_probs, with_bos
from rlmusic.models.sampling import sample_seeded
from rlmusic.tasks import finetune
from tests.conftest import compose_finetune, make_tiny_checkpoint, tiny_lstm
from tests.sb3_helpers import RL_TUNER_TERMS, Crash, assert_same_weights, kill_9_then_resume

LENGTH = 8


def zero_reward(tokens: np.ndarray, prior: np.ndarray | None):
    return np.zeros(tokens.shape), {}


def trainer(variant: str = "q", **options: object) -> RLTunerTrainer:
    values = dict(variant=variant, n_envs=8, batch_size=16, length=LENGTH, precision="fp32")
    values.update(options)
    return RLTunerTrainer(tiny_lstm(0), zero_reward, RLTunerConfig(**values), prior=tiny_lstm(1))


# ---- acting --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["q", "psi", "g"])
def test_greedy_acting_plays_the_argmax_of_the_variants_policy(variant: str) -> None:
    q_net, prior = tiny_lstm(0).eval(), tiny_lstm(1).eval()
    rng = torch.Generator().manual_seed(0)
    played = act(q_net, 16, LENGTH, variant, rng, [0.0] * LENGTH, prior, psi_temperature=0.5)
    with torch.no_grad():  # the whole pieces, recomputed in one pass
        values = q_net(with_bos(played.tokens, q_net.bos_token))
        prior_lp = F.log_softmax(prior(with_bos(played.tokens, prior.bos_token)), -1)
    logits = policy_logits(variant, values, prior_lp, psi_temperature=0.5)
    assert torch.equal(played.tokens, logits.argmax(-1)) and played.explored == 0.0
    torch.testing.assert_close(played.prior_log_probs, prior_lp, rtol=0, atol=1e-5)


def test_epsilon_one_plays_uniform_notes() -> None:
    played = act(tiny_lstm().eval(), 2000, 2, "q", torch.Generator().manual_seed(0), [1.0, 1.0])
    counts = np.bincount(played.tokens.flatten().numpy(), minlength=38)
    assert counts.min() > 0.6 * counts.mean() and played.explored > 0.9


@pytest.mark.parametrize("variant, temperature", [("q", 2.0), ("psi", 0.5), ("g", 1.0)])
def test_boltzmann_plays_and_stores_samples_of_the_policy(variant: str, temperature: float) -> None:
    """The first note's frequencies match the policy at BOS: the note played is sampled there,
    not the argmax (the original stored the argmax)."""
    q_net, prior = tiny_lstm(0).eval(), tiny_lstm(1).eval()
    gen = torch.Generator().manual_seed(0)
    played = act(q_net, 20_000, 2, variant, gen, None, prior, temperature, temperature)
    with torch.no_grad():
        bos = torch.full((1, 1), q_net.bos_token)
        logits = policy_logits(variant, q_net(bos)[0, 0], F.log_softmax(prior(bos)[0, 0], -1), 0.5)
    scale = temperature if variant == "q" else 1.0
    expected = F.softmax(logits / scale, -1).numpy()
    frequencies = np.bincount(played.tokens[:, 0].numpy(), minlength=38) / 20_000
    assert np.abs(frequencies - expected).max() < 0.015
    assert played.explored > 0.5  # a near-uniform tiny net: mostly off its argmax


def test_a_transformer_acts_from_its_kv_cache_and_learns() -> None:
    """Any generator is a Q-network: the Music Transformer acts with its KV cache."""
    torch.manual_seed(0)
    config = TransformerConfig(d_model=16, n_heads=2, n_layers=2, d_ff=32, dropout=0.1)
    net, prior = MusicTransformer(config).eval(), MusicTransformer(config).eval()
    played = act(net, 8, LENGTH, "g", torch.Generator().manual_seed(0), [0.0] * LENGTH, prior)
    with torch.no_grad():
        inputs = with_bos(played.tokens, net.bos_token)
        logits = net(inputs) + F.log_softmax(prior(inputs), -1)
    assert torch.equal(played.tokens, logits.argmax(-1))
    settings = RLTunerConfig(variant="g", n_envs=8, batch_size=16, length=LENGTH, precision="fp32")
    tr = RLTunerTrainer(net, zero_reward, settings, prior=prior)
    before = net.head.weight.clone()
    tr.round()
    assert tr.gradient_steps == settings.gradient_steps_due(8 * LENGTH) > 0
    assert not torch.equal(before, net.head.weight)


# ---- one gradient step ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["q", "psi", "g"])
def test_a_gradient_step_regresses_on_the_target_networks_backup(variant: str) -> None:
    tr = trainer(variant, tau=0.25, gamma=0.5, psi_temperature=0.7)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 38, (4, LENGTH), generator=gen)
    rewards = torch.randn(4, LENGTH, generator=gen)
    prior_lp = F.log_softmax(torch.randn(4, LENGTH, 38, generator=gen), -1)
    tr.replay.add(tokens, rewards, prior_lp if variant == "g" else None)
    with torch.no_grad():  # make the target differ from the online net, then read both
        for p in tr.target_network.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    before = {k: v.clone() for k, v in tr.target_network.state_dict().items()}
    draw = tr.replay_rng.get_state()
    batch = tr.replay.sample(2, torch.Generator().set_state(draw))
    with torch.no_grad():
        inputs = with_bos(batch.tokens, 38)
        y = piece_targets(
            variant,
            batch.rewards,
            0.5,
            tr.target_network(inputs),
            prior_log_probs=batch.prior_log_probs,
            psi_temperature=0.7,
        )
        q = tr.q_network(inputs).gather(-1, batch.tokens[..., None])[..., 0]
    stats = tr.gradient_step()
    assert stats["losses/td"] == pytest.approx(float(((q - y) ** 2).mean()), rel=1e-5)
    assert stats["losses/target_mean"] == pytest.approx(float(y.mean()), rel=1e-5, abs=1e-6)
    online = tr.q_network.state_dict()
    for name, value in tr.target_network.state_dict().items():  # Polyak, tau = 0.25
        expected = 0.75 * before[name] + 0.25 * online[name]
        torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6, msg=name)


def test_training_runs_with_dropout_off() -> None:
    """The online net trains in the mode its targets and its acting use (docs: Dropout)."""
    tr = RLTunerTrainer(
        tiny_lstm(0, num_layers=2, dropout=0.5),
        zero_reward,
        RLTunerConfig(n_envs=4, batch_size=16, length=LENGTH, precision="fp32"),
        prior=tiny_lstm(1),
    )
    tr.replay.add(torch.randint(0, 38, (4, LENGTH)), torch.randn(4, LENGTH))
    state = tr.replay_rng.get_state()
    first = tr.gradient_step()["losses/td"]
    assert not tr.q_network.training and not tr.target_network.training
    again = RLTunerTrainer(
        tiny_lstm(0, num_layers=2, dropout=0.5),
        zero_reward,
        RLTunerConfig(n_envs=4, batch_size=16, length=LENGTH, precision="fp32"),
        prior=tiny_lstm(1),
    )
    again.replay.load_state_dict(tr.replay.state_dict())
    again.replay_rng.set_state(state)
    assert again.gradient_step()["losses/td"] == first  # no dropout noise: the same loss


def test_rounds_owe_exactly_the_replay_ratio_and_end_on_whole_pieces() -> None:
    tr = trainer(total_timesteps=300, n_envs=16, batch_size=24)
    sizes = []
    while tr.round_size():
        sizes.append(tr.round_size())
        tr.round()
        assert tr.gradient_steps == tr.config.gradient_steps_due(tr.env_steps)
    assert sizes == [16, 16, 6]  # 300 steps: 37.5 pieces of 8, rounded up to 38
    assert tr.env_steps == 304
    assert tr.gradient_steps * tr.config.batch_size <= 304 * 6.4 < (tr.gradient_steps + 1) * 24


# precision: tests/test_cuda_branches.py (rlmusic.runtime.choose_autocast's rule)


# ---- rlmusic finetune algo=rl_tuner ----------------------------------------------------------


def config(checkpoint: Path, variant: str = "q", **extra: object):
    overrides = [
        f"checkpoint={checkpoint}",
        "reward=rl_tuner",
        "algo=rl_tuner",
        f"algo.variant={variant}",
        "algo.total_timesteps=512",
        "algo.n_envs=16",
        "algo.batch_size=32",
        "algo.checkpoint_every=128",
        "algo.stats_every=256",
        "algo.stats_samples=16",
        "length=8",
        "n_samples=2",
        "device=cpu",
        *[f"{k}={v}" for k, v in {"algo.kl_coef": "null", **extra}.items()],  # w: the prior's
    ]
    return compose_finetune(overrides)


def test_finetune_writes_the_tuned_network_logs_and_samples(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    run = tmp_path / "run"
    result = finetune.run(config(tiny_checkpoint, **{"algo.sample_every": 256}), output_dir=run)
    assert result.steps == 512 and result.step_unit == "env_steps"
    tuned, _ = load_generator(str(result.tuned))
    start, _ = load_generator(str(tiny_checkpoint))
    assert any(not torch.equal(a, b) for a, b in zip(start.parameters(), tuned.parameters()))
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["env_steps"]) for r in rows] == [128, 256, 384, 512]  # one row per round
    columns = {f"reward/{term}" for term in RL_TUNER_TERMS} | {
        "reward/total",
        "losses/td",
        "losses/q_mean",
        "kl/prior_per_token",
        "policy/entropy",
        "charts/env_steps_per_s",
        "rollout/epsilon",
    }
    assert columns <= set(rows[0])
    # the logged total is the paper's reward: the rules / c plus log p_prior, per piece
    terms = sum(float(rows[-1][f"reward/{term}"]) for term in RL_TUNER_TERMS)
    assert float(rows[-1]["reward/total"]) == pytest.approx(terms)
    assert rows[1]["kl/prior_per_token"] and not rows[2]["kl/prior_per_token"]  # every 256
    assert list((run / "tb").glob("events.out.tfevents.*"))
    for folder in ("step_00000256", "step_00000512", "final"):
        assert len(list((run / "samples" / folder).glob("*.mid"))) == 2
    assert (run / RESUME_FILE).exists()


def test_same_seed_same_weights(tmp_path: Path, tiny_checkpoint: Path) -> None:
    cfg = config(tiny_checkpoint, "psi", **{"algo.exploration": "boltzmann"})
    a = finetune.run(cfg, output_dir=tmp_path / "a")
    b = finetune.run(cfg, output_dir=tmp_path / "b")
    assert_same_weights(a.tuned, b.tuned)
    other = finetune.run(config(tiny_checkpoint, "psi", seed=1), output_dir=tmp_path / "c")
    tuned_a, _ = load_generator(str(a.tuned))
    tuned_c, _ = load_generator(str(other.tuned))
    assert not torch.equal(tuned_a.head.weight, tuned_c.head.weight)


def crash_then_resume(cfg, run: Path, monkeypatch: pytest.MonkeyPatch):
    """Run ``cfg`` into ``run`` until it dies mid-round (after the resume point at 256 env
    steps), then run the same command again: the resumed run's result."""
    original = RLTunerTrainer.gradient_step

    def dying(self: RLTunerTrainer) -> dict[str, float]:
        if self.env_steps >= 384:
            raise Crash
        return original(self)

    monkeypatch.setattr(RLTunerTrainer, "gradient_step", dying)
    with pytest.raises(Crash):
        finetune.run(cfg, output_dir=run)
    monkeypatch.setattr(RLTunerTrainer, "gradient_step", original)
    return finetune.run(cfg, output_dir=run)


@pytest.mark.parametrize(
    "variant, exploration", [("q", "egreedy"), ("g", "boltzmann")], ids=["q-egreedy", "g-boltzmann"]
)
def test_resume_after_a_crash_ends_where_an_uninterrupted_run_ends(
    tmp_path: Path,
    tiny_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    variant: str,
    exploration: str,
) -> None:
    cfg = config(tiny_checkpoint, variant, **{"algo.exploration": exploration})
    straight = finetune.run(cfg, output_dir=tmp_path / "straight")
    resumed = crash_then_resume(cfg, tmp_path / "resumed", monkeypatch)
    assert resumed.resumed_from == 256
    assert_same_weights(resumed.tuned, straight.tuned)
    a, b = straight.extras["trainer"], resumed.extras["trainer"]
    for name in ("tokens", "rewards", "prior_log_probs"):
        x, y = getattr(a.replay, name), getattr(b.replay, name)
        assert (x is None) == (y is None) and (x is None or torch.equal(x, y)), name
    for x, y in zip(a.target_network.parameters(), b.target_network.parameters()):
        assert torch.equal(x, y)
    steps = [int(r["env_steps"]) for r in csv.DictReader(open(tmp_path / "resumed/metrics.csv"))]
    assert steps == [128, 256, 384, 512]  # the crashed round's row is gone, none twice


def test_constraints_move_once_per_round_and_resume_exactly(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    band = {
        "+reward.constraints.tonic.at_least": 0.5,
        "+reward.constraints.tonic.at_most": 0.6,
        "algo.apply_constraints": "true",
    }
    cfg = config(tiny_checkpoint, "g", **{"algo.exploration": "boltzmann", **band})
    straight = finetune.run(cfg, output_dir=tmp_path / "straight")
    rows = list(csv.DictReader(open(tmp_path / "straight/metrics.csv")))
    multipliers = [float(r["constraint/tonic/multiplier"]) for r in rows]
    assert len(set(multipliers)) == len(rows) == 4  # moved by every round's pieces
    assert float(rows[0]["constraint/tonic/at_least"]) == 0.5
    resumed = crash_then_resume(cfg, tmp_path / "resumed", monkeypatch)
    assert_same_weights(resumed.tuned, straight.tuned)  # the multipliers came back too
    again = list(csv.DictReader(open(tmp_path / "resumed/metrics.csv")))
    assert [float(r["constraint/tonic/multiplier"]) for r in again] == multipliers
    # the run folder refuses a run without them before its resume point is read
    with pytest.raises(ValueError, match="reward.constraints.tonic.at_least: 0.5 -> '<unset>'"):
        finetune.run(config(tiny_checkpoint, "g"), output_dir=tmp_path / "resumed")


def test_constraints_count_the_policys_own_pieces_not_the_exploring_ones(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlmusic.algos.constraints import RuleConstraints
    from rlmusic.models.sampling import sample_seeded

    seen: list[np.ndarray] = []
    update = RuleConstraints.update
    monkeypatch.setattr(
        RuleConstraints, "update", lambda self, t: seen.append(t) or update(self, t)
    )
    policies: list[np.ndarray] = []
    sampled = sample_seeded
    monkeypatch.setattr(
        "rlmusic.algos.outputs.sample_seeded",
        lambda model, n, *a, **k: policies.append(out := sampled(model, n, *a, **k)) or out,
    )
    band = {"+reward.constraints.tonic.at_least": 0.5, "algo.apply_constraints": "true"}
    eps = {"algo.exploration_initial_eps": 1.0, "algo.exploration_final_eps": 1.0}  # acts at random
    finetune.run(
        config(tiny_checkpoint, "q", **band, **eps, **{"algo.constraint_samples": 5}),
        output_dir=tmp_path / "run",
    )
    assert len(seen) == 4  # one move a round, on 5 pieces of the greedy policy's
    assert all(t.shape == (5, 8) for t in seen)
    ours = [tokens for tokens, _ in policies if len(tokens) == 5]
    assert len(ours) == 4 and all(np.array_equal(a, b) for a, b in zip(ours, seen))
    assert len({a.tobytes() for a in seen}) == 4  # a fresh seed each round


def test_a_spent_time_budget_stops_at_a_resume_point_and_continues(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    straight = finetune.run(config(tiny_checkpoint), output_dir=tmp_path / "straight")
    stopped = finetune.run(config(tiny_checkpoint, time_s=0), tmp_path / "run")
    assert stopped.steps == 0 and (tmp_path / "run" / RESUME_FILE).exists()
    resumed = finetune.run(config(tiny_checkpoint), output_dir=tmp_path / "run")
    assert resumed.resumed_from == 0 and resumed.steps == 512
    assert_same_weights(resumed.tuned, straight.tuned)
    again = finetune.run(config(tiny_checkpoint), output_dir=tmp_path / "run")
    assert again.resumed_from == 512 and again.seconds < 5  # a finished run: nothing to do
    assert_same_weights(again.tuned, straight.tuned)


def test_a_resume_point_of_another_kind_of_run_is_refused(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    run = tmp_path / "run"
    finetune.run(config(tiny_checkpoint, time_s=0), output_dir=run)
    with pytest.raises(ValueError, match="algo.variant: 'q' -> 'g'"):
        finetune.run(config(tiny_checkpoint, "g"), output_dir=run)
    changed = config(tiny_checkpoint, "g", allow_config_change=True)
    with pytest.raises(ValueError, match="variant 'q' \\(this run: 'g'\\)"):
        finetune.run(changed, output_dir=run)
    wider = config(tiny_checkpoint, **{"algo.n_envs": 8, "allow_config_change": True})
    with pytest.raises(ValueError, match="n_envs 16 \\(this run: 8\\)"):
        finetune.run(wider, output_dir=run)


def test_g_needs_a_prior_with_a_weight(tmp_path: Path, tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="algo.variant=g needs a prior with a weight > 0"):
        finetune.run(config(tiny_checkpoint, "g", **{"reward.prior": "null"}), tmp_path / "a")
    with pytest.raises(ValueError, match="got weight 0.0"):
        finetune.run(config(tiny_checkpoint, "g", **{"reward.prior.weight": 0}), tmp_path / "b")


@pytest.mark.parametrize("setting", ["reward.prior.weight", "algo.kl_coef"])
def test_each_variant_learns_on_its_reward_at_the_kl_weight(
    tmp_path: Path, tiny_checkpoint: Path, setting: str
) -> None:
    """Per step, q's replay holds w log p_prior + r_task, psi's log p_prior + r_task / w and g's
    r_task / w, with w the prior's weight or ``algo.kl_coef`` over it."""
    runs = {}
    for variant in ("q", "psi", "g"):
        cfg = config(tiny_checkpoint, variant, **{setting: 2.0})
        runs[variant] = finetune.run(cfg, output_dir=tmp_path / variant).extras["trainer"]
    assert all(tr.config.kl_coef == 2.0 for tr in runs.values())
    setup = build_setup(str(tiny_checkpoint), config(tiny_checkpoint).reward, tmp_path / "s")
    for variant, tr in runs.items():
        tokens = tr.replay.tokens[: len(tr.replay)]
        task = setup.reward.score(tokens.numpy())[0]
        paper = task + 2.0 * sequence_log_probs(tr.prior, tokens).numpy()
        expected = {"q": paper, "psi": paper / 2.0, "g": task / 2.0}[variant]
        np.testing.assert_allclose(tr.replay.rewards[: len(tr.replay)].numpy(), expected, atol=1e-4)


def test_epsilon_follows_the_env_step_count(tmp_path: Path, tiny_checkpoint: Path) -> None:
    cfg = config(tiny_checkpoint, **{"algo.exploration_fraction": 0.5})
    finetune.run(cfg, output_dir=tmp_path / "run")
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    # the last step of each round: 1.0 -> 0.1 over 256 env steps, 16 per vector step
    eps = [float(r["rollout/epsilon"]) for r in rows]
    expected = [1.0 - 0.9 * min(1.0, (s - 16) / 256) for s in (128, 256, 384, 512)]
    np.testing.assert_allclose(eps, expected, atol=1e-9)
    assert math.isclose(eps[-1], 0.1)


# ---- slow: a real kill -9, and each variant raising its own objective ----------------------


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_exactly(tmp_path: Path) -> None:
    checkpoint = make_tiny_checkpoint(tmp_path)
    overrides = [
        f"checkpoint={checkpoint}",
        "reward=rl_tuner",
        "algo=rl_tuner",
        "algo.variant=g",
        "algo.total_timesteps=20000",
        "algo.n_envs=16",
        "algo.batch_size=32",
        "algo.checkpoint_every=2000",
        "length=8",
        "n_samples=2",
        "device=cpu",
    ]
    kill_9_then_resume(tmp_path, overrides, RESUME_FILE)


SAMPLES = 1024


def own_objective(model: torch.nn.Module, setup, variant: str) -> np.ndarray:
    """Per piece: q ``sum r_task + w log p_prior`` (its reward); psi and g the KL-regularised
    return ``sum r_task - w (log pi - log p_prior)`` (c_T = w = 1: psi's entropy-regularised
    return is the same number)."""
    tokens, log_pi = sample_seeded(model, SAMPLES, 32, seed=4321)
    task = setup.reward.score(tokens)[0].sum(1)
    log_prior = setup.reference.log_probs(torch.as_tensor(tokens)).cpu().numpy().sum(1)
    w = setup.reference.weight
    if variant == "q":
        return task + w * log_prior
    return task - w * (log_pi.sum(1) - log_prior)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["q", "psi", "g"])
def test_a_short_run_raises_the_variants_own_objective(variant: str, tmp_path: Path) -> None:
    """65,536 env steps of the paper's settings otherwise (epsilon over half of them) from the
    shipped Note LSTM on reward=rl_tuner: ~30 s on one core."""
    overrides = [
        "checkpoint=pretrained:note_lstm",
        "reward=rl_tuner",
        "algo=rl_tuner",
        f"algo.variant={variant}",
        "algo.kl_coef=null",  # the paper's w: the reward's prior weight, 1
        "algo.total_timesteps=65536",
        "algo.sample_every=0",
        "n_samples=1",
        "device=cpu",
    ]
    cfg = compose_finetune(overrides)
    result = finetune.run(cfg, output_dir=tmp_path / "run")
    setup = build_setup(str(cfg.checkpoint), cfg.reward, tmp_path / "measure", device="cpu")
    start, _ = load_generator("pretrained:note_lstm")
    tuned, _ = load_generator(str(result.tuned))  # the trained policy (g: p_prior exp(G))
    before, after = own_objective(start, setup, variant), own_objective(tuned, setup, variant)
    stderr = float(np.sqrt(before.var() / len(before) + after.var() / len(after)))
    print(
        f"{variant}: objective per piece {before.mean():.2f} -> {after.mean():.2f} (se {stderr:.2f})"
    )
    assert after.mean() - before.mean() > 3 * stderr
