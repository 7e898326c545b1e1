"""ryot/experiment/progress.py: the estimate with exact numbers, each epoch's line on a plain
stream, the in-place line with a time left on a terminal, and the real command's log."""

from __future__ import annotations

import io
import os
import re
from dataclasses import replace

import pytest

from ryot.console import Console
from ryot.experiment.progress import Estimate, JobProgress, duration, run_epochs
from ryot.judge.runs import RunJob, RunRecord
from ryot.train.results import EpochMetrics


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Result:
    """What Estimate reads of an ArmResult: its epochs."""

    def __init__(self, epochs: int):
        self.epochs = [
            EpochMetrics(i + 1, 1.0, 0.1, 1, 1, 1.0, 1.0, 1.0, "ok") for i in range(epochs)
        ]


def jobs(config) -> list[RunJob]:
    """The smoke plan's shape: a 1-epoch warm-up, two pairs of 4 epochs, a 1-epoch A/A run."""
    c = replace(config, training=replace(config.training, num_epochs=4))
    return [
        RunJob(1, "baseline", 0, c, "warmup", 1),
        RunJob(2, "baseline", 0, c, "pair"),
        RunJob(3, "optimized", 0, c, "pair"),
        RunJob(4, "optimized", 1, c, "pair"),
        RunJob(5, "baseline", 1, c, "pair"),
        RunJob(6, "baseline", 0, c, "aa", 1),
    ]


def record(job: RunJob, wall: float) -> RunRecord:
    return RunRecord(job, Result(run_epochs(job)), 0, "ascii", wall)


