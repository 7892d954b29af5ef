"""scripts/gpu_check.sh, the prepared GPU run, works before a GPU appears: its CPU mode with tiny
sizes runs every step (docs/gpu.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_step_on_the_cpu(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GPU_CHECK_DEVICE": "cpu",
        "GPU_CHECK_QUICK": "1",
        "GPU_CHECK_THREADS": "1",
        "PYTHON": sys.executable,
        "OUT": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", "scripts/gpu_check.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = (tmp_path / "summary.txt").read_text().split("\n")
    steps = [line.split()[:2] for line in summary if line]
    assert steps == [
        [name, "ok"]
        for name in (
            "torch_device",
            "fast_suite",
            "finetune_default",
            "finetune_ppo",
            "finetune_rl_tuner",
            "throughput",
        )
    ]
    rows = json.loads((tmp_path / "throughput.json").read_text())
    assert [r["what"] for r in rows] == [
        "batched",
        "pretrain note_lstm",
        "pretrain music_transformer",
    ]
    assert all(r["tokens_per_s"] > 0 and r["device"] == "cpu" for r in rows)
    assert not list(tmp_path.glob("run_*"))  # checkpoints are not sent back
