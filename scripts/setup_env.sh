#!/usr/bin/env bash
# Create the project's virtual environment and install rlmusic into it. Idempotent: a second
# run installs nothing unless pyproject.toml changed. Sourced by demo.sh and test.sh.
#
#   RLMUSIC_VENV           where the venv lives (default: <repo>/.venv)
#   RLMUSIC_TORCH          the torch requirement installed first (default: torch==2.13.0)
#   RLMUSIC_TORCH_INDEX    an index URL for it, e.g. https://download.pytorch.org/whl/cu128 for
#                          CUDA 12.8 or .../whl/cpu for a CPU-only build on a machine without one
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
# the audio's SoundFont synthesiser: a wheel with no system library. --no-deps: it asks for
# PyAudio (live playback, unused here), which builds only with PortAudio's headers
if ! python -c "import tinysoundfont" >/dev/null 2>&1; then
  echo "[setup] installing tinysoundfont (--no-deps)"
  python -m pip install -q --no-deps "tinysoundfont>=0.3.7,<0.4"
fi