def test_duration_reads_in_seconds_minutes_and_hours():
    assert [duration(s) for s in (0.4, 42, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]


def test_a_run_is_its_fixed_part_plus_its_epochs(smoke_config):
    queue = jobs(smoke_config)
    est = Estimate()
    assert est.left_s(queue) is None  # nothing measured: no estimate
    # Run 2: epoch lines at 3, 5, 7, 9 s, wall 10 s: 2 s an epoch (the gaps), 10 - 4*2 = 2 s fixed
    est.add(record(queue[1], 10.0), marks=[3.0, 5.0, 7.0, 9.0], times=[0.5] * 4)
    assert est.per_epoch("baseline") == pytest.approx(2.0)
    assert est.fixed("baseline") == pytest.approx(2.0)
    # The short runs scale by their epochs: the A/A run is 2 + 1*2, a pair 2 + 4*2
    assert est.run_s(queue[5]) == pytest.approx(4.0)
    assert est.run_s(queue[4]) == pytest.approx(10.0)
    # The optimized arm, not measured yet, runs at every run's rate
    assert est.run_s(queue[2]) == pytest.approx(10.0)
    est.add(record(queue[2], 5.0), marks=[2.0, 3.0, 4.0, 5.0])  # 1 s an epoch, 1 s fixed
    assert est.run_s(queue[3]) == pytest.approx(5.0)
    assert est.left_s(queue[3:]) == pytest.approx(5.0 + 10.0 + 4.0)
    assert est.rates() == ("baseline 2.0 s + 2.00 s/epoch (1 run), "
                           "optimized 1.0 s + 1.00 s/epoch (1 run)")  # fmt: skip


def test_a_one_epoch_run_counts_its_step_time_until_a_longer_run_ends(smoke_config):
    queue = jobs(smoke_config)
    est = Estimate()
    est.add(record(queue[0], 5.0), marks=[4.5], times=[0.5])  # the warm-up: one epoch line
    assert est.per_epoch("baseline") == pytest.approx(0.5)
    assert est.fixed("baseline") == pytest.approx(4.5)
    assert est.run_s(queue[1]) == pytest.approx(4.5 + 4 * 0.5)


def test_a_failed_run_is_not_counted(smoke_config):
    queue = jobs(smoke_config)
    est = Estimate()
    est.add(RunRecord(queue[0], None, 3, "ascii", 99.0, "crash"))
    assert not est.measured


def test_the_time_left_follows_the_queue_as_re_runs_are_inserted(smoke_config):
    queue = jobs(smoke_config)
    clock = Clock()
    progress = JobProgress(queue, Console(io.StringIO()), clock=clock)
    assert progress.plan_line() == "Time left: estimated after run 1 (6 runs, 18 epochs)"
    progress.run_started(queue[0])
    clock.now += 3.0
    line = progress.run_finished(record(queue[0], 3.0))  # no epoch lines: 3 s an epoch
    assert line == (
        "  job: 1 of 6 runs done in 3s; about 51s left (baseline 0.0 s + 3.00 s/epoch (1 run))"
    )
    left = progress.estimate.left_s(queue[1:])
    queue[2:2] = [replace(queue[1], attempt=1)]  # a re-run of run 2, as execute inserts it
    for i, job in enumerate(queue):
        job.index = i + 1
    assert progress.estimate.left_s(queue[1:]) == pytest.approx(left + 12.0)


def test_a_plain_stream_gets_one_line_per_epoch_and_no_control_characters(smoke_config):
    queue = jobs(smoke_config)
    stream = io.StringIO()
    progress = JobProgress(queue, Console(stream))
    progress.run_started(queue[1])
    for step in range(1, 13):
        progress.message(queue[1], {"kind": "step", "step": step, "total": 12, "loss": 3.0})
        if step % 3 == 0:
            epoch = {"kind": "epoch", "epoch": step // 3, "mean_loss": 2.5, "time_s": 0.25,
                     "tokens_per_s": 12345.6, "status": "ok"}  # fmt: skip
            progress.message(queue[1], epoch)
    lines = stream.getvalue().splitlines()
    assert lines == [
        f"  run 2 (baseline, pair 1): epoch {e}/4 loss 2.5000 0.25 s 12,346 tok/s"
        for e in range(1, 5)
    ]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def _read_all(fd: int) -> str:
    """Everything the pseudo-terminal's closed other end wrote (Linux ends it with EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_gets_the_in_place_line_with_the_run_and_job_time_left(
    smoke_config, monkeypatch
):
    pty = pytest.importorskip("pty")
    monkeypatch.setenv("COLUMNS", "120")  # the pty has no size; the line is cut to the width
    master, slave = pty.openpty()
    stream = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115
    try:
        queue = jobs(smoke_config)
        clock = Clock()
        console = Console(stream)
        assert console.interactive
        progress = JobProgress(queue, console, clock=clock)
        progress.run_started(queue[0])
        clock.now += 5.0
        progress.run_finished(record(queue[0], 5.0))  # 5 s an epoch, no epoch lines
        progress.run_started(queue[1])
        for step in (1, 2, 3):
            clock.now += 1.0
            progress.message(queue[1], {"kind": "step", "step": step, "total": 12, "loss": 3.0})
        stream.flush()
        stream.close()  # then the master reads everything written, up to EIO
        shown = _read_all(master)
    finally:
        if not stream.closed:
            stream.close()
        os.close(master)
    assert "\r" in shown
    last = shown.rsplit("\r", 1)[-1]
    # 1 s a step since the first: 9 steps left; the job's: this run's, then 13 epochs at 5 s
    assert "step 3/12 loss 3.0000 | run 9s left | job 1m14s left" in last


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_narrow_consoles_print_every_progress_line(smoke_config, encoding):
    queue = jobs(smoke_config)
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding=encoding, errors="strict", write_through=True)
    progress = JobProgress(queue, Console(stream))
    progress.run_started(queue[1])
    progress.message(queue[1], {"kind": "epoch", "epoch": 1, "mean_loss": 2.5, "time_s": 0.25,
                                "tokens_per_s": 1e4, "status": "diverged"})  # fmt: skip
    Console(stream).line(progress.run_finished(record(queue[1], 2.0)))
    assert b"epoch 1/4" in raw.getvalue() and b"DIVERGED" in raw.getvalue()


def _epoch_lines(text: str) -> list[list[int]]:
    """Each run's epochs as its lines numbered them, in the order the runs ran; each run's
    lines are checked to count 1..N of its own N."""
    found: dict[str, list[int]] = {}
    pattern = r"^  (run \d+ \([^)]*\)): epoch (\d+)/(\d+) loss"
    for label, epoch, of in re.findall(pattern, text, re.M):
        found.setdefault(label, []).append(int(epoch))
        assert int(epoch) <= int(of)
    for label, epochs in found.items():
        assert epochs == list(range(1, len(epochs) + 1)), label
    return list(found.values())


def _without_reruns(runs: list[list[int]], planned: int) -> list[list[int]]:
    """A busy machine may re-run a contaminated pair or the A/A run (each re-run is a run more,
    with its own lines): the plan's runs are the first and the last ones here."""
    assert len(runs) >= planned
    return runs[: planned - 1] + runs[-1:]


def test_the_real_log_has_one_line_per_epoch_of_every_run(go_run):
    proc, out = go_run  # the real command, stdout a pipe, on a cp1252 console
    text = proc.stdout.decode("cp1252")
    assert b"\r" not in proc.stdout and b"\x1b" not in proc.stdout
    runs = _without_reruns(_epoch_lines(text), 8)
    assert [len(epochs) for epochs in runs] == [1, 1, 4, 4, 4, 4, 4, 4]
    assert "Time left: estimated after run 1 (8 runs, 26 epochs)" in text
    assert re.search(r"job: 1 of 8 runs done in \d+s; about \S+ left \(baseline ", text)


def test_the_real_job_writes_its_github_summary(go_run):
    """go_run is a CI step as GitHub runs it (GITHUB_STEP_SUMMARY set); its output is a pipe."""
    _, out = go_run
    md = (out.parent / "summary.md").read_text(encoding="utf-8")
    assert md.startswith("## Ryot Stage 3a: ")
    assert "| Criterion | Measured | 95% CI | Threshold | Result |" in md
    assert "- **Machine:** " in md and re.search(r"- \*\*Job:\*\* \d+ runs in \d+ s", md)
