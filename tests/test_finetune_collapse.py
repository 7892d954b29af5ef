"""Guard: the default `rlmusic finetune` stays near the supervised model and keeps playing.

Runs the task's own entry point with the shipped defaults (conf/finetune.yaml,
conf/algo/batched.yaml, the default reward), changing only the run's size and speed (a small
batch at a larger learning rate; the KL settings are the shipped ones), and checks what a broken
default destroys:

- the KL to the prior per token stays small (without KL control it is 8x the default's
  within these iterations, see ``KL_BOUND``) and the piece does not get busier than real
  melodies;
- the policy keeps its diversity, its entropy and its notes (the old PPO default collapsed to
  "tonic, then hold" within 20-30 iterations).
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module

from rlmusic.tasks import finetune

ITERATIONS = 10
BATCH = 64
LR = 3.2e-4  # 4x the default's: the run reaches where its KL control holds it in 10 iterations
# Measured at these settings (seed 0, CPU, 1 thread; reward=default with c 3, the constraints and
# realism at weight 2), the second row with `run_default(tmp_path, [those overrides])`:
#                                       final KL / token   onsets / piece
#   the defaults                              0.022             12.5
#   KL control removed                        0.185             20.2
#     (algo.kl_coef=0 algo.kl_pitch_coef=null)
#   the event KL removed (algo.kl_coef=0)     0.093             17.7
# Seeds 1 and 2: defaults 0.026 / 0.029 (onsets 14.0 / 13.3), KL removed 0.107 / 0.148 (15.0 /
# 17.8). The KL bound sits between with 2.5x margin on the default and 3.4x on the run without
# KL control; the onsets bound adds a second check that fails without it at seed 0.
KL_BOUND = 0.055
ONSETS_BOUND = 16  # real 32-step segments have 12-14 onsets; a busy policy farms per-note rules

SMALL_RUN = [
    f"algo.iterations={ITERATIONS}",
    f"algo.lr={LR}",
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
