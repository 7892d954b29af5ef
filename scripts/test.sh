#!/usr/bin/env bash
# Set up, then run the test suite. Fast tests by default (a few minutes on 2 cores);
#   scripts/test.sh --slow     only the long ones (marked @pytest.mark.slow); installs Ray
#                              (rlmusic[sweeps]) and, as root, a local SLURM for their sweeps
#   scripts/test.sh --all      everything
# Other arguments go to pytest.
set -euo pipefail
# the slow suite's Ray sweep needs rlmusic[sweeps]; the fast one (CI) stays without Ray
case "${1:-}" in --slow | --all) export RLMUSIC_SWEEPS=1 ;; esac
. "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
# The browser tests (tests/test_browser_*.py) drive Debian's Chromium and skip without it:
# install it where we can (root with apt-get), and never fail the setup where we cannot.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing chromium (apt-get) for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } \
    || echo "[test] could not install chromium: the browser tests will skip"
fi
cd "$RLMUSIC_ROOT"
marker=()
case "${1:-}" in
  --slow) marker=(-m slow); shift ;;
  --all) marker=(-m "slow or not slow"); shift ;;
esac
python -m pytest "${marker[@]}" "$@"
