"""The Stage 3a acceptance suite's session: run the protocol once, judge, report.

Options are checked before any training (a bad config, an unwritable --ryot-out, --gpu without
CUDA: one usage error). The protocol runs once per session; each criterion is one test in
test_stage3a.py; at the end the run folder gets the test outcomes and pytest-benchmark's
statistics, the HTML report is rendered, and the terminal summary ends with the verdict.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from ryot.bench.sizing import ModelTooLarge, check_fits
from ryot.config import Config, ConfigError, load_config
from ryot.console import FAIL, Console
from ryot.experiment.run_folder import RunDirError, RunFolder, remove_tree
from ryot.experiment.runners import SubprocessRunner
from ryot.experiment.stage3a import Outcome, print_verdict, run_stage3a
from ryot.osutil import interrupt_on_sigterm, write_json_atomic
from ryot.report.html import render_run_dir_or_warn


@dataclass
class Session:
    config: Config
    config_path: str
    folder: RunFolder
    device: torch.device
    repeats: int | None
    history: list[Path]
    outcome: Outcome | None = None
    error: str | None = None
    test_outcomes: dict[str, str] = field(default_factory=dict)
    published: Path | None = None
    set_aside: Path | None = None

    @property
    def out(self) -> Path:
        """Where this session writes: the staging folder until the run is published."""
        return self.folder.staging


SESSION_KEY = pytest.StashKey[Session]()


def _staged(out: Path) -> RunFolder:
    """The run folder, locked, with a fresh staging folder (see ryot.rundir)."""
    folder = RunFolder(out)
    try:
        folder.acquire()
    except RunDirError as exc:
        raise pytest.UsageError(str(exc).replace("--out", "--ryot-out", 1)) from None
    return folder


def pytest_configure(config: pytest.Config) -> None:
    if not _validation_selected(config):
        return
    if config.getoption("--gpu") and not torch.cuda.is_available():
        raise pytest.UsageError("--gpu: CUDA is not available on this machine")
    path = config.getoption("--ryot-config")
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    repeats = config.getoption("--ryot-repeats")
    if repeats is not None and repeats < 1:
        raise pytest.UsageError(f"--ryot-repeats: must be >= 1, got {repeats}")
    device = torch.device("cuda" if config.getoption("--gpu") else "cpu")
    try:
        check_fits(cfg, path, device)
    except ModelTooLarge as exc:
        raise pytest.UsageError(str(exc)) from None
    folder = _staged(Path(config.getoption("--ryot-out")))
    history = [Path(p) for p in config.getoption("--ryot-history")]
    config.stash[SESSION_KEY] = Session(cfg, path, folder, device, repeats, history)
    interrupt_on_sigterm()  # the session ends as on Ctrl-C: workers stopped, run set aside


def _validation_selected(config: pytest.Config) -> bool:
    here = Path(__file__).resolve().parent
    args = [Path(a.split("::")[0]).resolve() for a in config.args] or [Path.cwd()]
    return any(here == a or here in a.parents or a in here.parents for a in args)


@pytest.fixture(scope="session")
def stage3a(request: pytest.FixtureRequest) -> Session:
    """Runs the Stage 3a protocol once for the whole session."""
    session = request.config.stash[SESSION_KEY]
    if session.outcome is None and session.error is None:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            log = session.out / "monitor.log"
            log.write_text("", encoding="utf-8")
            console = Console(sys.stdout, log_path=log)
            console.line()
            console.heading(
                f"RYOT STAGE 3a VALIDATION: {session.config.name} ({session.config_path})"
            )
            runner = SubprocessRunner(session.device, session.out, console=console)
            command = "pytest " + " ".join(request.config.invocation_params.args)
            try:
                session.outcome = run_stage3a(
                    session.config, session.config_path, session.out, session.device,
                    ["baseline", "optimized"], runner, console,
                    repeats=session.repeats, command=command.strip(),
                )  # fmt: skip
            except Exception as exc:
                session.error = f"{type(exc).__name__}: {exc}"
                raise
    if session.error:
        pytest.fail(f"the Stage 3a protocol crashed: {session.error}")
    return session


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[report.nodeid] = report.outcome


_outcomes: dict[str, str] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(SESSION_KEY, None)
    if state is None:
        return
    try:
        state.published = _finish(session, state, exitstatus)
    finally:
        state.folder.release()


def _finish(session: pytest.Session, state: Session, exitstatus: int) -> Path | None:
    """Publish a complete run as --ryot-out; set a failed or interrupted one aside."""
    folder = state.folder
    log = Console(sys.stdout, log_path=state.out / "monitor.log")
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        if state.outcome is None and not (state.out / "runs").exists():
            remove_tree(folder.staging)  # interrupted before any training: nothing to keep
            return None
        log.line(f"{FAIL} INTERRUPTED: the run stopped before its verdict.")
        state.set_aside = folder.set_aside()
        return None
    if state.outcome is None:
        if (state.out / "runs").exists():  # the protocol crashed part-way: keep what it wrote
            state.set_aside = folder.set_aside()
        else:  # nothing ran (deselected, collect-only)
            remove_tree(folder.staging)
        return None
    comparison = state.outcome.comparison
    comparison["tests"] = dict(_outcomes)
    comparison["benchmarks"] = _benchmark_stats(session.config)
    write_json_atomic(comparison, state.out / "comparison.json")
    failed = [r for r in state.outcome.records if r.result is None]
    if folder.keeps_earlier_run(bool(failed)):
        log.line(f"{FAIL} {len(failed)} run(s) failed: {folder.final} keeps its earlier run.")
        state.set_aside = folder.set_aside()
        render_run_dir_or_warn(state.set_aside, log.line, state.history)
        return None
    final = folder.publish()
    render_run_dir_or_warn(final, log.line, state.history)
    return final


def _benchmark_stats(config: pytest.Config) -> list[dict] | None:
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or not getattr(bs, "benchmarks", None):
        return None
    keys = ("min", "max", "mean", "median", "stddev", "rounds")
    return [
        {
            "name": bench.name,
            "group": bench.group,
            "extra_info": dict(bench.extra_info),
            "stats": {k: getattr(bench.stats, k) for k in keys},
        }
        for bench in bs.benchmarks
    ]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(SESSION_KEY, None)
    if state is None or state.outcome is None or not state.outcome.comparison.get("verdict"):
        return
    console = Console(terminalreporter._tw._file)
    print_verdict(console, state.outcome.comparison)
    where = state.published or state.set_aside
    if where is not None:
        console.line(f"Run folder: {where}   Report: {where / 'report.html'}")
    if state.set_aside is not None:
        console.line(f"{state.folder.final} is unchanged; this run's files are in {where}")
