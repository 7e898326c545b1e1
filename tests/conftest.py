"""Shared fixtures for the library's tests.

The real command with real worker processes costs about 40 s a job on this machine (each worker
pays the torch import), so one such job, `go_run`, is shared by the CLI and report tests. Tests
of the command's own logic (plan, judge, exit codes, files) run their jobs in process instead
(`in_process`, `judged_runs`).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ryot import cli
from ryot.config import Config, load_config
from ryot.experiment.runners import InProcessRunner
from ryot.optim.stack_spec import load_stack_factory

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SMOKE = str(CONFIGS / "smoke.yaml")


def default_sigint() -> None:
    """A child's preexec_fn: SIGINT back at its default disposition before the exec.

    A process started with SIGINT ignored keeps ignoring it, and so do its children (the Unix
    convention, which ryot follows): that is how every background job of a non-interactive shell
    starts (`pytest tests &` in a script, nohup). A test that sends SIGINT to a child starts it
    this way, so that it tests ryot's Ctrl-C handling however pytest itself was started.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# The session-scoped runs that are made once per xdist worker: every test that uses one, even
# through another fixture, joins the xdist group "cli_runs", so that one worker makes them once
# and every other test is free to go to either worker.
SHARED_RUNS = frozenset({"go_run", "judged_runs"})


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which may already have done it
def pytest_collection_modifyitems(config, items) -> None:
    """On an xdist worker under `--dist loadgroup`: each test marked xdist_group, or using one
    of SHARED_RUNS (group "cli_runs"), gets its group's `@NAME` suffix on its node id, which is
    how the controller's scheduler groups them.

    pytest-xdist (3.8) writes the suffix to the legacy `item._nodeid`, which pytest 9.2 no longer
    reads (its node ids are structured: pytest-dev/pytest-xdist#1386), so the suffix was silently
    lost and the "cli_runs" tests spread over both workers, each making the whole `go_run`
    (30 s of a core, twice). Where xdist's suffix took effect this adds only the fixture groups.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        marks = item.iter_markers("xdist_group")
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks}
        if SHARED_RUNS & set(getattr(item, "fixturenames", ())):
            names.add("cli_runs")
        if not names:
            continue
        suffix = "@" + "_".join(sorted(names))
        if item.nodeid.endswith(suffix):
            continue
        node_id = getattr(item, "_id", None)
        if hasattr(node_id, "parse"):  # pytest >= 9.2: a structured NodeId
            item._id = type(node_id).parse(item.nodeid + suffix)
        else:
            item._nodeid = item.nodeid + suffix


@pytest.fixture
def children_with_default_sigint(monkeypatch):
    """Every child this test starts through subprocess.Popen starts with SIGINT at its default
    (see default_sigint): for children started by library code, such as ServerProcess."""

    class Popen(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("preexec_fn", default_sigint)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Popen)


@pytest.fixture(scope="session")
def smoke_config() -> Config:
    return load_config(CONFIGS / "smoke.yaml")


def run_ryot(*args: str, encoding: str = "utf-8", **env_vars: str) -> subprocess.CompletedProcess:
    """`python -m ryot ARGS` on a console of `encoding`, with `env_vars` set."""
    env = {**os.environ, "PYTHONIOENCODING": encoding, **env_vars}
    return subprocess.run(
        [sys.executable, "-m", "ryot", *args], capture_output=True, env=env, cwd=ROOT, timeout=600
    )


@pytest.fixture(scope="session")
def go_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """The full default job on the smoke config (3 pairs and the A/A run) through the real
    command and real worker processes, on a cp1252 console, as a GitHub Actions step: its
    job summary is written to `summary.md` beside the run folder."""
    out = tmp_path_factory.mktemp("go") / "run"
    proc = run_ryot(
        "stage3a", "--config", SMOKE, "--out", str(out), encoding="cp1252",
        GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(out.parent / "summary.md"),
    )  # fmt: skip
    return proc, out


def in_process_runner(device, out, stack: str, console, launch=None) -> InProcessRunner:
    assert launch is None or not launch.distributed, "a torchrun job needs the real runner"
    return InProcessRunner(device, stack_factory=load_stack_factory(stack))


@pytest.fixture
def in_process(monkeypatch):
    """`ryot stage3a` runs its jobs in this process: the real worker path is `go_run`'s."""
    monkeypatch.setattr(cli, "make_runner", in_process_runner)


def smoke_variant(folder: Path, name: str, edit) -> Path:
    """The smoke config with `edit(dict)` applied, written to FOLDER/NAME.yaml."""
    data = yaml.safe_load((CONFIGS / "smoke.yaml").read_text(encoding="utf-8"))
    edit(data)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _investigate(cfg: dict) -> None:
    cfg["criteria"]["min_speedup_percent"] = 99.0  # no smoke arm is 99% faster


def _debug(cfg: dict) -> None:
    opt = cfg["optimizations"]  # an "optimized" arm with nothing enabled is a critical failure
    opt["semantic_compressor"]["ratio"] = 0.0
    opt["kernel_optimizer"]["level"] = 0
    opt["inference_scaling"]["warmup_steps"] = 0


@dataclass(frozen=True)
class JudgedRun:
    exit_code: int
    stdout: str
    out: Path


@pytest.fixture(scope="session")
def judged_runs(tmp_path_factory) -> dict[str, JudgedRun]:
    """An INVESTIGATE and a DEBUG run of `ryot stage3a`, jobs in process, report written."""
    base = tmp_path_factory.mktemp("judged")
    runs = {}
    for status, edit in (("INVESTIGATE", _investigate), ("DEBUG", _debug)):
        config = smoke_variant(base, status.lower(), edit)
        out = base / status.lower()
        stdout = io.StringIO()
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
            mp.setattr(cli, "make_runner", in_process_runner)
            code = cli.main(["stage3a", "--config", str(config), "--out", str(out)])
        runs[status] = JudgedRun(code, stdout.getvalue(), out)
    return runs
