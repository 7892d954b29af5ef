#!/usr/bin/env bash
# Create the project's virtual environment and install rlmusic into it. Idempotent: a second
# run installs nothing unless pyproject.toml changed. Sourced by demo.sh and test.sh.
#
#   RLMUSIC_VENV           where the venv lives (default: <repo>/.venv)
#   RLMUSIC_TORCH          the torch requirement installed first (default: torch==2.13.0)
#   RLMUSIC_TORCH_INDEX    an index URL for it, e.g. https://download.pytorch.org/whl/cu128 for
#                          CUDA 12.8 or .../whl/cpu for a CPU-only build on a machine without one
#   RLMUSIC_SWEEPS         non-empty: rlmusic[sweeps] too (Ray; scripts/test.sh --slow sets it)
# torch goes in first so that a GPU user's CUDA build (or the CPU build here) is kept: the
# package itself only asks for torch>=2.2.
set -euo pipefail
RLMUSIC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${RLMUSIC_VENV:-$RLMUSIC_ROOT/.venv}
python_bin=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv"
  "$python_bin" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

if ! python -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing ${RLMUSIC_TORCH:-torch==2.13.0}"
  python -m pip install -q ${RLMUSIC_TORCH_INDEX:+--index-url "$RLMUSIC_TORCH_INDEX"} "${RLMUSIC_TORCH:-torch==2.13.0}"
fi

stamp="$venv/.rlmusic-install-stamp"
want=$(cat "$RLMUSIC_ROOT/pyproject.toml" | python -c "import hashlib,sys; print(hashlib.sha1(sys.stdin.buffer.read()).hexdigest())")
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! python -c "import rlmusic" >/dev/null 2>&1; then
  echo "[setup] installing rlmusic (editable, with test tools)"
  python -m pip install -q -e "$RLMUSIC_ROOT[dev]"
  echo "$want" > "$stamp"
fi
# The slow suite's launchers (scripts/test.sh --slow and --all set RLMUSIC_SWEEPS=1): rlmusic[sweeps]
# adds Ray and its Hydra launcher, a large install the fast suite goes without. SLURM is the slow
# test's own business (scripts/local_slurm.sh installs it with apt-get).
if [ -n "${RLMUSIC_SWEEPS:-}" ]; then
  sweeps_stamp="$venv/.rlmusic-sweeps-stamp"
  if [ ! -f "$sweeps_stamp" ] || [ "$(cat "$sweeps_stamp")" != "$want" ] \
    || ! python -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('ray') and u.find_spec('hydra_plugins.hydra_ray_launcher')))"; then
    echo "[setup] installing rlmusic[sweeps] (Ray and its launcher, for the slow suite)"
    python -m pip install -q -e "${RLMUSIC_ROOT}[dev,sweeps]"
    echo "$want" > "$sweeps_stamp"
  fi
fi
# An earlier version of this script installed TinySoundFont with --no-deps (its PyAudio has no
# Linux wheel), which leaves `pip check` broken. rlmusic no longer uses it (midirenderer, a
# declared dependency, plays the SoundFont): remove that copy, never one whose PyAudio is there
if python -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('tinysoundfont') and not u.find_spec('pyaudio')))"; then
  echo "[setup] removing tinysoundfont (installed --no-deps by an earlier setup; unused now)"
  python -m pip uninstall -q -y tinysoundfont
fi
