"""No run is lost, mixed or hung, and every bad input is a clear exit 2 (issue 9).

Each case starts from a copy of a real complete GO run (the shared `go_run`) and checks, byte for
byte, that a failed, refused or interrupted run leaves it exactly as it was. Faults are injected:
stacks that hang, die or raise (tests/sabotage.py), signals sent mid-run, a second run into a
folder in use, a faked ENOSPC. Every process a test starts is stopped by that test.
"""

from __future__ import annotations

import copy
import errno
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ryot import cli
from ryot.console import Console
from ryot.experiment.run_folder import RunFolder
from ryot.experiment.runners import SubprocessRunner
from ryot.experiment.stage3a import run_stage3a
from ryot.judge.runs import RunJob
from ryot.report import html
from ryot.train import worker
from ryot.train.checkpoint import save_checkpoint
from ryot.train.job import JobSpec
from tests.conftest import ROOT, SMOKE, default_sigint, smoke_variant

# The tests that use the real CLI runs of tests/conftest.py (go_run, judged_runs) share one
# xdist worker, which makes them once (tests/conftest.py's SHARED_RUNS); the others go anywhere.

CPU = torch.device("cpu")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture
def earlier(go_run, tmp_path) -> tuple[Path, dict[str, bytes]]:
    """A copy of a complete GO run, and its bytes."""
    proc, source = go_run
    assert proc.returncode == 0
    folder = tmp_path / "run"
    shutil.copytree(source, folder)
    return folder, snapshot(folder)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# -- 1. a failed re-run never damages the earlier run ------------------------------------------


@pytest.mark.parametrize(
    "stack, message",
    [
        ("nosuchmod:factory", "cannot import 'nosuchmod' (ModuleNotFoundError"),
        ("tests.sabotage:no_such_factory", "has no attribute 'no_such_factory'"),
        ("tests.sabotage:not_a_function", "is a int, not a function"),
        ("tests.sabotage:wrong_signature", "must accept (config, arm, device)"),
        ("tests.sabotage:raises_when_built", "raised RuntimeError for arm 'baseline'"),
        ("tests.sabotage:returns_a_dict", "returned dict for arm 'baseline'"),
        ("no-colon", "expected MODULE:FUNCTION"),
    ],
)
def test_bad_stack_is_exit_2_before_anything_is_written(earlier, capsys, stack, message):
    folder, before = earlier
    args = ["stage3a", "--config", SMOKE, "--out", str(folder), "--stack", stack]
    assert cli.main(args) == 2
    err = one_line_error(capsys)
    assert f"--stack {stack}" in err and message in err
    assert snapshot(folder) == before


def test_resume_with_another_config_is_exit_2_and_keeps_the_run(earlier, tmp_path, capsys):
    folder, before = earlier
    other = smoke_variant(tmp_path, "other", lambda c: c["model"].update(num_layers=2))
    args = ["stage3a", "--config", str(other), "--out", str(folder), "--arms", "baseline",
            "--resume", str(folder / "checkpoints" / "baseline.pt")]  # fmt: skip
    assert cli.main(args) == 2
    assert "different model config" in one_line_error(capsys)
    assert snapshot(folder) == before


def test_run_whose_jobs_fail_is_set_aside(earlier, capsys, in_process):
    folder, before = earlier
    args = ["stage3a", "--config", SMOKE, "--out", str(folder), "--repeats", "1",
            "--stack", "tests.sabotage:fails_in_training_stack"]  # fmt: skip
    assert cli.main(args) == 3
    assert snapshot(folder) == before
    kept = folder.parent / ".run.incomplete"
    data = json.loads((kept / "comparison.json").read_text(encoding="utf-8"))
    assert data["verdict"]["status"] == "DEBUG"
    out = capsys.readouterr().out
    assert f"{folder} is unchanged; this run's files are in {kept}" in out


