#!/usr/bin/env bash
# Rebuild the shipped discriminator (rlmusic/critics/pretrained/discriminator.safetensors), exactly
# as shipped: a causal CNN trained for a fixed number of steps on real 32-step windows of the
# default corpus's train split (data=all, seed 0) against samples of pretrained:note_lstm.
# docs/finetuning.md records the runs that chose it; its validation figures are in the file's
# metadata (`python -c "from rlmusic.critics import read_critic_record as r;
# print(r('pretrained:discriminator', 'discriminator')['metrics'])"`).
#
#   THREADS  torch CPU threads (default 1: reproducible figures on a shared machine)
#   RUNS     where the run folder goes (default runs/pretrained)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$RLMUSIC_ROOT"
THREADS=${THREADS:-1}
RUNS=${RUNS:-runs/pretrained}
dest=rlmusic/critics/pretrained
mkdir -p "$dest"
# steps, not seconds: the same steps give the same weights on any machine (time_s only caps it)
rlmusic train-critic critic=discriminator data=all seed=0 device=cpu threads="$THREADS" \
  progress=false length=32 critic.fake.generators='[pretrained:note_lstm]' \
  critic.train.steps=1500 critic.train.time_s=null hydra.run.dir="$RUNS/discriminator"
cp "$RUNS/discriminator/critic.safetensors" "$dest/discriminator.safetensors"
echo "shipped: $dest/discriminator.safetensors"
