"""The clock owns every second the stack spends, and only the machine's time comes off it.

One test per way an honest stack once got work off its clock (close(), an evaluation's hooks,
its module's import, a constructor's warm cache, its own child processes, a GIL held in a C
call), and per way the machine could once decide a verdict (a busy neighbour, the job's slow
first run). The judge's side is tested on scripted results, never on a time bound: the live
tests compare a stack's work with what its clock charged, with the detector's resolution as
the only tolerance.
"""

from __future__ import annotations

import io
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ryot.console import Console
from ryot.experiment.launch import Launch
from ryot.experiment.plan import plan_runs
from ryot.experiment.runners import InProcessRunner, SubprocessRunner, execute
from ryot.experiment.stage3a import run_stage3a
from ryot.judge import criteria as crit
from ryot.judge.measurements import measure
from ryot.judge.runs import RunJob, RunRecord
from ryot.optim.registry import build_stack
from ryot.optim.stack_spec import check_stack_factory
from ryot.train.results import ArmResult, CurvePoint, EpochMetrics
from ryot.train.stalls import Stall, StallMonitor
from ryot.train.trainer import Trainer
from tests.conftest import ROOT
from tests.stacks import honest, slow_import

CPU = torch.device("cpu")

# Burns `argv[1]` seconds of CPU time (not wall time: load cannot shorten the work).
BURN = "import sys, time\nwhile time.process_time() < float(sys.argv[1]): pass\n"
HOG = "while True: pass\n"


# --- stack code that ran off the clock ----------------------------------------------------


def test_sleep_in_close_is_charged_to_the_clock(smoke_config):
    r = Trainer(smoke_config, arm="optimized", stack=[honest.SleepsInClose(CPU)]).run()
    assert r.close_time_s >= honest.SLEEP_S - 0.05
    # the end-to-end clock and the final curve point (the matched loss's time) both carry it
    assert r.clock_s >= honest.SLEEP_S - 0.05 + sum(r.step_clock) - r.close_stall_s
    assert r.curve[-1].clock_s == pytest.approx(r.clock_s)
    assert r.curve[-1].clock_s - r.curve[-2].clock_s >= honest.SLEEP_S - 0.05 - r.close_stall_s


def test_a_hook_that_raises_in_eval_mode_never_runs_in_an_evaluation(smoke_config):
    hook = honest.EvalModeHook(CPU, raises=True)
    r = Trainer(smoke_config, arm="optimized", stack=[hook]).run()
    assert math.isfinite(r.val_loss) and len(r.curve) >= 3
    assert hook.eval_calls == 0


def test_a_hook_that_sleeps_in_eval_mode_adds_nothing_to_any_evaluation(smoke_config):
    hook = honest.EvalModeHook(CPU, sleep_s=1.0)
    r = Trainer(smoke_config, arm="optimized", stack=[hook]).run()
    assert hook.eval_calls == 0
    # every evaluation (initial, each curve point, final) would have slept a second
    assert r.eval_time_s < 1.0


def test_a_wait_holding_the_gil_is_charged(smoke_config):
    """No SIGCONT, no stop: the heartbeat's gap is the stack's own C call."""
    stack = [honest.HoldsTheGil(CPU, step=2, seconds=1.2)]
    r = Trainer(smoke_config, arm="optimized", stack=stack).run()
    assert r.step_times[2] >= 1.2
    assert r.stopped_s == 0.0
    assert r.step_clock[2] >= 1.2 - 0.1  # at most the detector's resolution comes off


@pytest.fixture
def from_root(monkeypatch):
    """Workers import `tests.stacks` by name, from the repository's root."""
    monkeypatch.chdir(ROOT)


def _worker_run(tmp_path: Path, config, stack: str, index: int, arm: str = "optimized"):
    runner = SubprocessRunner(CPU, tmp_path / "run", stack_factory=stack)
    record = runner.run(RunJob(index, arm, 0, config, "pair"), checkpoint=None)
    assert record.result is not None, record.error
    return record.result


def test_a_stack_module_whose_import_sleeps_is_charged(smoke_config, tmp_path, from_root):
    r = _worker_run(tmp_path, smoke_config, "tests.stacks.slow_import:build", 1)
    assert r.stack_build_s >= slow_import.SLEEP_S - 0.05
    assert r.clock_s >= slow_import.SLEEP_S - 0.05


