"""A job's progress as it runs: each run's epochs, and how long the job has left.

The parent prints it from the worker's JSON lines (ryot.experiment.runners.SubprocessRunner),
never from inside the worker, so nothing here runs on a measured clock.

- Not on a terminal (a CI log, a pipe, a file): one plain line per epoch, as it ends.
- On a terminal: one line updated in place, with the run's and the job's time left, redrawn at
  most every `REDRAW_S`.

The estimate is what the runs so far measured: per arm, wall seconds per epoch over that arm's
runs (the warm-up and A/A runs stop after fewer epochs, so every run counts by its epochs); an
arm not measured yet takes the rate of every run so far. It is recomputed from the queue as it
is now, so a re-run inserted during the job is counted as soon as it is queued.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ryot.console import Console
from ryot.judge.runs import RunJob, RunRecord

REDRAW_S = 0.1  # a step of the smoke model is 5-10 ms: redrawing each would be most of our cost


def run_epochs(job: RunJob) -> int:
    """Epochs the run trains: the warm-up and A/A runs stop early."""
    epochs = job.config.training.num_epochs
    return min(job.stop_after_epoch, epochs) if job.stop_after_epoch else epochs


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`: a time left, to the second at most."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass
class Estimate:
    """A run's wall time as a fixed part (a fresh process, imports, setup, the final
    evaluation) plus a time per epoch, by arm, from the runs measured so far.

    A run's epochs are timed by when the parent received each epoch's line: the gaps between
    them (evaluations included). Until a run of two epochs ended, the worker's own step time of
    each epoch stands in (evaluations left out). What is left of a run's wall time is its fixed
    part. Without any epoch line (a runner that relays none), the whole wall time counts per
    epoch.
    """

    gaps: dict[str, list[float]] = field(default_factory=dict)  # arm -> seconds per epoch
    steps: dict[str, list[float]] = field(default_factory=dict)  # arm -> the worker's own
    walls: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # (wall s, epochs)

    def add(self, record: RunRecord, marks: Sequence[float] = (), times: Sequence[float] = ()):
        """`marks`: when each epoch line arrived, seconds after the run started; `times`: the
        worker's step seconds of each epoch."""
        if record.result is None:  # a failed run's wall time says nothing about the others
            return
        arm = record.job.arm
        self.gaps.setdefault(arm, []).extend(b - a for a, b in zip(marks, marks[1:], strict=False))
        self.steps.setdefault(arm, []).extend(times)
        epochs = len(record.result.epochs) or run_epochs(record.job)
        self.walls.setdefault(arm, []).append((record.wall_s, epochs))

    @property
    def measured(self) -> bool:
        return bool(self.walls)

    def per_epoch(self, arm: str) -> float | None:
        for pool in (self.gaps, self.steps):
            samples = pool.get(arm) or [x for v in pool.values() for x in v]
            if samples:
                return sum(samples) / len(samples)
        runs = self.walls.get(arm) or [w for v in self.walls.values() for w in v]
        epochs = sum(e for _, e in runs)
        return sum(w for w, _ in runs) / epochs if epochs else None

    def fixed(self, arm: str) -> float:
        arms = [arm] if arm in self.walls else list(self.walls)
        parts = [
            max(0.0, wall - epochs * (self.per_epoch(a) or 0.0))
            for a in arms
            for wall, epochs in self.walls[a]
        ]
        return sum(parts) / len(parts) if parts else 0.0

    def run_s(self, job: RunJob) -> float | None:
        rate = self.per_epoch(job.arm)
        return None if rate is None else self.fixed(job.arm) + rate * run_epochs(job)

    def left_s(self, jobs: Sequence[RunJob]) -> float | None:
        """Seconds the `jobs` will take, or None before any run was measured."""
        if not self.measured:
            return None
        return sum(self.run_s(j) or 0.0 for j in jobs)

    def rates(self) -> str:
        """`baseline 1.9 s + 2.31 s/epoch (3 runs), optimized ...`: fixed part and epoch."""
        return ", ".join(
            f"{arm} {self.fixed(arm):.1f} s + {self.per_epoch(arm) or 0.0:.2f} s/epoch "
            f"({len(runs)} run{'s' * (len(runs) != 1)})"
            for arm, runs in self.walls.items()
        )


@dataclass
class _Current:
    job: RunJob
    started: float
    first_step: tuple[int, float] | None = None  # (step, when): the rate starts after setup
    drawn: float = 0.0
    marks: list[float] = field(default_factory=list)  # when each epoch line came, from started
    times: list[float] = field(default_factory=list)  # the worker's step seconds of each epoch


