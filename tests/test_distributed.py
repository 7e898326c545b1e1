"""Each arm as a torchrun (DDP) job: the job-level logic (commands, checks before any run,
failure lines, a world of one), without launching anything. The real torchrun jobs are the
scale-out acceptance suite, `pytest scaleout/`."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace

import pytest
import torch

from ryot.experiment.launch import Launch, LaunchError, failure
from ryot.train.distributed import World, threads_per_rank
from ryot.train.stalls import process_cpu_s, sibling_ranks

CPU = torch.device("cpu")


# --- the job-level logic, without launching


def test_one_process_is_the_worker_itself_and_ranks_are_a_torchrun_job(tmp_path):
    job = tmp_path / "01-baseline.job.json"
    assert Launch().command(job, 1) == [sys.executable, "-m", "ryot.train.worker", str(job)]
    local = Launch(nproc_per_node=2).command(job, 1)
    assert local[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in local
    assert local[-3:] == ["-m", "ryot.train.worker", str(job)]
    nodes = Launch(2, nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500").command(job, 3)
    text = " ".join(nodes)
    assert "--rdzv-backend static --rdzv-endpoint 10.0.0.1:29500" in text
    assert "--nnodes 2 --node-rank 1" in text and "--rdzv-id ryot-run-3" in text


@pytest.mark.parametrize(
    "launch, message",
    [
        (Launch(nproc_per_node=3), "training.batch_size = 8 does not divide among 3 ranks"),
        (Launch(nproc_per_node=0), "--nproc-per-node: must be >= 1"),
        (Launch(nnodes=2), "--rdzv-endpoint: --nnodes 2 needs node 0's HOST:PORT"),
        (Launch(nnodes=2, node_rank=2, rdzv_endpoint="h:1"), "--node-rank: must be in [0, 1]"),
        (Launch(rdzv_endpoint="nohost"), "--rdzv-endpoint: expected HOST:PORT"),
    ],
)
def test_a_launch_that_cannot_work_is_refused_before_any_run(smoke_config, launch, message):
    with pytest.raises(LaunchError) as err:
        launch.check(smoke_config, CPU)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_torch_compile_under_ddp_is_refused_not_silently_dropped(smoke_config):
    o = smoke_config.optimizations
    compiled = replace(smoke_config, optimizations=o.replace(
        kernel_optimizer=replace(o.kernel_optimizer, level=3)))  # fmt: skip
    with pytest.raises(LaunchError, match="level = 3 .torch.compile. is not supported"):
        Launch(nproc_per_node=2).check(compiled, CPU)
    Launch().check(compiled, CPU)  # one process: compile as ever


def test_torchrun_failures_name_the_rank_and_why():
    two = Launch(nproc_per_node=2)
    killed = (
        "Failures:\n[1]:\n  rank      : 0 (local_rank: 0)\n  exitcode  : -15 (pid: 6)\n"
        "Root Cause (first observed failure):\n[0]:\n  rank      : 1 (local_rank: 1)\n"
        "  exitcode  : -9 (pid: 7)\n"
    )
    assert failure(killed, 1, two) == "rank 1 was killed by SIGKILL"
    raised = "[rank0]: ValueError: bad\n  rank      : 0 (local_rank: 0)\n  exitcode  : 1 (pid: 8)"
    assert failure(raised, 1, two) == "rank 0 exited 1: ValueError: bad"
    nodes = Launch(1, 2, 0, "127.0.0.1:5", rdzv_timeout_s=3)
    timeout = "torch.distributed.DistStoreError: Timed out after 3 seconds waiting for clients."
    line = failure(timeout, 1, nodes)
    assert line.startswith("rendezvous at 127.0.0.1:5 did not complete within 3 s")
    assert failure("anything", 1, Launch()) is None


def test_a_world_of_one_is_the_identity():
    world = World()
    ids = torch.arange(8)
    assert world.shard(ids) is ids and world.sum([1.5, 2.0]) == [1.5, 2.0]
    assert world.gather("x") == ["x"] and world.is_main and not world.distributed
    shards = [World(rank=r, size=2).shard(ids).tolist() for r in (0, 1)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6, 7]]  # contiguous slices, in order, all of it
    assert threads_per_rank(2, 2) == 1 and threads_per_rank(16, 3) == 5 and threads_per_rank(1, 4)


def test_the_stall_monitor_counts_sibling_ranks_as_the_jobs_own_cpu(monkeypatch):
    """A 2-rank job's other rank is its own work, not a neighbour crowding it out: outside a
    multi-rank job there are none; the CPU of a process is read from /proc."""
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert sibling_ranks() == []
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    assert process_cpu_s(os.getpid()) >= 0.04
    assert process_cpu_s(2**22 + 12345) == 0.0  # gone: nothing
