"""What one arm's run measured: its epochs, every step's time, loss, tokens and stall, the
validation curve, memory and the optimizations' evidence. Plain data, JSON both ways."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EpochMetrics:
    epoch: int  # 1-based
    mean_loss: float
    time_s: float  # sum of this epoch's step times
    tokens: int  # input tokens actually fed
    samples: int
    tokens_per_s: float
    samples_per_s: float
    grad_norm: float  # mean pre-clip gradient norm
    status: str  # "ok" or "diverged"


@dataclass
class CurvePoint:
    """One point of the validation curve, measured off the clock after `step` optimizer steps:
    the mean loss of the first curve_samples validation rows (None: a NaN, as JSON brings it back),
    at clock_s, this arm's own training clock then (setup + steps so far, less the machine's
    stalls: see ArmResult.clock_at)."""

    step: int
    clock_s: float
    val_loss: float | None


@dataclass
class ArmResult:
    arm: str
    device: str
    threads: int
    num_parameters: int
    step_times: list[float] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    # seconds of each step during which the machine held the process off the CPU (see
    # ryot.train.stalls.StallMonitor): reported, and taken off the clock the judge reads
    step_stalls: list[float] = field(default_factory=list)
    epochs: list[EpochMetrics] = field(default_factory=list)
    setup_time_s: float = 0.0  # stack built, model built, optimizations applied, optimizer built
    setup_stall_s: float = 0.0  # machine stalls during setup
    stack_build_s: float = 0.0  # of setup: constructing the optimization stack itself
    train_time_s: float = 0.0  # sum of step times (first steps include any lazy compile)
    eval_time_s: float = 0.0
    checkpoint_time_s: float = 0.0
    val_loss: float | None = None  # full validation set, final model
    initial_val_loss: float | None = None  # full validation set, before the first step
    val_loss_per_position: list[float] = field(default_factory=list)
    # validation loss on the first curve_samples rows, taken off the clock (JSON: {"step",
    # "clock_s", "val_loss"} each)
    curve: list[CurvePoint] = field(default_factory=list)
    peak_memory_mb: float = 0.0
    peak_rss_mb: float | None = None  # reported beside peak_memory_mb, see ryot.train.memory
    memory_method: str = ""
    diverged: bool = False
    divergence: str | None = None
    resumed_from_step: int = 0
    # the validation split's exact Bayes-optimal loss; None: unknown (token data), where the
    # baseline's learning is judged by its gain over the unigram loss instead
    bayes_floor: float | None = None
    unigram_loss: float = 0.0  # the validation split's loss from token frequencies alone
    evidence: list[dict[str, Any]] = field(default_factory=list)
    run_queue_wait_s: float | None = None  # training threads runnable but waiting, summed
    # Of stall_s: what rests on the stall rule's estimates (neighbours' CPU, hypervisor steal),
    # which under-count contention; a run with too much of it is re-run (judge.contamination).
    # The rest is time the process was stopped outright (SIGCONT seen), measured exactly.
    contended_s: float = 0.0
    stopped_s: float = 0.0
    # The stack's close() and finish() after the last step: on the clock, like the steps.
    close_time_s: float = 0.0
    close_stall_s: float = 0.0
    involuntary_switches: int | None = None  # preemptions of the process (reported)
    # A torchrun (DDP) job (ryot.train.distributed): its ranks, backend, and each rank's own
    # step times before the step's barrier; a single process is world_size 1.
    world_size: int = 1
    backend: str | None = None
    rank_step_times: list[list[float]] = field(default_factory=list)

    @property
    def wall_time_s(self) -> float:
        """End-to-end training time as the wall clock saw it: setup, every step, and the
        stack's close() and finish()."""
        return self.setup_time_s + self.train_time_s + self.close_time_s

    @property
    def stall_s(self) -> float:
        """Machine stalls on the training clock (setup, steps and close; evaluations are off
        it)."""
        return self.setup_stall_s + sum(self.step_stalls) + self.close_stall_s

    @property
    def clock_s(self) -> float:
        """The stack's own end-to-end time: wall_time_s less the machine's stalls. Everything
        the stack does (computing, compiling, sleeping, I/O, garbage collection, closing) stays
        on it."""
        return self.clock_at(len(self.step_times)) + self.close_time_s - self.close_stall_s

    def clock_at(self, steps: int) -> float:
        """The stack's own clock after setup and the first `steps` steps, stalls off."""
        return self.setup_time_s - self.setup_stall_s + sum(self.step_clock[:steps])

    @property
    def step_clock(self) -> list[float]:
        """Each step's own time, its stall taken off."""
        stalls = self.step_stalls or [0.0] * len(self.step_times)
        return [t - s for t, s in zip(self.step_times, stalls, strict=True)]

    @property
    def final_loss(self) -> float | None:
        return self.epochs[-1].mean_loss if self.epochs else None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["wall_time_s"] = self.wall_time_s
        out["stall_s"] = self.stall_s
        out["clock_s"] = self.clock_s
        out["final_loss"] = self.final_loss
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmResult:
        data = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        data["epochs"] = [EpochMetrics(**e) for e in data.get("epochs", [])]
        data["curve"] = [CurvePoint(**p) for p in data.get("curve", [])]
        return cls(**data)
