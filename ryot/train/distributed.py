"""One arm as a torchrun (DDP) job: this process's place in the world, its share of each batch,
and the collectives the trainer needs. A single process is a world of one, where every
collective is the identity, so the trainer has one code path.

torchrun (`torch.distributed.run`, see ryot.experiment.launch) starts one worker per rank and
sets RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE; `World.from_env` joins the process
group from them: gloo on CPU, nccl on CUDA (one rank per GPU, `cuda:LOCAL_RANK`).

The global batch stays `training.batch_size`: batch_indices draws the same ids in the same order
as one process, and rank r trains on the r-th contiguous slice. With equal slices, the mean of the
ranks' mean losses is the batch's mean loss, and DDP's averaged gradient is the single
process's, up to the order of the reduction.
"""

from __future__ import annotations

import ctypes
import datetime
import os
import signal
from dataclasses import dataclass

import torch
import torch.distributed as dist

# A collective that waits this long for a peer means that peer is gone: the job fails, and the
# runner's own timeout (measurement.worker_timeout_s) or torchrun's failure report says which.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    backend: str | None = None  # None: a single process, no process group

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that evaluates, times, checkpoints and writes the result."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def from_env(cls, device_type: str) -> World:
        """The world torchrun started this process in (a world of one outside torchrun)."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size <= 1:
            return cls()
        backend = "nccl" if device_type == "cuda" else "gloo"
        world = cls(
            rank=int(os.environ["RANK"]),
            size=size,
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            local_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(size))),
            backend=backend,
        )
        _die_with_parent()
        if device_type == "cuda":
            torch.cuda.set_device(world.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
        return world

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU on CUDA, the CPU otherwise."""
        if device.type == "cuda" and self.distributed:
            return torch.device("cuda", self.local_rank)
        return device

    def shard(self, ids: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a micro-batch's ids (the batch divides evenly: the
        launcher refuses a batch size the world does not divide)."""
        if not self.distributed:
            return ids
        per = len(ids) // self.size
        return ids[self.rank * per : (self.rank + 1) * per]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the ranks (float64, on the CPU or this rank's GPU)."""
        if not self.distributed:
            return list(values)
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else "cpu"
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, value: object) -> list[object]:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        out: list[object] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _die_with_parent() -> None:
    """Linux: this rank is killed when its torchrun agent dies, even by SIGKILL (the runner's
    timeout): torchrun starts each rank in a session of its own, so no signal to the agent's
    process group would reach it, and a killed job must leave no rank behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the agent's own shutdown stops the ranks
        return
    if os.getppid() == 1:  # the agent died before the request was made
        os._exit(1)


def threads_per_rank(total: int, local_size: int) -> int:
    """CPU threads for each of `local_size` ranks on one machine: the cores (or
    training.threads, when set) split evenly, at least one each."""
    return max(1, total // max(1, local_size))
