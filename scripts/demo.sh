#!/usr/bin/env bash
# The main job on the embedded default corpus: set up, then prepare the corpus and print its
# summary. Extra arguments are Hydra overrides for `rlmusic data` (e.g. data=essen).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$RLMUSIC_ROOT"
rlmusic data "$@"
