"""The `ryot` pytest plugin (ryot/pytest_plugin.py), tested as pytest plugins are: with pytester.

It loads through its entry point in every session, so what matters first is that a session
without the Stage 3a suite does not notice it; then that the suite's options are checked before
anything trains; and, once, that a whole run of the real suite on a sabotaged stack turns the
verdict.
"""

from __future__ import annotations

import json
import os

import pytest

from ryot.experiment import runners
from ryot.optim.stack_spec import DEFAULT_STACK
from tests.conftest import ROOT, SMOKE, in_process_runner
from tests.test_session import count_writes

pytest_plugins = ["pytester"]

# No cache and no pytest-benchmark (which makes .benchmarks/ wherever it runs): every file in
# the test's folder after the run is one that the ryot plugin wrote.
QUIET = ("-p", "no:cacheprovider", "-p", "no:benchmark")
USES_STAGE3A = "def test_run(stage3a):\n    assert stage3a.outcome is not None\n"


def modules_from_root(monkeypatch) -> None:
    """--ryot-stack's MODULE is imported in the folder pytest runs in, pytester's, by the
    workers and by the throwaway process that checks the stack first: tests.sabotage from
    ROOT, through PYTHONPATH."""
    path = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, path)))


def test_help_lists_the_ryot_options(pytester):
    result = pytester.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    text = " ".join(result.stdout.str().split())  # help text is wrapped to the terminal
    assert "Ryot Stage 3a validation:" in text
    for option in ("--gpu", "--ryot-config", "--ryot-out", "--ryot-repeats", "--ryot-history"):
        assert option in text
    assert "--ryot-stack=MODULE:FUNCTION" in text and f"(default: {DEFAULT_STACK})" in text


def test_a_session_without_the_suite_is_untouched(pytester):
    """Options the suite would refuse, and nothing is checked, locked or written."""
    test_file = pytester.makepyfile("def test_ok():\n    assert True\n")
    bad = ["--ryot-config", "missing.yaml", "--ryot-stack", "nosuch:thing", "--ryot-repeats", "0"]
    result = pytester.runpytest(*QUIET, *bad)
    result.assert_outcomes(passed=1)
    assert list(pytester.path.iterdir()) == [test_file]  # no reports/, no .stage3a.lock
    assert "RYOT STAGE 3a" not in result.stdout.str()


def test_a_deselected_suite_is_not_started(pytester):
    test_file = pytester.makepyfile(USES_STAGE3A)
    result = pytester.runpytest(*QUIET, "-k", "nothing", "--ryot-stack", "x")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert list(pytester.path.iterdir()) == [test_file]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nosuch_module:build", "cannot import 'nosuch_module'"),
        ("tests.sabotage:nosuch", "module 'tests.sabotage' has no attribute 'nosuch'"),
        ("tests.sabotage", "expected MODULE:FUNCTION"),
    ],
)
def test_a_bad_stack_is_a_usage_error_before_training(pytester, monkeypatch, spec, message):
    modules_from_root(monkeypatch)  # so that the only problem is the one named
    test_file = pytester.makepyfile(USES_STAGE3A)
    out = pytester.path / "run"
    args = ["--ryot-config", SMOKE, "--ryot-out", str(out), "--ryot-stack", spec]
    result = pytester.runpytest(*QUIET, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: --ryot-stack {spec}: {message}")
    assert "Traceback" not in result.stdout.str()
    assert list(pytester.path.iterdir()) == [test_file]  # nothing trained, nothing written


def test_the_run_folder_messages_name_ryot_out(pytester):
    """The shared pre-flight's messages name pytest's flags, not the CLI's."""
    pytester.makepyfile(USES_STAGE3A)
    blocker = pytester.path / "file"
    blocker.write_text("x", encoding="utf-8")
    args = ["--ryot-config", SMOKE, "--ryot-out", str(blocker / "run")]
    result = pytester.runpytest(*QUIET, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert f"--ryot-out {blocker / 'run'}: cannot write there" in err and "--out " not in err


def in_process_suite_runner(device, out, stack_factory, console=None, launch=None):
    """The suite's runner, its jobs in this process (tests/conftest.py's in_process_runner)."""
    return in_process_runner(device, out, stack_factory, console, launch)


@pytest.mark.slow
def test_a_sabotaged_stack_turns_the_suite_to_debug(pytester, monkeypatch):
    """The real suite (validation/) on the smoke config, its stack's kernel a no-op: the
    optimizations_effective test fails and the run folder says DEBUG. The session runs in this
    process and so do its jobs (in_process_suite_runner): through pytest and worker processes
    that was 26-55 s of the unit suite's 3 minutes, every process paying the torch import. The
    workers' own path is go_run's (tests/conftest.py), and the suite's with them is CI's main
    job, `pytest validation/`."""
    modules_from_root(monkeypatch)
    # Not an xdist worker, as this test's own process may be: pytest-benchmark reads that from
    # the environment and would switch itself off in the nested session.
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runners, "SubprocessRunner", in_process_suite_runner)
    writes = count_writes(monkeypatch)
    out = pytester.path / "run"
    result = pytester.runpytest_inprocess(
        str(ROOT / "validation"), "-p", "no:cacheprovider", "--ryot-config", SMOKE,
        "--ryot-out", str(out), "--ryot-stack", "tests.sabotage:noop_kernel_stack",
    )  # fmt: skip
    stdout = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, stdout[-3000:]
    failed_lines = [line for line in result.stdout.lines if line.startswith("FAILED ")]
    assert any("::test_criterion[optimizations_effective]" in line for line in failed_lines)
    lines = result.stdout.lines
    table = next(i for i, line in enumerate(lines) if "benchmark 'training step" in line)
    verdict = max(i for i, line in enumerate(lines) if "PHASE 3 STAGE 3a: DEBUG" in line)
    assert table < verdict < lines.index(f"Run folder: {out}")  # the summary ends with it
    assert len(writes) == 1  # once, by the publish step, with the tests and benchmarks
    data = json.loads((out / "comparison.json").read_text(encoding="utf-8"))
    assert data["verdict"]["status"] == "DEBUG"
    failed = {c["id"] for c in data["criteria"] if not c["passed"]}
    assert "optimizations_effective" in failed
    node = "validation/test_stage3a.py::test_criterion[optimizations_effective]"
    assert data["tests"][node] == "failed"
    assert {b["extra_info"]["arm"] for b in data["benchmarks"]} == {"baseline", "optimized"}
    assert "--ryot-stack tests.sabotage:noop_kernel_stack" in data["command"]
    assert (out / "report.html").is_file()
