#!/usr/bin/env bash
# The main job on the embedded default, end to end: set up, prepare the default corpus (cached
# after the first run), fine-tune the shipped Note LSTM on the default reward (RL Tuner's rules,
# the shipped discriminator, KL to the prior) with the fast batched trainer (the default 150
# iterations, on one thread: about 3 min on a shared 2-core machine), then evaluate the
# tuned model beside the supervised one on 1,000 compositions (about 20 s), compare them (and
# held-out melodies) in a report with intervals, plots, audio and the critic test (about 50 s,
# under 40 s once the critic's sanity and supervised rows are cached), and print where
# everything is. Times: docs/results/critic_test_speed.md.
#
#   RLMUSIC_DEMO_SECONDS   upper bound on the fine-tuning in seconds (default 600)
#   RLMUSIC_DEMO_DIR       run folder (default outputs/demo/<date_time>)
# Extra arguments are Hydra overrides for `rlmusic finetune` (e.g. algo.method=ppo seed=1).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$RLMUSIC_ROOT"
run=${RLMUSIC_DEMO_DIR:-outputs/demo/$(date +%Y-%m-%d_%H-%M-%S)}
seconds=${RLMUSIC_DEMO_SECONDS:-600}

echo "[demo] 1/4 corpus (music21's Essen, O'Neill's, Ryan's, Bach; cached after the first run)"
rlmusic data "hydra.run.dir=$run/data"
echo "[demo] 2/4 fine-tuning pretrained:note_lstm on reward=default (at most ${seconds} s)"
# one thread: on 2 shared cores torch's default two ran 20 iterations in 38-74 s, one in 30-31 s
rlmusic finetune "hydra.run.dir=$run/finetune" "time_s=$seconds" threads=1 "$@"
echo "[demo] 3/4 the RL Tuner table: tuned vs supervised, 1,000 compositions of 32 steps"
rlmusic evaluate "hydra.run.dir=$run/evaluate" "checkpoint=$run/finetune/tuned.safetensors" \
  "compare_to=[pretrained:note_lstm]" n=1000 length=32
echo "[demo] 4/4 the comparison report: supervised vs tuned vs held-out melodies, with intervals"
rlmusic compare "hydra.run.dir=$run/compare" "out=$run/compare" \
  models.supervised=pretrained:note_lstm "models.tuned=$run/finetune" models.held_out=heldout \
  n=1000 length=32

echo
echo "tuned model:  $run/finetune/tuned.safetensors  (rlmusic sample checkpoint=$run/finetune/tuned.safetensors)"
echo "samples:      $run/finetune/samples/final/*.mid"
echo "metrics:      $run/finetune/metrics.csv  (tensorboard --logdir $run/finetune/tb)"
echo "evaluation:   $run/evaluate/evaluation.json"
echo "report:       $run/compare/report.html  (report.md, metrics.json; rlmusic listen for a blind A/B page)"
