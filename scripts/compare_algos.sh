#!/usr/bin/env bash
# The RL Tuner table for the shipped Note LSTM before tuning and after each fine-tuning algorithm,
# side by side: a thin wrapper around the experiment configs conf/experiment/compare_algos/*.yaml
# (the default batched run, SB3 PPO and RL Tuner's G-learning, each with its shipped settings,
# then one `rlmusic evaluate` over 1,000 compositions of 32 steps, seed 0). Prints each run's
# wall time.
#
#   scripts/compare_algos.sh [OUT_DIR]        (default outputs/compare_algos)
#   RLMUSIC_SB3_SECONDS   a time budget for the ppo run in seconds (default: its 150,000 steps)
# The runs resume if OUT_DIR already holds them (re-running finishes an interrupted comparison).
# Each step is also one command of its own: rlmusic finetune experiment=compare_algos/ppo, ...
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$RLMUSIC_ROOT"
export RLMUSIC_COMPARE_DIR=${1:-outputs/compare_algos}   # the experiments' run folders
out=$RLMUSIC_COMPARE_DIR
sb3=(${RLMUSIC_SB3_SECONDS:+"time_s=$RLMUSIC_SB3_SECONDS"})

timed() {  # name, command...: run it and print its wall time
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "[compare] $name: $((SECONDS - start)) s wall" | tee -a "$out/wall_times.txt"
}

mkdir -p "$out"
timed batched rlmusic finetune experiment=compare_algos/batched
timed ppo rlmusic finetune experiment=compare_algos/ppo "${sb3[@]}"
timed rl_tuner rlmusic finetune experiment=compare_algos/rl_tuner
rlmusic evaluate experiment=compare_algos/evaluate
cat "$out/wall_times.txt"
