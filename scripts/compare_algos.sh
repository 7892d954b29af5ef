#!/usr/bin/env bash
# The RL Tuner table for the shipped Note LSTM before tuning and after each fine-tuning algorithm,
# side by side: the default `rlmusic finetune` (algo=batched, reward=rl_tuner), then SB3 PPO and
# RL Tuner's Q-learning on short budgets, then one `rlmusic evaluate` over 1,000 compositions of
# 32 steps (seed 0) with realism measures. Prints each run's wall time.
#
#   scripts/compare_algos.sh [OUT_DIR]        (default outputs/compare_algos)
#   RLMUSIC_SB3_SECONDS   budget of each SB3 run in seconds (default 300)
# The runs resume if OUT_DIR already holds them (re-running finishes an interrupted comparison).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$RLMUSIC_ROOT"
out=${1:-outputs/compare_algos}
sb3_seconds=${RLMUSIC_SB3_SECONDS:-300}

timed() {  # name, command...: run it and print its wall time
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "[compare] $name: $((SECONDS - start)) s wall" | tee -a "$out/wall_times.txt"
}

mkdir -p "$out"
timed batched rlmusic finetune "hydra.run.dir=$out/batched" sample_every=0
timed ppo rlmusic finetune algo=ppo "hydra.run.dir=$out/ppo" "time_s=$sb3_seconds" \
  algo.total_timesteps=150000
# epsilon decays over half of total_timesteps: size it to what the budget reaches (~70 steps/s)
timed rl_tuner rlmusic finetune algo=rl_tuner "hydra.run.dir=$out/rl_tuner" \
  "time_s=$sb3_seconds" algo.total_timesteps=20000
rlmusic evaluate "hydra.run.dir=$out/evaluate" checkpoint=pretrained:note_lstm \
  "compare_to=[$out/batched/tuned.safetensors,$out/ppo/tuned.safetensors,$out/rl_tuner/tuned.safetensors]" \
  n=1000 length=32 seed=0
cat "$out/wall_times.txt"