def test_a_constructors_cache_is_warm_in_no_worker(smoke_config, tmp_path, from_root):
    spec = "tests.stacks.cached_build:build"
    check_stack_factory(spec, smoke_config, ["baseline", "optimized"], CPU)
    assert "tests.stacks.cached_build" not in sys.modules  # the parent ran none of it
    seen = []
    for index, arm in enumerate(["baseline", "optimized"], start=1):
        r = _worker_run(tmp_path, smoke_config, spec, index, arm)
        seen.append(r.evidence[0]["measurements"])
    assert [s["cache_warm"] for s in seen] == [False, False], seen
    assert len({s["cache_folder"] for s in seen}) == 2  # a fresh folder each run


def test_the_arms_process_tree_is_its_own_cpu():
    """CPU its child processes burn, running or ended, is the arm's: never a neighbour's, so
    a stack with worker processes has nothing taken off for them on a quiet machine."""
    with StallMonitor() as monitor:
        start = monitor.mark()
        child = subprocess.Popen([sys.executable, "-c", BURN, "0.6"])
        try:
            time.sleep(0.1)
            live = monitor.mark()  # the child is running: its CPU so far counts
            assert child.poll() is None
            assert live.own_cpu - start.own_cpu >= 0.01
        finally:
            child.wait(timeout=60)
        ended = monitor.mark()  # the child ended and was reaped: all of it counts
    assert ended.own_cpu - start.own_cpu >= 0.6 - 0.02


# --- the machine: a busy neighbour, the job's first run ------------------------------------


NULL_EVIDENCE = {"name": "null", "enabled": True, "settings": {}, "applied": ["nothing"],
                 "skipped": [], "measurements": {}, "findings": [], "effective": True}  # fmt: skip


def _result(arm: str, seconds: float, contended: float = 0.0, steps: int = 10) -> ArmResult:
    """A finished run of `seconds` on its clock that learned from 4.0 to 2.0 nats."""
    step = seconds / steps
    r = ArmResult(arm=arm, device="cpu", threads=1, num_parameters=1)
    r.step_times, r.step_stalls = [step] * steps, [0.0] * steps
    r.step_tokens, r.step_losses = [100] * steps, [3.0] * steps
    r.train_time_s, r.contended_s = seconds, contended
    r.epochs = [
        EpochMetrics(e, 3.0 - e, step * steps / 2, 500, 5, 500 / seconds, 5 / seconds, 1.0, "ok")
        for e in (1, 2)
    ]
    r.curve = [CurvePoint(0, 0.0, 4.0), CurvePoint(steps, seconds, 2.0)]
    r.initial_val_loss, r.val_loss = 4.0, 2.0
    r.unigram_loss, r.bayes_floor = 3.0, 1.5
    if arm != "baseline":
        r.evidence = [NULL_EVIDENCE]
    return r


class ScriptedRunner:
    """A runner whose n-th run (from 1) takes seconds(n, job) and loses contended(n, job)."""

    def __init__(self, seconds, contended=lambda n, job: 0.0):
        self.seconds, self.contended, self.calls = seconds, contended, 0

    def run(self, job: RunJob, checkpoint, resume=None) -> RunRecord:
        self.calls += 1
        t = self.seconds(self.calls, job)
        return RunRecord(job, _result(job.arm, t, self.contended(self.calls, job)), 0, "ascii", t)


def _null_stack(n: int, job: RunJob) -> float:
    """Identical work in both arms; the job's first run is 20% slower, as on real machines,
    plus a little deterministic jitter."""
    return 10.0 * (1.2 if n == 1 else 1.0) * (1 + 0.002 * ((7 * n) % 5 - 2))


def test_the_null_stack_reads_no_speedup_although_the_first_run_is_slower(smoke_config, tmp_path):
    config = replace(smoke_config, measurement=replace(smoke_config.measurement, repeats=3))
    jobs = plan_runs(config, ["baseline", "optimized"], 3, ablation=False)
    assert jobs[0].role == "warmup"  # no arm is ever the job's first run
    records = execute(jobs, ScriptedRunner(_null_stack), tmp_path)
    est = measure(config, records, []).matched_loss.estimate
    assert est.low <= 0.0 <= est.high
    assert abs(est.point) < 0.01


def _config(smoke_config, **measurement):
    m = replace(smoke_config.measurement, max_contended_share=0.05, **measurement)
    return replace(smoke_config, measurement=m)


