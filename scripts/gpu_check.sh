#!/usr/bin/env bash
# The GPU run the project owes (docs/gpu.md), in one short script: under 8 minutes on one GPU.
#
#   scripts/gpu_check.sh                                  # on a machine with a CUDA GPU
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_QUICK=1 GPU_CHECK_THREADS=1 PYTHON=python \
#       scripts/gpu_check.sh                          # tiny sizes, on the CPU: checks the script
#
# Steps (each under its own timeout; a failing step is reported and the next one runs):
#   1. nvidia-smi, torch's view of the GPU and the autocast every trainer chooses on it;
#   2. the fast suite with CUDA visible (quick: tests/test_cuda_branches.py only);
#   3. short fine-tunes on the device: the default (algo=batched), algo=ppo, algo=rl_tuner;
#   4. scripts/bench_devices.py: the batched trainer's and pretraining's tokens/s, CPU and GPU.
# Writes summary.txt, one log a step and throughput.json under $OUT (else runs/gpu_check).
# A machine without the project's dependencies installs wheels carried in .whl/ first
# (scripts/gpu_wheels.sh downloads them; docs/gpu.md).
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=${GPU_CHECK_DEVICE:-cuda}
QUICK=${GPU_CHECK_QUICK:-0}
DEST=${OUT:-runs/gpu_check}
PY=${PYTHON:-python3}
THREADS=${GPU_CHECK_THREADS:-}  # torch CPU threads (unset: torch's default)
mkdir -p "$DEST"
: >"$DEST/summary.txt"
export PYTHONUNBUFFERED=1

if [ -d .whl ] && ! "$PY" -c "import hydra, gymnasium, stable_baselines3, music21" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$PY" -c "import rlmusic.envs" 2>/dev/null; then  # the package itself, offline
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir . \
        ${PYTHONPATH:+--target /tmp/site} || echo "could not install rlmusic" >>"$DEST/summary.txt"
fi

# step NAME SECONDS COMMAND...: run it, log it, record "NAME ok|FAILED(rc) Ns" in summary.txt
step() {
    local name=$1 limit=$2 started rc
    shift 2
    echo "== $name: $*"
    started=$(date +%s)
    timeout "$limit" "$@" >"$DEST/$name.log" 2>&1
    rc=$?
    tail -n 4 "$DEST/$name.log"
    if [ $rc -eq 0 ]; then rc=ok; else rc="FAILED($rc)"; fi
    echo "$name $rc $(($(date +%s) - started))s" | tee -a "$DEST/summary.txt"
}

if [ "$QUICK" = 1 ]; then
    SUITE=(tests/test_cuda_branches.py)
    BATCHED=(algo.iterations=2 algo.batch_size=16 algo.minibatch_size=8 algo.group_size=8)
    PPO=(algo.total_timesteps=256 algo.n_steps=32 algo.n_envs=4 algo.batch_size=64)
    TUNER=(algo.total_timesteps=512 algo.n_envs=8 algo.batch_size=64)
    BENCH=(--quick --seconds 2)
else
    SUITE=(tests)
    BATCHED=(algo.iterations=20)
    PPO=(algo.total_timesteps=16384)
    TUNER=(algo.total_timesteps=65536)
    BENCH=(--seconds 10)
fi
FT=(device="$DEVICE" n_samples=1 algo.sample_every=0)
if [ -n "$THREADS" ]; then
    FT+=(threads="$THREADS")
    BENCH+=(--threads "$THREADS")
fi

if [ "$DEVICE" != cpu ]; then
    step nvidia_smi 30 nvidia-smi
fi
step torch_device 60 "$PY" -c "
import torch
from rlmusic.runtime import choose_autocast, resolve_device
d = resolve_device('$DEVICE')
print('torch', torch.__version__, 'device', d)
if d.type == 'cuda':
    print(torch.cuda.get_device_name(d), 'capability', torch.cuda.get_device_capability(d),
          'native bf16', torch.cuda.is_bf16_supported(including_emulation=False))
print('batched/pretraining autocast:', choose_autocast(d).name,
      '| rl_tuner auto:', choose_autocast(d, 'auto', native_cpu_bf16=True).name)"
step fast_suite 200 "$PY" -m pytest -q -x -m "not slow" -p no:cacheprovider "${SUITE[@]}"
step finetune_default 90 "$PY" -m rlmusic.cli finetune "${FT[@]}" "${BATCHED[@]}" \
    hydra.run.dir="$DEST/run_default"
step finetune_ppo 90 "$PY" -m rlmusic.cli finetune algo=ppo "${FT[@]}" "${PPO[@]}" \
    hydra.run.dir="$DEST/run_ppo"
step finetune_rl_tuner 90 "$PY" -m rlmusic.cli finetune algo=rl_tuner "${FT[@]}" "${TUNER[@]}" \
    hydra.run.dir="$DEST/run_rl_tuner"
DEVICES=cpu
[ "$DEVICE" != cpu ] && DEVICES=cpu,$DEVICE
step throughput 200 "$PY" scripts/bench_devices.py --devices "$DEVICES" "${BENCH[@]}" \
    --json "$DEST/throughput.json"
rm -rf "$DEST"/run_*  # checkpoints and samples: not wanted back (the logs hold the metrics)

echo "== summary ($DEST/summary.txt)"
cat "$DEST/summary.txt"
! grep -q FAILED "$DEST/summary.txt"
