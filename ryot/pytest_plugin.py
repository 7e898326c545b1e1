"""The Stage 3a acceptance suite as a pytest plugin: `pytest validation/ [--ryot-... options]`.

Registered as the `ryot` plugin (`[project.entry-points.pytest11]`), so it loads in every pytest
session of an environment where ryot is installed, and stays inert unless a collected test
uses the `stage3a` fixture. Then, once collection is done and before anything trains, the
options are checked exactly as `ryot stage3a` checks its own (ryot.experiment.session.preflight):
a bad config, an unusable --ryot-out, --gpu without CUDA, a --ryot-stack that cannot build a
stack, a model too large for the device: one line, a usage error (exit 4), nothing written.

The protocol runs once per session, in the first test that asks for `stage3a`; each criterion is
one test (validation/test_stage3a.py). At the end the run folder gets the test outcomes and
pytest-benchmark's statistics (comparison.json's `tests` and `benchmarks`), is published as
--ryot-out or set aside as `ryot stage3a` does it (ryot.experiment.session.publish), its HTML
report is rendered, and the terminal summary ends with the verdict.

Options of `ryot stage3a` left out: --device (--gpu says it), --arms and --resume (the suite
judges the baseline against the optimized arm, which needs both, trained in full; one arm has
no verdict and every criterion test would fail).

Only pytest's public API: options, stash, hooks, `pluginmanager.getplugin` for pytest-benchmark's
session and the capture manager, and the terminal reporter's `write` for every line shown.
`-p no:ryot` disables the plugin.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the plugin loads in every session: torch and ryot only when the suite runs
    from ryot.console import Console
    from ryot.experiment.session import Prepared
    from ryot.experiment.stage3a import Outcome

FIXTURE = "stage3a"
BENCHMARK_PLUGIN = "pytest-benchmark"  # the name pytest-benchmark registers its session under


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ryot", "Ryot Stage 3a validation")
    group.addoption("--gpu", action="store_true",
                    help="train on CUDA (fails at once without it; default: CPU)")  # fmt: skip
    group.addoption(
        "--ryot-config", default="configs/stage3a.yaml", metavar="PATH",
        help="config YAML (default: %(default)s)",
    )  # fmt: skip
    group.addoption(
        "--ryot-out", default="reports/stage3a", metavar="DIR",
        help="run folder to write (default: %(default)s)",
    )  # fmt: skip
    group.addoption(
        "--ryot-repeats", type=int, default=None, metavar="N",
        help="interleaved pairs (default: the config's measurement.repeats)",
    )  # fmt: skip
    group.addoption(
        "--ryot-history",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="earlier run folder for the report's history (repeatable; default: the run "
        "folder's siblings only)",
    )
    group.addoption(
        "--ryot-stack",
        default=None,
        metavar="MODULE:FUNCTION",
        help="build each arm's optimization stack with this function, to validate your own, as "
        "`ryot stage3a --stack` does; MODULE is imported from the directory pytest runs in, as "
        "the workers import it (default: ryot.optim:build_stack)",
    )
    group.addoption(
        "--ryot-nproc-per-node", type=int, default=1, metavar="N",
        help="each run as a torchrun (DDP) job of N ranks: one per GPU with --gpu, the cores "
        "split between them on CPU (default: 1, a single process)",
    )  # fmt: skip
    group.addoption(
        "--ryot-nnodes", type=int, default=1, metavar="M",
        help="machines: the suite runs on node 0, each other node runs `ryot stage3a` with the "
        "same options and its --node-rank (default: 1)",
    )  # fmt: skip
    group.addoption(
        "--ryot-rdzv-endpoint",
        default=None,
        metavar="HOST:PORT",
        help="node 0's address and a free port, for --ryot-nnodes > 1 (default: none)",
    )
    group.addoption(
        "--ryot-rdzv-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds node 0 waits for every node to join a run (default: %(default)g)",
    )


@dataclass
class Stage3a:
    """The session's run: what the `stage3a` fixture gives a test."""

    prepared: Prepared
    history: list[Path]
    command: str
    outcome: Outcome | None = None
    error: str | None = None
    test_outcomes: dict[str, str] = field(default_factory=dict)
    published: Path | None = None
    set_aside: Path | None = None
    ending: list[str] = field(default_factory=list)  # sessionfinish's lines, shown at the end

    @property
    def config(self):
        return self.prepared.config

    @property
    def config_path(self) -> str:
        return self.prepared.config_path

    @property
    def device(self):
        return self.prepared.device

    @property
    def stack_factory(self):
        """The --ryot-stack function (ryot's own stack by default), loaded in this process."""
        return self.prepared.stack_factory

    @property
    def folder(self):
        return self.prepared.folder

    @property
    def out(self) -> Path:
        """Where this session writes: the staging folder until the run is published."""
        return self.prepared.out