def test_a_contaminated_pair_is_rerun_and_never_judged(smoke_config, tmp_path):
    config = _config(smoke_config, repeats=2, max_reruns=2)
    jobs = plan_runs(config, ["baseline", "optimized"], 2, ablation=False)
    # the 4th run (pair 1's optimized) lost 40% of its time to a neighbour; it read 5 s
    runner = ScriptedRunner(
        lambda n, job: 5.0 if n == 4 else 10.0 if job.arm == "baseline" else 8.0,
        lambda n, job: 2.0 if n == 4 else 0.0,
    )
    records = execute(jobs, runner, tmp_path)
    labels = [(r.job.role, r.job.repeat, r.job.attempt, bool(r.contamination)) for r in records]
    assert labels[:6] == [("warmup", 0, 0, False), ("aa", 0, 0, False), ("pair", 0, 0, False),
                          ("pair", 0, 0, True), ("pair", 0, 1, False),
                          ("pair", 0, 1, False)]  # fmt: skip
    assert [r.job.index for r in records] == list(range(1, len(records) + 1))
    m = measure(config, records, [])
    assert [p.optimized_s for p in m.matched_loss.pairs] == [8.0, 8.0]  # never the 5 s
    assert not m.contamination.too_busy
    rows = crit.judge(m, config.criteria)
    assert next(r for r in rows if r.id == "machine_quiet").passed


def test_a_machine_busy_past_the_reruns_is_too_busy_never_judged(smoke_config, tmp_path):
    config = _config(smoke_config, repeats=2, max_reruns=1)
    jobs = plan_runs(config, ["baseline", "optimized"], 2, ablation=False)
    runner = ScriptedRunner(
        lambda n, job: 10.0 if job.arm == "baseline" else 5.0, lambda n, job: 3.0
    )
    records = execute(jobs, runner, tmp_path)
    assert sum(r.job.attempt > 0 for r in records) == 1  # the A/A's re-run spent the budget
    m = measure(config, records, [])
    assert m.contamination.too_busy
    assert m.matched_loss.estimate.n == 0  # no speedup from a contaminated pair
    rows = crit.judge(m, config.criteria)
    assert not next(r for r in rows if r.id == "machine_quiet").passed
    assert crit.verdict(rows) != crit.GO


@pytest.mark.slow
def test_a_job_beside_two_cpu_hogs_is_rerun_or_too_busy(smoke_config, tmp_path):
    """Two processes spinning on a 2-core machine: the fair-share estimate cannot be trusted,
    so no run they touched is judged."""
    config = _config(smoke_config, repeats=1, max_reruns=1, warmup_epochs=0)
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    try:
        out = tmp_path / "run"
        (out / "checkpoints").mkdir(parents=True)
        outcome = run_stage3a(
            config, "smoke.yaml", out, CPU, ["baseline", "optimized"],
            InProcessRunner(CPU), Console(io.StringIO()),
        )  # fmt: skip
    finally:
        for p in hogs:
            p.kill()
            p.wait()
    records = outcome.records
    assert any(r.contamination for r in records)
    quiet = next(r for r in outcome.rows if r.id == "machine_quiet")
    last = {(r.job.role, r.job.repeat, r.job.arm): r for r in records if r.job.role != "warmup"}
    clean = not any(r.contamination for r in last.values())
    # either every measurement ended on a clean re-run, or the machine is named too busy
    assert (quiet.passed and clean) or (not quiet.passed and outcome.verdict != crit.GO)


def test_a_multi_node_job_never_reruns(smoke_config, tmp_path):
    """Only node 0 sees results: a re-run it alone decided would leave it waiting at the
    rendezvous. The contaminated pair is set aside and the machine named too busy."""
    config = _config(smoke_config, repeats=1, max_reruns=3)
    launch = Launch(nproc_per_node=1, nnodes=2, node_rank=0, rdzv_endpoint="127.0.0.1:29400")
    runner = SubprocessRunner(CPU, tmp_path, launch=launch)
    scripted = ScriptedRunner(lambda n, job: 10.0, lambda n, job: 3.0)
    runner.run = scripted.run  # the plan and its decisions are execute's; no worker starts
    records = execute(plan_runs(config, ["baseline", "optimized"], 1, ablation=False), runner,
                      tmp_path)  # fmt: skip
    assert not any(r.job.attempt for r in records)
    assert measure(config, records, []).contamination.too_busy


def test_contention_read_during_the_evidence_probe_is_never_the_runs(smoke_config, monkeypatch):
    """A machine that contends every second: the run's contended time is at most its wall time.
    The evidence probe (off the clock, inside close's span) once added its own seconds, and
    in-process smoke runs beside two CPU hogs read a contended share of 1.07-1.28."""

    def always_contended(self, mark):
        seconds = time.perf_counter() - mark.wall
        return Stall(seconds, 0.0, seconds)

    monkeypatch.setattr(StallMonitor, "stalled_since", always_contended)
    stack = build_stack(smoke_config, "optimized", CPU)
    r = Trainer(smoke_config, arm="optimized", stack=stack).run()
    assert r.contended_s <= r.wall_time_s + 1e-9
    assert r.stall_s <= r.wall_time_s + 1e-9