def test_failed_run_into_a_new_folder_is_published(tmp_path, in_process):
    """With no earlier run to protect, the DEBUG report lands where the user asked."""
    out = tmp_path / "new"
    args = ["stage3a", "--config", SMOKE, "--out", str(out), "--repeats", "1",
            "--stack", "tests.sabotage:fails_in_training_stack"]  # fmt: skip
    assert cli.main(args) == 3
    assert json.loads((out / "comparison.json").read_text(encoding="utf-8"))["verdict"]["status"]
    assert (out / "report.html").is_file()


def test_a_complete_run_replaces_the_earlier_one_whole(earlier, in_process):
    folder, before = earlier
    args = ["stage3a", "--config", SMOKE, "--out", str(folder), "--arms", "baseline",
            "--repeats", "1"]  # fmt: skip
    assert cli.main(args) == 0
    after = snapshot(folder)
    # One run now: nothing of the earlier seven remains to be mixed with it.
    assert sorted(p for p in after if p.startswith("runs")) == []  # in process: no worker files
    assert "checkpoints/optimized.pt" not in after
    assert after["checkpoints/baseline.pt"] != before["checkpoints/baseline.pt"]
    assert (
        not list(folder.parent.glob(".run.*staging"))
        and not (folder.parent / ".run.previous").exists()
    )


def test_folder_that_is_not_a_run_is_never_replaced(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x", encoding="utf-8")
    assert cli.main(["stage3a", "--config", SMOKE, "--out", str(mine)]) == 2
    assert "not a ryot run folder" in one_line_error(capsys)
    assert snapshot(mine) == {"thesis.tex": b"x"}


def test_a_crash_between_the_two_renames_is_recovered(tmp_path):
    final = tmp_path / "run"
    folder = RunFolder(final)
    folder.previous.mkdir()
    (folder.previous / "comparison.json").write_text("{}", encoding="utf-8")
    folder.acquire()  # DIR is missing, .run.previous holds the earlier run: put back first
    folder.release()
    assert (final / "comparison.json").read_text(encoding="utf-8") == "{}"


# -- 4. stale files never change a verdict -----------------------------------------------------


def test_stale_files_of_an_older_run_are_not_read(earlier, in_process):
    folder, _ = earlier
    stale = folder / "runs" / "99-baseline.console.txt"
    stale.write_bytes(b"\xff not UTF-8, from a run with more repeats")
    args = ["stage3a", "--config", SMOKE, "--out", str(folder), "--repeats", "2"]
    assert cli.main(args) in (0, 1)  # the stale file would have failed encoding_safety: DEBUG
    data = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
    assert next(c for c in data["criteria"] if c["id"] == "encoding_safety")["passed"]
    assert not stale.exists()


# -- 2, 3, 7. interrupts and concurrent runs: a real parent with real workers ------------------


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text(encoding="utf-8").split()] if path.exists() else []


