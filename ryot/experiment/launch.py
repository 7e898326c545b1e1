"""Each run as a torchrun (DDP) job: the command that starts it, the checks before any run, and
a failed job's cause in one line.

Jobs start through torch's own elastic launcher, `python -m torch.distributed.run`, with one
worker (`ryot.train.worker`) per rank: gloo on CPU, nccl on CUDA. On one machine it is
`--standalone` (a local rendezvous on a free port). Across machines it is the static rendezvous at
`--rdzv-endpoint HOST:PORT`, hosted by node 0, with each node's `--node-rank` fixing its ranks:
node 0 holds global rank 0, the rank that evaluates, times, checkpoints and writes the result, so
node 0 judges and writes the run folder. Every job of the plan is its own rendezvous, one after
the other, so every node runs the same command and the same plan, and both arms of every pair
run on the same nodes.
"""

from __future__ import annotations

import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ryot.config import Config

WORKER = ("-m", "ryot.train.worker")


class LaunchError(ValueError):
    """Options that cannot make a torchrun job of this config: a usage error (exit 2)."""


@dataclass(frozen=True)
class Launch:
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None  # HOST:PORT of node 0; needed when nnodes > 1
    rdzv_timeout_s: float = 300.0  # how long node 0 waits for every node to join a job

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main_node(self) -> bool:
        """Node 0: holds global rank 0, so it judges and writes."""
        return self.node_rank == 0

    def describe(self) -> str:
        if not self.distributed:
            return "one process"
        nodes = f" x {self.nnodes} nodes (this is node {self.node_rank})" if self.nnodes > 1 else ""
        return (
            f"torchrun: {self.nproc_per_node} ranks per node{nodes}, world size {self.world_size}"
        )

    def command(self, job_path: Path, job_index: int) -> list[str]:
        """The job's command line: the worker itself, or torchrun starting one per rank."""
        worker = [*WORKER, str(job_path)]
        if not self.distributed:
            return [sys.executable, *worker]
        args = [sys.executable, "-m", "torch.distributed.run", "--max-restarts", "0",
                "--nproc-per-node", str(self.nproc_per_node)]  # fmt: skip
        if self.nnodes == 1 and self.rdzv_endpoint is None:
            args.append("--standalone")
        else:
            args += [
                "--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank),
                "--rdzv-backend", "static", "--rdzv-endpoint", str(self.rdzv_endpoint),
                "--rdzv-id", f"ryot-run-{job_index}",
                "--rdzv-conf", f"timeout={max(1, round(self.rdzv_timeout_s))}",
            ]  # fmt: skip
        return args + worker

    def check(self, config: Config, device: torch.device) -> None:
        """Everything that would make every job fail, found before any is started."""
        for flag, value, low in (("--nproc-per-node", self.nproc_per_node, 1),
                                 ("--nnodes", self.nnodes, 1)):  # fmt: skip
            if value < low:
                raise LaunchError(f"{flag}: must be >= {low}, got {value}")
        if not 0 <= self.node_rank < self.nnodes:
            raise LaunchError(
                f"--node-rank: must be in [0, {self.nnodes - 1}] for --nnodes {self.nnodes}, "
                f"got {self.node_rank}"
            )
        if self.nnodes > 1 and not _is_endpoint(self.rdzv_endpoint):
            raise LaunchError(
                f"--rdzv-endpoint: --nnodes {self.nnodes} needs node 0's HOST:PORT, got "
                f"{self.rdzv_endpoint!r}"
            )
        if self.rdzv_endpoint is not None and not _is_endpoint(self.rdzv_endpoint):
            raise LaunchError(f"--rdzv-endpoint: expected HOST:PORT, got {self.rdzv_endpoint!r}")
        if not self.distributed:
            return
        t = config.training
        if t.batch_size % self.world_size:
            raise LaunchError(
                f"training.batch_size = {t.batch_size} does not divide among {self.world_size} "
                f"ranks (--nproc-per-node {self.nproc_per_node} x --nnodes {self.nnodes}): each "
                "rank trains an equal slice of the same global batch"
            )
        if device.type == "cuda" and self.nproc_per_node > torch.cuda.device_count():
            raise LaunchError(
                f"--nproc-per-node {self.nproc_per_node}: one rank per GPU, and this machine has "
                f"{torch.cuda.device_count()}"
            )
        if config.optimizations.kernel_optimizer.level >= 3:
            raise LaunchError(
                "optimizations.kernel_optimizer.level = 3 (torch.compile) is not supported under "
                "--nproc-per-node/--nnodes: the compiled model would be wrapped by DDP after "
                "compiling, which Ryot has not validated; use level 2, or one process"
            )


def _is_endpoint(text: str | None) -> bool:
    host, sep, port = (text or "").rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


_FAILED_RANK = re.compile(
    r"rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\)\s*\n\s*exitcode\s*:\s*(-?\d+)"
)


def failure(stderr: str, code: int, launch: Launch) -> str | None:
    """A failed torchrun job's cause in one line (which rank, and why), or None when the
    output names none (the caller then reports the exit code and the last line)."""
    if not launch.distributed:
        return None
    if "waiting for clients" in stderr or "RendezvousTimeoutError" in stderr:
        return (
            f"rendezvous at {launch.rdzv_endpoint or 'localhost'} did not complete within "
            f"{launch.rdzv_timeout_s:g} s: not every one of the {launch.nnodes} nodes joined "
            "(each runs the same command with its --node-rank)"
        )
    # the first rank that failed; the ranks torchrun then stopped are listed above it
    root = stderr.find("Root Cause")
    found = _FAILED_RANK.search(stderr, max(root, 0))
    if found is None:
        return None
    rank, exit_code = int(found.group(1)), int(found.group(3))
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"rank {rank} was killed by {name}"
    lines = [ln.strip() for ln in stderr.splitlines() if f"[rank{rank}]" in ln and ln.strip()]
    last = lines[-1].split("]:", 1)[-1].strip() if lines else ""
    return f"rank {rank} exited {exit_code}" + (f": {last}" if last else "")
