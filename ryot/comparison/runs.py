"""comparison.json's raw runs, typed: `runs[]` with each run's result (ryot.train's
ArmResult.to_dict()), its epochs, its validation curve and each optimization's evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ryot.comparison.record import (
    NUMBER,
    Record,
    flag,
    key,
    listing,
    mapping,
    number,
    numbers,
    record,
    records,
    text,
    texts,
)
from ryot.comparison.rules import SHORT_ROLES, RunShape


@dataclass(frozen=True)
class Skipped(Record):
    what: str | None = text()
    why: str | None = text()


@dataclass(frozen=True)
class Finding(Record):
    kind: str | None = text()  # "NoEffect": the optimization changed nothing
    detail: str | None = text()


@dataclass(frozen=True)
class EvidenceItem(Record):
    """One optimization's evidence: what it applied and skipped, what it measured."""

    name: str | None = text()
    enabled: bool | None = flag()
    settings: dict[str, Any] | None = mapping(omit=True)
    applied: tuple[str | None, ...] = texts()
    skipped: tuple[Skipped, ...] = records(Skipped)
    measurements: dict[str, Any] = mapping(absent={})  # its own keys: its registration words them
    findings: tuple[Finding, ...] = records(Finding)
    effective: bool | None = flag()


@dataclass(frozen=True)
class Epoch(Record):
    epoch: int | None = number()
    mean_loss: float | None = number()  # None: a NaN loss
    time_s: float | None = number()
    tokens: int | None = number()
    samples: int | None = number()
    tokens_per_s: float | None = number()
    samples_per_s: float | None = number()
    grad_norm: float | None = number()
    status: str | None = text()  # "ok", or what went wrong


@dataclass(frozen=True)
class CurvePoint(Record):
    """Validation loss after `step` steps, at `clock_s` on the arm's own training clock."""

    step: int | None = number()
    clock_s: float | None = number()
    val_loss: float | None = number()


RANKS = listing(listing(NUMBER))


@dataclass(frozen=True)
class ArmResult(Record):
    """One run's result. wall_time_s is the wall clock's; clock_s (= wall_time_s - stall_s)
    is the stack's own. Files before stall accounting (schema 2.0 and older) have no stall_s
    or clock_s: None, not the wall clock's time."""

    arm: str | None = text()
    device: str | None = text(omit=True)
    threads: int | None = number(omit=True)
    num_parameters: int | None = number(omit=True)
    step_times: tuple[float | None, ...] = numbers()  # wall clock, per step
    step_losses: tuple[float | None, ...] = numbers()
    step_tokens: tuple[int | None, ...] = numbers()
    step_stalls: tuple[float | None, ...] = numbers()
    epochs: tuple[Epoch, ...] = records(Epoch)
    setup_time_s: float | None = number(omit=True)
    setup_stall_s: float | None = number(omit=True)
    stack_build_s: float | None = number(omit=True)
    train_time_s: float | None = number(omit=True)
    eval_time_s: float | None = number(omit=True)
    checkpoint_time_s: float | None = number(omit=True)
    val_loss: float | None = number()
    peak_memory_mb: float | None = number(omit=True)
    peak_rss_mb: float | None = number()
    memory_method: str | None = text(omit=True)
    diverged: bool | None = flag()
    divergence: str | None = text()
    resumed_from_step: int | None = number(omit=True)
    evidence: tuple[EvidenceItem, ...] = records(EvidenceItem)
    run_queue_wait_s: float | None = number()  # reported only: left on the clock
    involuntary_switches: int | None = number()
    wall_time_s: float | None = number()
    stall_s: float | None = number(omit=True)  # taken off the clock
    clock_s: float | None = number(omit=True)
    contended_s: float | None = number(omit=True)  # of stall_s: the rule's estimate
    stopped_s: float | None = number(omit=True)  # of stall_s: stopped outright
    close_time_s: float | None = number(omit=True)
    close_stall_s: float | None = number(omit=True)
    final_loss: float | None = number()
    curve: tuple[CurvePoint, ...] = records(CurvePoint)
    initial_val_loss: float | None = number()
    val_loss_per_position: tuple[float | None, ...] = numbers()
    unigram_loss: float | None = number()
    bayes_floor: float | None = number()
    world_size: int | None = number(omit=True)
    backend: str | None = text()
    # each rank's step times (a torchrun job)
    rank_step_times: tuple[tuple[float | None, ...], ...] = key(RANKS, default=())


@dataclass(frozen=True)
class Run(Record):
    """One run of the job (runs[]): its place in the order, its role, and its result (None: it
    crashed or was interrupted)."""

    index: int | None = number()  # 1-based place in the run order
    arm: str | None = text()
    repeat: int | None = number()  # 0-based pair
    role: str | None = text()  # "warmup", "pair", "aa" or "ablation"
    attempt: int | None = number(omit=True)  # 0: the first try; n: the n-th re-run
    contamination: str | None = text()  # why it is never judged; None: clean
    seed: int | None = number()
    exit_code: int | None = number()
    console_encoding: str | None = text()
    wall_s: float | None = number()
    error: str | None = text()
    result: ArmResult | None = record(ArmResult)

    @property
    def contaminated(self) -> bool:
        """Whether the run was never judged: too much of its time contended."""
        return bool(self.contamination)

    @property
    def shape(self) -> RunShape | None:
        """What ryot.comparison.rules read of the run; None without an index or an arm."""
        if not is_index(self.index) or self.arm is None:
            return None
        return RunShape(
            int(self.index),
            self.arm,
            self.role or "",
            self.repeat if isinstance(self.repeat, int) else -1,
            self.attempt if isinstance(self.attempt, int) else 0,
            not self.contaminated,
            self.role not in SHORT_ROLES,
            self.result is not None,
        )


def is_index(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
