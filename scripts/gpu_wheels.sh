#!/usr/bin/env bash
# Wheels of the dependencies the GPU machines' image lacks, for Python 3.12 on x86-64, into .whl/
# (git-ignored through .git/info/exclude); scripts/gpu_check.sh installs them there offline.
# The image has torch, numpy, scipy, matplotlib, tqdm, safetensors, tensorboard, cloudpickle,
# pyyaml, requests, joblib (/work/.library/device/KINDS.md); these are the rest (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
NAMES=(hydra-core omegaconf gymnasium farama-notifications
    stable-baselines3 pretty_midi mido music21 chardet jsonpickle more-itertools webcolors
    midirenderer)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "${NAMES[@]}"
# omegaconf's parser runtime is published as an sdist only: built here (pure Python)
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls .whl
