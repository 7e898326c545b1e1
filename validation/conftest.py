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

from ryot.config import Config, ConfigError, load_config
from ryot.console import Console
from ryot.protocol import SubprocessRunner
from ryot.report.comparison import write_json_atomic
from ryot.stage3a import Outcome, ensure_run_dir, print_verdict, run_stage3a


@dataclass
class Session:
    config: Config
    config_path: str
    out: Path
    device: torch.device
    repeats: int | None
    history: list[Path]
    outcome: Outcome | None = None
    error: str | None = None
    test_outcomes: dict[str, str] = field(default_factory=dict)


SESSION_KEY = pytest.StashKey[Session]()


def _writable(out: Path) -> None:
    try:
        ensure_run_dir(out)
    except OSError as exc:
        raise pytest.UsageError(f"--ryot-out {out}: cannot write there ({exc.strerror})") from None


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
    out = Path(config.getoption("--ryot-out"))
    _writable(out)
    device = torch.device("cuda" if config.getoption("--gpu") else "cpu")
    history = [Path(p) for p in config.getoption("--ryot-history")]
    config.stash[SESSION_KEY] = Session(cfg, path, out, device, repeats, history)


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
    if state is None or state.outcome is None:
        return
    comparison = state.outcome.comparison
    comparison["tests"] = dict(_outcomes)
    comparison["benchmarks"] = _benchmark_stats(session.config)
    write_json_atomic(comparison, state.out / "comparison.json")
    try:
        from ryot.report.html import render_run_dir
    except ImportError:
        return
    render_run_dir(state.out, state.history)


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
    console.line(f"Run folder: {state.out}   Report: {state.out / 'report.html'}")
