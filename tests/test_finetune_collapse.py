"""Guard: the default `rlmusic finetune` stays near the supervised model and keeps playing.

Runs the task's own entry point with the shipped defaults (conf/finetune.yaml, conf/algo/batched.yaml,
the default reward), changing only the run's size, and checks what a broken default destroys:

- the KL to the prior per token stays small (without KL control it doubles within these
  iterations, see ``KL_BOUND``) and the piece does not get busier than real melodies;
- the policy keeps its diversity, its entropy and its notes (the old PPO default collapsed to
  "tonic, then hold" within 20-30 iterations).
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module

from rlmusic.tasks import finetune

ITERATIONS = 20
BATCH = 128
# Measured at these settings (seed 0, CPU, reward=default): 0.025 nats per token and 13.4 onsets
# per piece with the defaults; with the KL control removed (algo.kl_coef=0 algo.kl_pitch_coef=null)
# 0.069 and 16.5: both bounds fail then.
KL_BOUND = 0.045
ONSETS_BOUND = 15  # real 32-step segments have 12-14 onsets; a busy policy farms per-note rules

SMALL_RUN = [
    f"algo.iterations={ITERATIONS}",
    f"algo.batch_size={BATCH}",
    f"algo.minibatch_size={BATCH // 2}",
    f"algo.group_size={BATCH // 2}",
    "algo.sample_every=0",
    "n_samples=1",
    "device=cpu",
]


def run_default(tmp_path: Path, extra: list[str]) -> dict[str, float]:
    with initialize_config_module(version_base="1.3", config_module="rlmusic.conf"):
        cfg = compose("finetune", overrides=[*SMALL_RUN, *extra])
    return finetune.run(cfg, output_dir=tmp_path / "run").metrics


def test_the_default_finetune_stays_near_the_prior_and_keeps_playing(tmp_path: Path) -> None:
    m = run_default(tmp_path, [])
    assert m["final/kl/prior_per_token"] < KL_BOUND
    assert m["final/policy/distinct_share"] >= 0.9
    assert 8 <= m["final/policy/onsets_per_piece"] <= ONSETS_BOUND  # the supervised model: ~12
    assert m["final/policy/entropy"] >= 0.5
