"""The scale-out acceptance suite, `pytest scaleout/`: real torchrun (DDP) jobs of the smoke
config on 127.0.0.1 with gloo, through the real `ryot stage3a` command. Two ranks end at one
process's loss, two "nodes" (two launches with --nnodes 2) make one job and node 0 writes, a
killed rank is a DEBUG with its rank named, and Ctrl-C leaves no process behind.

Each job starts torchrun and a torch interpreter per rank (10-20 s on 2 cores), so these live
beside the unit suite, not in it (its budget is 3 minutes); CI runs both.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ryot.train.trainer import Trainer
from tests.conftest import ROOT, SMOKE, default_sigint

CPU = torch.device("cpu")


def ryot(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # tests.sabotage, for the workers
    return subprocess.Popen(
        [sys.executable, "-m", "ryot", "stage3a", "--config", SMOKE, *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8",
        errors="replace", **popen,
    )  # fmt: skip


def finished(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def comparison(out: Path) -> dict:
    return json.loads((out / "comparison.json").read_text(encoding="utf-8"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a run folder's unique path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text(encoding="utf-8").split(") ", 1)[1][0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_two_ranks_end_at_the_single_process_loss(tmp_path, smoke_config):
    """The acceptance check: `--arms baseline --nproc-per-node 2` records world size 2 and ends
    within 1e-3 of one process's validation loss (measured: about 1e-9 apart, the reduction
    order)."""
    out = tmp_path / "ddp"
    code, log = finished(ryot("--arms", "baseline", "--nproc-per-node", "2", "--out", str(out)))
    assert code == 0, log[-3000:]
    c = comparison(out)
    result = c["runs"][0]["result"]
    assert result["world_size"] == 2 and result["backend"] == "gloo"
    assert c["distributed"]["world_size"] == 2 and c["distributed"]["median_skew_s"] >= 0
    assert len(result["rank_step_times"]) == 2
    single = Trainer(smoke_config, arm="baseline").run()
    assert result["val_loss"] == pytest.approx(single.val_loss, abs=1e-3)
    assert result["step_tokens"] == single.step_tokens  # every sample fed, as in one process
    assert (out / "checkpoints" / "baseline.pt").is_file()  # written once, by rank 0


@pytest.mark.slow
def test_two_nodes_on_loopback_make_one_job_and_node_0_writes(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    common = ["--arms", "baseline", "--nnodes", "2", "--rdzv-endpoint", endpoint,
              "--rdzv-timeout", "120"]  # fmt: skip
    node0 = ryot(*common, "--node-rank", "0", "--out", str(tmp_path / "node0"))
    node1 = ryot(*common, "--node-rank", "1", "--out", str(tmp_path / "node1"))
    (code0, log0), (code1, log1) = finished(node0), finished(node1)
    assert code0 == 0, log0[-3000:]
    assert code1 == 0, log1[-3000:]
    assert comparison(tmp_path / "node0")["runs"][0]["result"]["world_size"] == 2
    assert not (tmp_path / "node1").exists()  # node 0 judges and writes; node 1 writes nothing
    assert "node 0 judges and writes" in log1


@pytest.mark.slow
def test_a_killed_rank_is_debug_and_named(tmp_path):
    out = tmp_path / "killed"
    code, log = finished(ryot("--arms", "optimized", "--nproc-per-node", "2", "--out", str(out),
                              "--stack", "tests.sabotage:kills_rank_one_stack"))  # fmt: skip
    assert code == 3, log[-3000:]  # DEBUG
    run = comparison(out)["runs"][0]
    assert run["result"] is None and run["error"] == "rank 1 was killed by SIGKILL"
    assert not processes_naming(str(out.parent))


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_and_leaves_no_process(tmp_path):
    out = tmp_path / "interrupted"
    proc = ryot("--arms", "baseline", "--nproc-per-node", "2", "--out", str(out),
                "--stack", "tests.sabotage:hangs_in_every_arm",
                preexec_fn=default_sigint)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(processes_naming(str(out.parent))) < 4:
        time.sleep(0.5)  # the CLI, torchrun and its two ranks
    assert len(processes_naming(str(out.parent))) >= 4, "the job never started"
    time.sleep(2)  # the ranks are inside their first step, asleep
    proc.send_signal(signal.SIGINT)
    code, log = finished(proc, timeout=120)
    assert code == 130, log[-3000:]
    deadline = time.monotonic() + 30
    while processes_naming(str(out.parent)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_naming(str(out.parent)), log[-3000:]
    assert not out.exists()  # the interrupted run was set aside, never published