def workers(pid: int) -> list[int]:
    """The parent's training workers (`python -m ryot.train.worker`), which start once the run
    folder is locked: not the throwaway process that checks a --stack before that."""
    found = []
    for child in children(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:  # it has exited already
            continue
        if b"ryot.train.worker" in argv:
            found.append(child)
    return found


def start_hanging_run(out: Path) -> tuple[subprocess.Popen, int]:
    """`ryot stage3a` whose first worker hangs; returns the parent and the worker's pid."""
    args = ["--out", str(out), "--arms", "optimized", "--repeats", "1",
            "--stack", "tests.sabotage:hang_stack"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ryot", "stage3a", "--config", SMOKE, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        preexec_fn=default_sigint,  # the SIGINT case tests Ctrl-C even if pytest ignores SIGINT
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = workers(proc.pid)
        if found:
            return proc, found[0]
        time.sleep(0.1)
    proc.kill()
    out_text, err_text = proc.communicate()
    pytest.fail(f"the worker never started: {err_text.decode('utf-8', 'replace')[-2000:]}")


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        if stat.split(")")[-1].split()[0] == "Z":  # a zombie awaiting its reaper: it is dead
            return True
        time.sleep(0.1)
    return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see the worker")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_stops_workers_keeps_the_earlier_run_and_exits_130(earlier, capsys, sig):
    folder, before = earlier
    proc, worker_pid = start_hanging_run(folder)
    try:
        # 3. A second run into the same folder while the first one runs: refused, exit 2.
        assert cli.main(["stage3a", "--config", SMOKE, "--out", str(folder)]) == 2
        assert "another ryot run is writing there" in one_line_error(capsys)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if Path(f"/proc/{worker_pid}").exists():
            os.kill(worker_pid, signal.SIGKILL)
    text = out.decode("utf-8") + err.decode("utf-8")
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text
    assert gone(worker_pid), "the worker outlived its parent"
    assert snapshot(folder) == before
    log = (folder.parent / ".run.incomplete" / "monitor.log").read_text(encoding="utf-8")
    assert "INTERRUPTED" in log.strip().splitlines()[-2]
    assert f"{folder} is unchanged" in out.decode("utf-8")


# -- 6, 9. a stuck or killed worker: killed on time, and the reason says how it died ----------


def _job(config, stop_after_epoch=None) -> RunJob:
    return RunJob(1, "optimized", 0, config, "pair", stop_after_epoch)


def test_stuck_worker_is_killed_at_the_timeout_and_the_verdict_is_debug(smoke_config, tmp_path):
    config = replace(
        smoke_config, measurement=replace(smoke_config.measurement, worker_timeout_s=3.0)
    )
    console = Console(io.StringIO())
    runner = SubprocessRunner(CPU, tmp_path, stack_factory="tests.sabotage:hang_stack")
    started = time.monotonic()
    outcome = run_stage3a(
        replace(config, measurement=replace(config.measurement, repeats=1)), "smoke", tmp_path,
        CPU, ["optimized"], runner, console,
    )  # fmt: skip
    assert time.monotonic() - started < 60
    (record,) = outcome.records
    assert record.result is None
    assert "killed after the 3 s timeout (measurement.worker_timeout_s)" in record.error
    assert outcome.exit_code == 3


def test_killed_worker_reports_the_signal_not_its_banner(smoke_config, tmp_path):
    runner = SubprocessRunner(CPU, tmp_path, stack_factory="tests.sabotage:killed_stack")
    record = runner.run(_job(smoke_config), None)
    assert record.result is None and record.error == "worker killed by signal 9"


# -- 8. tracebacks and wrong exit codes ---------------------------------------------------------


def test_huge_model_is_exit_2_without_building_it(tmp_path, capsys):
    huge = smoke_variant(tmp_path, "huge", lambda c: c["model"].update(embed_dim=10_000_000))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert cli.main(["stage3a", "--config", str(huge), "--out", str(tmp_path / "o")]) == 2
    err = one_line_error(capsys)
    assert str(huge) in err and "embed_dim=10000000" in err and "training needs at least" in err
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 200, f"the parent grew by {grown_mib:.0f} MiB"
    assert not (tmp_path / "o").exists()


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_writing_the_verdict_keeps_the_earlier_run(
    earlier, capsys, in_process, monkeypatch
):
    folder, before = earlier

    def full_disk(data, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr("ryot.experiment.session.write_json_atomic", full_disk)
    args = ["stage3a", "--config", SMOKE, "--out", str(folder), "--repeats", "1"]
    assert cli.main(args) == 3
    out = capsys.readouterr().out
    assert "no space left on device writing" in out and "comparison.json" in out
    assert "Traceback" not in out
    assert snapshot(folder) == before


def test_disk_already_full_is_exit_2_before_training(tmp_path, capsys, monkeypatch):
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name == "checkpoints":  # the staging folder's first write
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert cli.main(["stage3a", "--config", SMOKE, "--out", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys)
    assert "--out" in err and "cannot write there (no space left on device)" in err


def test_full_disk_while_saving_a_checkpoint_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr("ryot.train.checkpoint.os.fsync", enospc)
    target = tmp_path / "checkpoints" / "baseline.pt"
    with pytest.raises(OSError) as info:
        save_checkpoint({"arm": "baseline"}, target)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(target.parent.iterdir()) == []  # no temporary file left behind


def test_worker_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    job = tmp_path / "job.json"
    spec = JobSpec(label="run 1", arm="optimized", config={}, device="cpu", result=tmp_path / "r")
    job.write_text(spec.to_json(), encoding="utf-8")

    def run_job(spec):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/checkpoints/optimized.pt")

    monkeypatch.setattr(worker, "run_job", run_job)
    assert worker.main([str(job)]) == 1
    err = capsys.readouterr().err
    assert err == "worker error: no space left on device writing /data/checkpoints/optimized.pt\n"


def test_bad_sibling_report_data_is_skipped_with_a_warning(earlier, tmp_path, capsys, monkeypatch):
    folder, _ = earlier
    good = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
    huge = copy.deepcopy(good)  # renders: the charts clamp their axes (was an OverflowError)
    huge["comparison"]["speedup_percent"] = 1e308
    steps = huge["runs"][0]["result"]["step_times"]
    huge["runs"][0]["result"]["step_times"] = [1e308] * len(steps)
    siblings = {
        "huge": huge,
        "crashes": {**good, "config_name": "crashes the history"},
        "future": {**good, "schema_version": "9.0"},
        "other-config": {**good, "config": {**good["config"], "data": {"seed": 1}}},
        "broken-json": None,
    }
    for name, data in siblings.items():
        (tmp_path / name).mkdir()
        text = "{oops" if data is None else json.dumps(data)
        (tmp_path / name / "comparison.json").write_text(text, encoding="utf-8")
    real = html.history_context

    def fragile(current, history):  # fault injection: the history's code fails on one entry
        if any(h.comparison.config_name == "crashes the history" for h in history):
            raise TypeError("sabotage: unusable entry")
        return real(current, history)

    monkeypatch.setattr(html, "history_context", fragile)
    assert cli.main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "crashes/comparison.json: malformed (TypeError: sabotage: unusable entry)" in out
    assert "schema_version '9.0' is not one this ryot reads" in out
    assert "broken-json/comparison.json: not valid JSON" in out
    assert "left out 1 run(s) of another config" in out
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "../huge/comparison.json" in page and "crashes" not in page
    assert "</html>" in html.render_report(huge)  # its own charts clamp too


def test_unknown_schema_version_is_exit_2(earlier, capsys):
    folder, _ = earlier
    data = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
    data["schema_version"] = "9.0"
    (folder / "comparison.json").write_text(json.dumps(data), encoding="utf-8")
    assert cli.main(["report", str(folder)]) == 2
    assert "schema_version '9.0' is not one this ryot reads" in one_line_error(capsys)


def test_an_unexpected_error_is_one_line_and_exit_3(monkeypatch, capsys, tmp_path):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("sabotage:\nan internal bug")

    monkeypatch.setattr(cli, "check_workload", broken)
    assert cli.main(["stage3a", "--config", SMOKE, "--out", str(tmp_path / "o")]) == 3
    err = one_line_error(capsys)
    assert "internal error: ZeroDivisionError: sabotage: an internal bug" in err


def test_a_run_that_cannot_be_moved_into_place_is_set_aside(earlier, capsys, in_process,
                                                            monkeypatch):  # fmt: skip
    folder, before = earlier

    def publish(self):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(self.final))

    monkeypatch.setattr(RunFolder, "publish", publish)
    args = ["stage3a", "--config", SMOKE, "--out", str(folder), "--arms", "baseline",
            "--repeats", "1"]  # fmt: skip
    assert cli.main(args) == 3
    assert "cannot move the run into place" in capsys.readouterr().out
    assert snapshot(folder) == before
