#!/usr/bin/env bash
# Set up, then run the test suite. Fast tests by default (a few minutes on 2 cores);
#   scripts/test.sh --slow     only the long ones (marked @pytest.mark.slow)
#   scripts/test.sh --all      everything
# Other arguments go to pytest.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
cd "$RLMUSIC_ROOT"
marker=()
case "${1:-}" in
  --slow) marker=(-m slow); shift ;;
  --all) marker=(-m "slow or not slow"); shift ;;
esac
python -m pytest "${marker[@]}" "$@"
