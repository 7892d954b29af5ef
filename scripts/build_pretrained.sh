#!/usr/bin/env bash
# Rebuild the shipped pretrained checkpoints from scratch, exactly as shipped: a thin wrapper
# around conf/experiment/pretrain_note_lstm.yaml, pretrain_music_transformer.yaml,
# pretrain_chorale_lstm.yaml, pretrain_chorale_transformer.yaml and
# pretrain_chorale_harmoniser.yaml.
#   scripts/build_pretrained.sh            the two melody models (one after the other)
#   scripts/build_pretrained.sh lstm       NoteLSTM only
#   scripts/build_pretrained.sh transformer
#   scripts/build_pretrained.sh chorales   the two chorale models (data=chorales)
#   scripts/build_pretrained.sh chorale_lstm | chorale_transformer
#   scripts/build_pretrained.sh chorale_harmoniser   (from the shipped chorale_lstm)
# Each run trains on the default corpus (data=all, seed 0 split), keeps its run folder under
# $RUNS (resumable: re-running continues an interrupted training), then copies the best-by-valid
# weights to rlmusic/models/pretrained/<name>.safetensors and prints validation numbers against
# the unigram / bigram baselines (scripts/bench_models.py --eval).
#
#   THREADS  torch CPU threads (default 1: the shipped models were trained on a shared 2-core
#            machine, where one thread is faster than two; use more on an idle machine)
#   RUNS     where the run folders go (default runs/pretrained, as in the experiments)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$RLMUSIC_ROOT"
THREADS=${THREADS:-1}
RUNS=${RUNS:-runs/pretrained}
which=${1:-all}
dest=rlmusic/models/pretrained
mkdir -p "$dest"

build() {  # experiment name, shipped name
  rlmusic pretrain "experiment=pretrain_$1" threads="$THREADS" hydra.run.dir="$RUNS/$2"
  cp "$RUNS/$2/model.safetensors" "$dest/$2.safetensors"
}

chorale() {  # shipped name: its validation numbers (result.json) after the copy
  build "$1" "$1"
  python -c 'import json, sys; r = json.load(open(sys.argv[1])); print(sys.argv[2], {k: r[k] for k in ("best_valid_nll", "valid_nll", "train_seconds", "step")})' \
    "$RUNS/$1/result.json" "$1"
}

case "$which" in
  lstm) build note_lstm note_lstm ;;
  transformer) build music_transformer music_transformer ;;
  all) build note_lstm note_lstm; build music_transformer music_transformer ;;
  chorale_lstm | chorale_transformer | chorale_harmoniser) chorale "$which"; ls -l "$dest"; exit 0 ;;
  chorales) chorale chorale_lstm; chorale chorale_transformer; ls -l "$dest"; exit 0 ;;
  *) echo "usage: $0 [lstm|transformer|all|chorales|chorale_lstm|chorale_transformer|chorale_harmoniser]" >&2; exit 2 ;;
esac
ls -l "$dest"
python scripts/bench_models.py --eval --threads "$THREADS"
