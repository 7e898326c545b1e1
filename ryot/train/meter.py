"""Clocks that mean the same thing on CPU and CUDA, and the run meter: one arm's machine-side
bookkeeping (its peak memory, stalls, run-queue wait and preemptions) and the spans of its
clock."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from ryot.train.memory import PeakMemory
from ryot.train.stalls import Mark, StallMonitor, involuntary_switches

if TYPE_CHECKING:
    from ryot.train.results import ArmResult


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a clock reading covers the work it claims to."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    synchronize(device)
    return time.perf_counter()


class RunMeter:
    """The machine-side bookkeeping of one arm's run, in one place: its peak memory, its
    stalls, its run-queue wait and its preemptions, so the trainer's loop reads as training.

    Entered before the stack is built: the heap sampler and the stall heartbeat start first
    (their threads are left out of the run-queue wait the first mark looks up), and the run's
    first mark (`start`) is where setup's stall and the run's queue wait are measured from.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.stalls = StallMonitor()
        self.memory = PeakMemory(device)
        self._switches: int | None = None
        self.start: Mark | None = None

    def __enter__(self) -> RunMeter:
        # The intra-op thread pool starts on the first parallel op: start it now, so its
        # threads are training threads (see StallMonitor.mark) and not the stack's helpers.
        torch.ones(1 << 20).sum()
        self.stalls.__enter__()
        self.memory.start()
        self._switches = involuntary_switches()
        self.start = self.stalls.mark()
        return self

    def __exit__(self, *exc) -> None:
        self.stalls.__exit__(*exc)

    def span(self, since: Mark | None = None) -> Span:
        """A stretch of the arm's clock: `with meter.span() as s: ...`, then s.took and s.stall
        (its stall counted from `since`, or from just before it)."""
        return Span(self, since)

    def finish(self, result: ArmResult) -> None:
        """Fill `result`'s run-queue wait, preemptions and memory; stops the heap sampler."""
        ended = self.stalls.mark()
        if self.start.queued is not None and ended.queued is not None:
            result.run_queue_wait_s = ended.queued - self.start.queued
        if self._switches is not None:
            result.involuntary_switches = involuntary_switches() - self._switches
        result.peak_rss_mb = self.memory.rss_peak_mib()
        result.peak_memory_mb = self.memory.peak_mib()
        result.memory_method = self.memory.method


class Span:
    """The time one block took on the arm's clock (a synchronizing clock: see now), and how much
    of it the machine stalled: never more than the time itself, so the stack's clock (time less
    stalls) never runs backwards. `stopped` and `contended` are the stall's signals (Stall)."""

    def __init__(self, meter: RunMeter, since: Mark | None):
        self.meter = meter
        self.since = since
        self.began = self.took = self.stall = self.stopped = self.contended = 0.0

    def __enter__(self) -> Span:
        if self.since is None:
            self.since = self.meter.stalls.mark()
        self.began = now(self.meter.device)
        return self

    def __exit__(self, *exc) -> None:
        self.took = now(self.meter.device) - self.began
        stall = self.meter.stalls.stalled_since(self.since)
        self.stall = min(self.took, stall.seconds)
        self.stopped = min(self.stall, stall.stopped)
        self.contended = min(self.stall, stall.contended)
