"""A real Ray sweep (slow): a Ray cluster of two nodes on this machine (`ray start --head` on a
free port, and one worker node `ray start --address=...`, one CPU each) takes a 2-job
`rlmusic finetune -m` through `hydra/launcher=ray_cluster` at RAY_ADDRESS, and
`rlmusic sweep-report` reads it back. The nodes are `ray start --block` processes of this test,
stopped by their pids (not `ray stop`, which would stop every Ray on the machine)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import test_sweeps

# test_sweeps' fixture (two tiny checkpoints, a 12-tune corpus, a tiny run's overrides) and its
# `rlmusic sweep-report` in this process
sweep_inputs = test_sweeps.sweep_inputs
report = test_sweeps.report

BIN = Path(sys.executable).parent
RLMUSIC, RAY = BIN / "rlmusic", BIN / "ray"
# Each node's raylet waits a fixed 15 s for its dashboard agent's port files (Ray 2.5x;
# RAY_agent_register_timeout_ms does not reach that wait): on the 2 shared cores at load ~10 the
# agent's start took 20-40 s and the node died ("timed out during startup"). Another try then.
NODE_TRIES = 3

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_node(node: subprocess.Popen) -> None:
    """SIGTERM makes `ray start --block` stop the processes of its node; its session's
    process group goes down with SIGKILL if that takes over a minute."""
    if node.poll() is None:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(10)


def start_node(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """`ray start --block ARGS` once it says the node runs (up to NODE_TRIES tries)."""
    for attempt in range(1, NODE_TRIES + 1):
        if attempt > 1:
            tail = log.read_text()[-800:]
            warnings.warn(f"ray start: try {attempt} of {NODE_TRIES}:\n{tail}", stacklevel=2)
        with log.open("w") as out:
            node = subprocess.Popen(
                [str(RAY), "start", "--block", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group, for stop_node's last resort
            )
        deadline = time.monotonic() + 300
        while node.poll() is None and time.monotonic() < deadline:
            if "Ray runtime started" in log.read_text():
                return node
            time.sleep(1)
        stop_node(node)
    pytest.fail(
        f"`ray start {' '.join(args)}` failed {NODE_TRIES} times:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture(scope="module")
def ray_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a driver on the cluster (RAY_ADDRESS: the head, a worker node joined
    to it); both nodes stopped after the module."""
    if importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None or not RAY.exists():
        pytest.skip('Ray and hydra-ray-launcher are not installed (pip install "rlmusic[sweeps]")')
    logs = tmp_path_factory.mktemp("ray")
    # the nodes' sessions and their ray_current_cluster file in a folder of their own, not
    # /tmp/ray: a stale address there (SIGTERM leaves it; `ray stop` would not) makes a later
    # `ray.init()` join a dead cluster instead of starting one. Short: Ray's sockets live in it
    temp_dir = Path(tempfile.mkdtemp(prefix="rlm-ray-", dir="/tmp"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    node = [
        "--num-cpus=1",
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]
    # one authentication mode for every process: left unset, Ray 2.60 turns token auth on for
    # a head when ~/.ray/auth_token exists (a local `ray.init()` writes one) and off for a node
    # or a driver given an address, which the head then refuses ("InvalidAuthToken")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    nodes = []
    try:
        head = ["--head", f"--port={port}", "--include-dashboard=false", *node]
        nodes.append(start_node(head, logs / "head.log", env))
        nodes.append(start_node([f"--address={address}", *node], logs / "worker.log", env))
        yield {**env, "RAY_ADDRESS": address}
    finally:
        for started in reversed(nodes):
            stop_node(started)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_two_job_sweep_on_a_two_node_ray_cluster(
    ray_env: dict[str, str], sweep_inputs: dict, tmp_path: Path
) -> None:
    sweep = tmp_path / "ray"
    command = [
        str(RLMUSIC),
        "finetune",
        "-m",
        *sweep_inputs["tiny"],
        "threads=1",
        f"checkpoint={sweep_inputs['a']}",
        "algo.kl_coef=1,3",
        "objective=eval/interval_l1",
        "objective_direction=minimize",
        "hydra/launcher=ray_cluster",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(command, env=ray_env, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    # it joined the cluster rather than starting a Ray of its own (Ray names the head by this
    # machine's address, not 127.0.0.1)
    port = ray_env["RAY_ADDRESS"].rsplit(":", 1)[1]
    assert re.search(rf"Connecting to existing Ray cluster at address: \S+:{port}\b", output)

    for job in ("0", "1"):
        result = json.loads((sweep / job / "job_result.json").read_text())
        assert result["status"] == "ok" and result["value"] > 0
        assert (sweep / job / "tuned.safetensors").is_file()
    rows = report(sweep)  # `rlmusic sweep-report <sweep>`
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert {r["algo.kl_coef"] for r in rows} == {"1", "3"}
    markdown = (sweep / "sweep_report.md").read_text()
    assert "2 runs (2 finished, 0 failed or unfinished)" in markdown
    assert "ranked by `eval/interval_l1` (minimize" in markdown and "| algo.kl_coef |" in markdown
