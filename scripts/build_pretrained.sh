#!/usr/bin/env bash
# Rebuild the shipped pretrained checkpoints from scratch, exactly as shipped:
#   scripts/build_pretrained.sh            both (one after the other)
#   scripts/build_pretrained.sh lstm       NoteLSTM only
#   scripts/build_pretrained.sh transformer
# Each run trains on the default corpus (data=all, seed 0 split), keeps its run folder under
# $RUNS (resumable: re-running continues an interrupted training), then copies the best-by-valid
# weights to rlmusic/models/pretrained/<name>.safetensors and prints validation numbers against
# the unigram / bigram baselines (scripts/bench_models.py --eval).
#
#   THREADS  torch CPU threads (default 1: the shipped models were trained on a shared 2-core
#            machine, where one thread is faster than two; use more on an idle machine)
#   RUNS     where the run folders go (default runs/pretrained)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$RLMUSIC_ROOT"
THREADS=${THREADS:-1}
RUNS=${RUNS:-runs/pretrained}
which=${1:-all}
dest=rlmusic/models/pretrained
mkdir -p "$dest"

build_lstm() {
  # NoteLSTM 2x256: 5 epochs x 327 steps of 64 windows of 128 tokens (~12 min on one core)
  rlmusic pretrain model=lstm data=all seed=0 device=cpu threads="$THREADS" progress=false \
    train.epochs=5 train.batch_size=64 train.window=128 train.lr=2e-3 train.warmup_steps=200 \
    hydra.run.dir="$RUNS/note_lstm"
  cp "$RUNS/note_lstm/model.safetensors" "$dest/note_lstm.safetensors"
}

build_transformer() {
  # MusicTransformer 4 layers, d=128, 4 heads, relative attention over 64 distances:
  # 3 epochs x 594 steps of 64 windows of 64 tokens (~12 min on one core)
  rlmusic pretrain model=transformer data=all seed=0 device=cpu threads="$THREADS" progress=false \
    model.max_relative_position=64 \
    train.epochs=3 train.batch_size=64 train.window=64 train.lr=1e-3 train.warmup_steps=200 \
    hydra.run.dir="$RUNS/music_transformer"
  cp "$RUNS/music_transformer/model.safetensors" "$dest/music_transformer.safetensors"
}

case "$which" in
  lstm) build_lstm ;;
  transformer) build_transformer ;;
  all) build_lstm; build_transformer ;;
  *) echo "usage: $0 [lstm|transformer|all]" >&2; exit 2 ;;
esac
ls -l "$dest"
python scripts/bench_models.py --eval --threads "$THREADS"