STATE = pytest.StashKey[Stage3a]()


class TerminalStream:
    """A text stream for ryot's Console that writes through pytest's terminal reporter.

    `encoding` is the terminal's: sys.stdout's while pytest is not capturing it (the stream the
    reporter was made with), so Console falls back to ASCII where the terminal cannot show a
    symbol.
    """

    def __init__(self, reporter, encoding: str | None):
        self._reporter = reporter
        self.encoding = encoding  # None: Console writes ASCII

    def write(self, text: str) -> int:
        self._reporter.write(text)
        return len(text)

    def flush(self) -> None:
        self._reporter.flush()

    def isatty(self) -> bool:
        return bool(getattr(self._reporter, "isatty", False))


def _console(config: pytest.Config, log_path: Path | None = None) -> Console:
    """A Console on the terminal (sys.stdout with -p no:terminal); call it uncaptured."""
    from ryot.console import Console

    reporter = config.pluginmanager.getplugin("terminalreporter")
    encoding = getattr(sys.stdout, "encoding", None)
    stream = TerminalStream(reporter, encoding) if reporter is not None else sys.stdout
    return Console(stream, log_path=log_path)


def uses_stage3a(items: list[pytest.Item]) -> bool:
    return any(FIXTURE in getattr(item, "fixturenames", ()) for item in items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Pre-flight and lock the run folder when a test to run uses `stage3a`: before training."""
    config = session.config
    if config.getoption("collectonly") or not uses_stage3a(session.items):
        return
    import torch

    from ryot.experiment.launch import Launch
    from ryot.experiment.session import Flags, PreflightError, preflight
    from ryot.optim.stack_spec import DEFAULT_STACK
    from ryot.osutil import interrupt_on_sigterm

    gpu = config.getoption("--gpu")
    if gpu and not torch.cuda.is_available():
        raise pytest.UsageError("--gpu: CUDA is not available on this machine")
    flags = Flags(out="--ryot-out", stack="--ryot-stack", repeats="--ryot-repeats",
                  launch_prefix="--ryot-")  # fmt: skip
    launch = Launch(
        nproc_per_node=config.getoption("--ryot-nproc-per-node"),
        nnodes=config.getoption("--ryot-nnodes"),
        rdzv_endpoint=config.getoption("--ryot-rdzv-endpoint"),
        rdzv_timeout_s=config.getoption("--ryot-rdzv-timeout"),
    )
    _importable_from(config, config.invocation_params.dir)
    try:
        prepared = preflight(
            config.getoption("--ryot-config"),
            out=Path(config.getoption("--ryot-out")),
            device=torch.device("cuda" if gpu else "cpu"),
            repeats=config.getoption("--ryot-repeats"),
            stack=config.getoption("--ryot-stack") or DEFAULT_STACK,
            flags=flags,
            launch=launch,
        )
    except PreflightError as exc:
        raise pytest.UsageError(str(exc)) from None
    history = [Path(p) for p in config.getoption("--ryot-history")]
    command = " ".join(["pytest", *config.invocation_params.args]).strip()
    state = Stage3a(prepared, history, command)
    config.stash[STATE] = state
    hooks = SessionHooks(state)
    config.pluginmanager.register(hooks, SESSION_PLUGIN)
    hooks.sigterm = interrupt_on_sigterm()  # SIGTERM as Ctrl-C: workers stopped, run kept
    config.add_cleanup(lambda: config.pluginmanager.unregister(hooks))


def _importable_from(config: pytest.Config, directory: Path) -> None:
    """MODULE of --ryot-stack imports from here as in the workers (`python -m`, started in this
    directory, which puts it first on their path): the check sees what they will load. Until
    the session ends."""
    path = str(directory)
    if path in sys.path:
        return
    sys.path.insert(0, path)
    config.add_cleanup(lambda: sys.path.remove(path) if path in sys.path else None)


@pytest.fixture(scope="session")
def stage3a(request: pytest.FixtureRequest) -> Stage3a:
    """Runs the Stage 3a protocol once for the whole session; the run and its outcome."""
    state = request.config.stash[STATE]
    if state.outcome is None and state.error is None:
        _run(request.config, state)
    if state.error:
        pytest.fail(f"the Stage 3a protocol crashed: {state.error}")
    return state


def _run(config: pytest.Config, state: Stage3a) -> None:
    from ryot.experiment.runners import SubprocessRunner
    from ryot.experiment.stage3a import run_stage3a

    p = state.prepared
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        log = p.out / "monitor.log"
        log.write_text("", encoding="utf-8")
        console = _console(config, log)
        console.line()
        console.heading(f"RYOT STAGE 3a VALIDATION: {p.config.name} ({p.config_path})")
        runner = SubprocessRunner(
            p.device, p.out, stack_factory=p.stack, console=console, launch=p.launch
        )
        try:
            state.outcome = run_stage3a(
                p.config, p.config_path, p.out, p.device, p.arms, runner, console,
                repeats=p.repeats, command=state.command,
                earlier=p.folder.final / "comparison.json",
            )  # fmt: skip
        except Exception as exc:
            state.error = f"{type(exc).__name__}: {exc}"
            raise


SESSION_PLUGIN = "ryot-stage3a"


class SessionHooks:
    """The hooks of a session that runs the suite, registered once its pre-flight passed."""

    def __init__(self, state: Stage3a):
        self.state = state
        self.sigterm = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.state.test_outcomes[report.nodeid] = report.outcome

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        capture = session.config.pluginmanager.getplugin("capturemanager")
        try:
            with capture.global_and_fixture_disabled():
                _finish(session.config, self.state, exitstatus)
        finally:
            self.state.folder.release()
            if self.sigterm is not None:
                signal.signal(signal.SIGTERM, self.sigterm)
                self.sigterm = None

    @pytest.hookimpl(trylast=True)  # after pytest-benchmark's table: the verdict comes last
    def pytest_terminal_summary(self, terminalreporter, config: pytest.Config) -> None:
        from ryot.experiment.stage3a import print_verdict

        state = self.state
        console = _console(config)
        if state.outcome is not None and state.outcome.typed.verdict is not None:
            print_verdict(console, state.outcome.typed)
        for text in state.ending:  # in monitor.log already; on the terminal now, after the verdict
            terminalreporter.write(text)
        where = state.published or state.set_aside
        if where is not None:
            console.line(f"Run folder: {where}")


class _Lines:
    """A Console stream that keeps sessionfinish's lines for the terminal summary, where they
    follow the verdict (monitor.log gets them at once)."""

    def __init__(self, lines: list[str], encoding: str | None):
        self._lines = lines
        self.encoding = encoding

    def write(self, text: str) -> int:
        self._lines.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def _finish(config: pytest.Config, state: Stage3a, exitstatus: int) -> None:
    """Publish a complete run as --ryot-out, comparison.json written once with the tests and
    benchmarks (ryot.experiment.session.publish); set a failed or interrupted one aside."""
    from ryot.console import FAIL, Console
    from ryot.experiment.run_folder import remove_tree
    from ryot.experiment.session import publish, set_aside, write_comparison
    from ryot.osutil import os_error_line

    folder = state.folder
    encoding = getattr(sys.stdout, "encoding", None)
    console = Console(_Lines(state.ending, encoding), log_path=state.out / "monitor.log")
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        if state.outcome is None and not (state.out / "runs").exists():
            remove_tree(folder.staging)  # interrupted before any training: nothing to keep
            return
        console.line(f"{FAIL} INTERRUPTED: the run stopped before its verdict.")
        if state.outcome is not None:  # judged before the interrupt: its file, tests unfinished
            try:
                write_comparison(state.outcome, state.out)
            except OSError as exc:
                console.line(f"{FAIL} {os_error_line(exc)}")
        state.set_aside = set_aside(folder, console, state.history)
        return
    if state.outcome is None:
        if (state.out / "runs").exists():  # the protocol crashed part-way: keep what it wrote
            state.set_aside = set_aside(folder, console, state.history)
        else:  # nothing ran (-x stopped the session first, say)
            remove_tree(folder.staging)
        return
    ending = publish(
        folder, state.outcome, console, state.history,
        tests=dict(state.test_outcomes), benchmarks=_benchmark_stats(config),
    )  # fmt: skip
    state.published, state.set_aside = ending.published, ending.kept


def _benchmark_stats(config: pytest.Config) -> list[dict] | None:
    """pytest-benchmark's statistics of this session's benchmarks (None without any)."""
    session = config.pluginmanager.getplugin(BENCHMARK_PLUGIN)
    benchmarks = getattr(session, "benchmarks", None)
    if not benchmarks:
        return None
    keys = ("min", "max", "mean", "median", "stddev", "rounds")
    return [
        {
            "name": bench.name,
            "group": bench.group,
            "extra_info": dict(bench.extra_info),
            "stats": {k: getattr(bench.stats, k) for k in keys},
        }
        for bench in benchmarks
    ]