class JobProgress:
    """What the console shows while a job runs: the plan's estimate, each run's epochs (or the
    in-place line), and the time left after each run. `queue` is the job's run order, read
    each time (re-runs are inserted into it)."""

    def __init__(
        self,
        queue: list[RunJob],
        console: Console,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.queue = queue
        self.console = console
        self.clock = clock
        self.estimate = Estimate()
        self.started = clock()
        self.current: _Current | None = None

    # -- the job ---------------------------------------------------------------------------
    def plan_line(self) -> str:
        epochs = sum(run_epochs(j) for j in self.queue)
        return f"Time left: estimated after run 1 ({len(self.queue)} runs, {epochs} epochs)"

    def run_started(self, job: RunJob) -> None:
        self.current = _Current(job, self.clock())

    def run_finished(self, record: RunRecord) -> str:
        """Counts the run; the job's time left in one line."""
        cur, self.current = self.current, None
        if cur is not None and cur.job is record.job:
            self.estimate.add(record, cur.marks, cur.times)
        else:
            self.estimate.add(record)
        done = record.job.index
        elapsed = duration(self.clock() - self.started)
        left = self.estimate.left_s(self.queue[done:])
        if done >= len(self.queue):
            return f"  job: {done} of {len(self.queue)} runs done in {elapsed}"
        if left is None:
            return f"  job: {done} of {len(self.queue)} runs done in {elapsed}; no run measured yet"
        return (
            f"  job: {done} of {len(self.queue)} runs done in {elapsed}; about {duration(left)} "
            f"left ({self.estimate.rates()})"
        )

    def job_wall_s(self) -> float:
        return self.clock() - self.started

    # -- a run, from its worker's messages ------------------------------------------------
    def message(self, job: RunJob, msg: dict) -> None:
        """One JSON line of the worker: an epoch line (a plain stream) or the in-place line."""
        kind = msg.get("kind")
        if kind == "epoch" and msg.get("mean_loss") is not None:
            self._epoch(job, msg)
        elif kind == "step" and self.console.interactive:
            self._step(job, msg)

    def _epoch(self, job: RunJob, msg: dict) -> None:
        cur = self._current(job, self.clock())
        cur.marks.append(self.clock() - cur.started)
        cur.times.append(float(msg.get("time_s") or 0.0))
        text = (
            f"  {job.label}: epoch {msg['epoch']}/{run_epochs(job)} loss {msg['mean_loss']:.4f}"
            f" {msg.get('time_s', 0.0):.2f} s {msg.get('tokens_per_s', 0.0):,.0f} tok/s"
        )
        if msg.get("status", "ok") != "ok":
            text += f" {msg['status'].upper()}"
        if self.console.interactive:
            self.console.progress(text + self._left(job, self._run_left_epochs(job, msg)))
        else:
            self.console.line(text)

    def _step(self, job: RunJob, msg: dict) -> None:
        now = self.clock()
        cur = self._current(job, now)
        if cur.first_step is None:
            cur.first_step = (msg["step"], now)
        total = msg["total"] * run_epochs(job) // max(1, job.config.training.num_epochs)
        if now - cur.drawn < REDRAW_S and msg["step"] < total:
            return
        cur.drawn = now
        step0, t0 = cur.first_step
        run_left = None
        if msg["step"] > step0:
            run_left = (now - t0) / (msg["step"] - step0) * max(0, total - msg["step"])
        self.console.progress(
            f"  {job.label}: step {msg['step']}/{total} loss {msg['loss']:.4f}"
            + self._left(job, run_left)
        )

    def _current(self, job: RunJob, now: float) -> _Current:
        if self.current is None or self.current.job is not job:
            self.current = _Current(job, now)
        return self.current

    def _run_left_epochs(self, job: RunJob, msg: dict) -> float | None:
        cur = self._current(job, self.clock())
        done = msg["epoch"]
        if done <= 0:
            return None
        return (self.clock() - cur.started) / done * max(0, run_epochs(job) - done)

    def _left(self, job: RunJob, run_left: float | None) -> str:
        """` | run 12s left | job 3m10s left` (the job's: this run's, then the queue's)."""
        expected = self.estimate.run_s(job)
        if run_left is None and expected is not None and self.current is not None:
            run_left = max(0.0, expected - (self.clock() - self.current.started))
        run = f" | run {duration(run_left)} left" if run_left is not None else ""
        after = self.estimate.left_s(self.queue[job.index :])
        if after is None:
            return run + " | job: estimate after run 1"
        return run + f" | job {duration(after + (run_left or 0.0))} left"
