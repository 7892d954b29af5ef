"""A real SLURM sweep (slow): the one-node cluster of scripts/local_slurm.sh (found running, or
started here and stopped after) takes a 2-job `rlmusic finetune -m` through
`hydra/launcher=slurm` (submitit, one job array), and `rlmusic sweep-report` reads it back.

It skips only where no cluster can come up: not root, or neither slurm nor apt-get. As root on
Debian it installs slurm-wlm and munge and must run."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import test_sweeps

# test_sweeps' fixture (two tiny checkpoints, a 12-tune corpus, a tiny run's overrides) and its
# `rlmusic sweep-report` in this process
sweep_inputs = test_sweeps.sweep_inputs
report = test_sweeps.report

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local_slurm.sh"
RLMUSIC = Path(sys.executable).with_name("rlmusic")  # the entry point a user runs

pytestmark = pytest.mark.slow


def local_slurm(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), command], capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def slurm_env() -> Iterator[dict[str, str]]:
    """The environment that reaches the local cluster (SLURM_CONF set)."""
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        pytest.skip('hydra-submitit-launcher is not installed (pip install "rlmusic[sweeps]")')
    running = local_slurm("status").returncode == 0
    if not running:
        if os.geteuid() != 0:
            pytest.skip("no local SLURM cluster: scripts/local_slurm.sh start needs root")
        if not (shutil.which("slurmctld") or shutil.which("apt-get")):
            pytest.skip("no local SLURM cluster: neither slurm-wlm nor apt-get to install it")
        started = local_slurm("start")
        assert started.returncode == 0, started.stdout + started.stderr
    export = local_slurm("env").stdout.strip()  # export SLURM_CONF=<dir>/slurm.conf
    env = {**os.environ, "SLURM_CONF": export.split("=", 1)[1]}
    try:
        yield env
    finally:
        if not running:  # leave a cluster someone else started as it was
            local_slurm("stop")


def test_a_two_job_sweep_on_the_local_slurm_cluster(
    slurm_env: dict[str, str], sweep_inputs: dict, tmp_path: Path
) -> None:
    sweep = tmp_path / "slurm"
    command = [
        str(RLMUSIC),
        "finetune",
        "-m",
        *sweep_inputs["tiny"],
        "threads=1",  # the local cluster does not bind a job to its cores (TaskPlugin=task/none)
        f"checkpoint={sweep_inputs['a']}",
        "algo.kl_coef=1,3",
        "objective=eval/interval_l1",
        "objective_direction=minimize",
        "hydra/launcher=slurm",
        "hydra.launcher.cpus_per_task=1",  # the shipped 4 is more than this node may have
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        f"hydra.sweep.dir={sweep}",
    ]
    # submitit waits on result files; a job killed before writing one would keep it waiting
    # (no accounting here for sacct to say so), hence the timeout
    done = subprocess.run(command, env=slurm_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    launcher = yaml.safe_load((sweep / "multirun.yaml").read_text())["hydra"]["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    # one job array of two: SLURM's job ids <array>_0 and <array>_1, each with submitit's logs
    ids = []
    for job in ("0", "1"):
        hydra = yaml.safe_load((sweep / job / ".hydra" / "hydra.yaml").read_text())["hydra"]
        ids.append(str(hydra["job"]["id"]))
        assert (sweep / ".submitit" / ids[-1] / f"{ids[-1]}_0_log.out").is_file()
        result = json.loads((sweep / job / "job_result.json").read_text())
        assert result["status"] == "ok" and result["value"] > 0
        assert (sweep / job / "tuned.safetensors").is_file()
    (array,) = {i.split("_")[0] for i in ids}
    assert sorted(i.split("_")[1] for i in ids) == ["0", "1"]
    script = (sweep / ".submitit" / array / f"{array}_submission.sh").read_text()
    assert "#SBATCH --job-name=rlmusic-finetune" in script and "#SBATCH --cpus-per-task=1" in script

    rows = report(sweep)  # `rlmusic sweep-report <sweep>`
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)  # .submitit is no job
    assert {r["algo.kl_coef"] for r in rows} == {"1", "3"}
    markdown = (sweep / "sweep_report.md").read_text()
    assert "2 runs (2 finished, 0 failed or unfinished)" in markdown
    assert "ranked by `eval/interval_l1` (minimize" in markdown and "| algo.kl_coef |" in markdown
