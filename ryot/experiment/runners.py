"""Where each run of the plan trains: a fresh worker process (SubprocessRunner), or this process
(InProcessRunner, for tests); `execute` runs the plan in order."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ryot.config import Config
from ryot.console import NARROW_ENCODINGS, Console
from ryot.experiment.data_guard import TokenFilesGuard
from ryot.experiment.launch import Launch, failure
from ryot.experiment.progress import JobProgress
from ryot.judge.contamination import contamination
from ryot.judge.runs import RunJob, RunRecord
from ryot.optim import build_stack
from ryot.osutil import fresh_caches, stop
from ryot.train.distributed import threads_per_rank
from ryot.train.job import JobSpec
from ryot.train.results import ArmResult
from ryot.train.trainer import Trainer

StackFactory = Callable[[Config, str, torch.device], list]


@dataclass
class SubprocessRunner:
    """Runs each job in a fresh `python -m ryot.train.worker` process, or as a torchrun job of
    one worker per rank (`launch`, see ryot.experiment.launch)."""

    device: torch.device
    out: Path
    stack_factory: str = "ryot.optim:build_stack"
    console: Console | None = None
    timeout_s: float | None = None  # default: the job's measurement.worker_timeout_s
    launch: Launch = field(default_factory=Launch)
    # The job's progress on the console (execute sets it); without one, a run's own line
    progress: JobProgress | None = None
    runs_dir: Path = field(init=False)

    def __post_init__(self):
        self.runs_dir = self.out / "runs"
        self.runs_dir.mkdir(parents=True, exist_ok=True)

    def run(self, job: RunJob, checkpoint: Path | None, resume: Path | None = None) -> RunRecord:
        encoding = NARROW_ENCODINGS[(job.index - 1) % len(NARROW_ENCODINGS)]
        stem = self.runs_dir / f"{job.index:02d}-{job.arm}"
        result_path = stem.with_suffix(".result.json")
        result_path.unlink(missing_ok=True)
        spec = JobSpec(
            label=job.label,
            arm=job.arm,
            config=job.config.to_dict(),
            config_source=f"{job.config.name} (run {job.index})",
            device=str(self.device),
            result=result_path,
            checkpoint=checkpoint,
            checkpoint_every=job.config.training.num_epochs,
            resume=resume,
            stop_after_epoch=job.stop_after_epoch,
            stack_factory=self.stack_factory,
        )
        job_path = stem.with_suffix(".job.json")
        job_path.write_text(spec.to_json(), encoding="utf-8")
        env = {**os.environ, "PYTHONIOENCODING": f"{encoding}:strict"}
        if self.launch.distributed:
            # torchrun would set 1; the trainer splits the cores between the ranks itself
            total = job.config.training.threads or os.cpu_count() or 1
            env["OMP_NUM_THREADS"] = str(threads_per_rank(total, self.launch.nproc_per_node))
        timeout = self.timeout_s or job.config.measurement.worker_timeout_s
        # Hermetic: every run starts from the same, empty caches (compiled graphs, kernels,
        # built extensions), removed after it, so a compile stack pays the same on its first
        # pair as on its last, and no run finds what an earlier one left warm.
        with fresh_caches(prefix=f"ryot-run{job.index:02d}-") as caches:
            started = time.perf_counter()
            code, timed_out, stderr = self._wait(job, job_path, {**env, **caches}, timeout)
            wall = time.perf_counter() - started
        stem.with_suffix(".console.txt").write_text(stderr, encoding="utf-8")
        result = None
        error = ""
        cause = failure(stderr, code, self.launch) if code else None
        if timed_out:
            error = f"worker killed after the {timeout:g} s timeout (measurement.worker_timeout_s)"
            if self.launch.distributed:
                error += ": a rank hung, and every other rank waited for it in a collective"
        elif code == 0 and not self.launch.is_main_node:
            pass  # this node's ranks trained; node 0's rank 0 writes the result
        elif cause is not None:
            error = cause
        elif code == 0 and result_path.is_file():
            result = ArmResult.from_dict(json.loads(result_path.read_text(encoding="utf-8")))
        elif code < 0:
            error = f"worker killed by signal {-code}"
        else:
            last = [ln for ln in stderr.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            error = f"worker exited {code}: {last[0]}"
        return RunRecord(job, result, code, encoding, wall, error, stderr[-4000:])

    def _wait(self, job: RunJob, job_path: Path, env: dict[str, str], timeout: float):
        """Start the worker and wait for it: (exit code, timed out, its stderr)."""
        proc = subprocess.Popen(
            self.launch.command(job_path, job.index),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            encoding="ascii",
            errors="replace",
            # Its own session: Ctrl-C reaches the parent alone, which stops the worker itself
            # (below) and then sets the run aside; a terminal's SIGINT would race with that.
            start_new_session=True,
        )
        stderr_lines: list[str] = []
        # Both pipes drain in threads, so the timeout below runs from the start: a worker that
        # hangs with its stdout open is still killed on time.
        drain = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
        relay = threading.Thread(
            target=lambda: [self._relay(job, line) for line in proc.stdout], daemon=True
        )
        drain.start()
        relay.start()
        timed_out = False
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
            timed_out = True
        except BaseException:  # Ctrl-C, SIGTERM (see ryot.cli): never leave a worker behind
            stop(proc)
            raise
        relay.join(timeout=10)
        drain.join(timeout=10)
        return code, timed_out, "".join(stderr_lines)

    def _relay(self, job: RunJob, line: str) -> None:
        """A worker's JSON line to the console, in this process: off the run's clock."""
        if self.console is None:
            return
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            return
        if self.progress is None:
            self.progress = JobProgress([job], self.console)
        self.progress.message(job, msg)


@dataclass
class InProcessRunner:
    """Runs jobs in this process: for tests, with a warm-up so the first run pays no import."""

    device: torch.device
    stack_factory: StackFactory = build_stack

    def __post_init__(self):
        self._warmed = False

    def run(self, job: RunJob, checkpoint: Path | None, resume: Path | None = None) -> RunRecord:
        if not self._warmed:
            warm = replace(job.config, training=replace(job.config.training, num_epochs=1))
            Trainer(warm, stack=[], device=self.device).run()
            self._warmed = True
        started = time.perf_counter()
        trainer = Trainer(
            job.config,
            arm=job.arm,
            stack=lambda: self.stack_factory(job.config, job.arm, self.device),  # on the clock
            device=self.device,
            checkpoint_path=checkpoint,
            checkpoint_every=job.config.training.num_epochs,
        )
        try:
            result = trainer.run(resume=resume, stop_after_epoch=job.stop_after_epoch)
        except Exception as exc:  # a crash is a measurement too: the verdict turns DEBUG
            return RunRecord(job, None, 3, "in-process", time.perf_counter() - started,
                             f"{type(exc).__name__}: {exc}")  # fmt: skip
        return RunRecord(job, result, 0, "in-process", time.perf_counter() - started)


def execute(
    jobs: list[RunJob],
    runner,
    out: Path,
    console: Console | None = None,
    resume: Path | None = None,
    extend: Callable[[list[RunRecord]], list[RunJob]] | None = None,
) -> list[RunRecord]:
    """Run the plan in order; the last run of each arm leaves DIR/checkpoints/ARM.pt.

    `extend`, called with the records so far each time the last queued pair is complete and
    clean (or out of re-runs), returns more pair jobs to run right after it (an undecided
    verdict's extra pair: ryot.experiment.stage3a), or none.

    A contaminated run (ryot.judge.contamination: too much of its time lost to other
    processes or the hypervisor) is re-run, never judged: its whole pair again, right away,
    or the A/A run, while the job's measurement.max_reruns lasts. Every record is kept, the
    contaminated ones with their reason, so the judge can skip them and the report show them.

    On token files, a run during which they changed fails (ryot.experiment.data_guard).
    """
    queue = list(jobs)
    reruns_left = jobs[0].config.measurement.max_reruns if jobs else 0
    if not one_node(runner):
        # Every node runs the same plan, and only node 0 sees results: no node can decide a
        # re-run the others would follow (node 0 would wait alone at the rendezvous). The judge
        # sets a contaminated pair aside, and names the machine too busy if none is left clean.
        reruns_left = 0
    records: list[RunRecord] = []
    guard = TokenFilesGuard.of(jobs[0].config) if jobs else None
    progress = JobProgress(queue, console) if console else None
    if progress:
        console.line(progress.plan_line())
        if hasattr(runner, "progress"):
            runner.progress = progress
    at = 0
    while at < len(queue):
        job = queue[at]
        if progress:
            console.line(f"{job.label} of {len(queue)}: training ...")
            progress.run_started(job)
        record = runner.run(job, _checkpoint_for(job, queue, out), resume)
        if guard is not None:
            record = guard.after(record)
        if job.role in JUDGED_ROLES:
            bound = job.config.measurement.max_contended_share
            record.contamination = contamination(record.result, bound)
        records.append(record)
        if console:
            _print_record(console, record)
        again = _rerun_of(job, records, queue, at)
        if again and reruns_left > 0:
            reruns_left -= 1
            _insert(queue, at + 1, again)
            if console:
                console.line(f"  re-running {', '.join(j.label for j in again)}: a run was "
                             "contaminated; it is kept, never judged")  # fmt: skip
        elif again and console:
            console.line("  no re-run left (measurement.max_reruns): the judge sets the "
                         "contaminated runs aside")  # fmt: skip
        if extend and job.role == "pair" and not _pairs_after(queue, at):
            _insert(queue, at + 1, extend(records))
        if progress:
            console.line(progress.run_finished(record))
        at += 1
    return records


JUDGED_ROLES = ("pair", "aa")


def one_node(runner) -> bool:
    """Whether the job runs on this machine alone; a multi-node job's plan is fixed. Read from
    the runner's launch (an in-process runner has none), not its class, which tests replace."""
    launch = getattr(runner, "launch", None)
    return launch is None or launch.nnodes <= 1


def _checkpoint_for(job: RunJob, queue: list[RunJob], out: Path) -> Path | None:
    """The arm's checkpoint is left by its last full-length judged run: not the warm-up or the
    A/A run, which stop early. A re-run of the last pair writes it again."""
    full = [j.index for j in queue if j.arm == job.arm and j.stop_after_epoch is None]
    return out / "checkpoints" / f"{job.arm}.pt" if full and full[-1] == job.index else None


def _rerun_of(job: RunJob, records: list[RunRecord], queue: list[RunJob], at: int) -> list:
    """The jobs to run again when the run that just ended completes a contaminated pair (or is
    a contaminated A/A run): the same arms, seed and order, one attempt later."""
    if job.role == "aa":
        return [replace(job, attempt=job.attempt + 1)] if records[-1].contamination else []
    if job.role != "pair":
        return []
    pair = [r for r in records if r.job.role == "pair" and r.job.repeat == job.repeat
            and r.job.attempt == job.attempt]  # fmt: skip
    later = [j for j in queue[at + 1 :] if j.role == "pair" and j.repeat == job.repeat
             and j.attempt == job.attempt]  # fmt: skip
    if later or not any(r.contamination for r in pair):
        return []  # the pair is not complete yet, or it is clean
    return [replace(r.job, attempt=job.attempt + 1) for r in pair]


def _pairs_after(queue: list[RunJob], at: int) -> bool:
    return any(j.role == "pair" for j in queue[at + 1 :])


def _insert(queue: list[RunJob], at: int, new: list[RunJob]) -> None:
    """Put `new` at `at`; every job keeps index = its place in the run order."""
    queue[at:at] = new
    for i, job in enumerate(queue):
        job.index = i + 1


def _print_record(console: Console, record: RunRecord) -> None:
    if record.result is None:
        console.line(f"  {record.job.label}: FAILED ({record.error})")
        return
    r = record.result
    console.line(
        f"  {record.job.label}: {r.wall_time_s:.2f} s end-to-end, val loss "
        f"{r.val_loss if r.val_loss is not None else float('nan'):.4f}"
        + (f", DIVERGED: {r.divergence}" if r.diverged else "")
        + (f"; CONTAMINATED: {record.contamination}" if record.contamination else "")
    )
