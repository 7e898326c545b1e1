"""The Stage 3b acceptance suite: `pytest serving/ [--serve-run-dir RUN_DIR] ...`.

It serves a run with a real `ryot serve` process on 127.0.0.1 (a free port), sends bounded load
with an async HTTP client, and judges the criteria of a `serving:` config section, one test each.
Without --serve-run-dir it first trains --serve-train-config (the smoke config unless told; e.g.
tests/workloads/tiny_gpt.yaml, a model of one's own) into --serve-out (about a minute here) and
serves that run whatever its verdict: Stage 3b judges serving, and the smoke model's training
verdict is noise-bound. At the end it writes RUN_DIR/stage3b.json (which model was served, and
whether it decoded with a KV cache) and renders RUN_DIR/report.html with a Stage 3b section.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ryot.optim  # noqa: F401  registers the optimizations' config sections
from ryot.config import Config, ConfigError, ServingConfig, config_from_dict, load_config
from ryot.serve.process import ServerProcess
from ryot.serve.served_run import ServeError, read_verdict

ROOT = Path(__file__).resolve().parents[1]
STAGE3B_NAME = "stage3b.json"


def pytest_addoption(parser):
    group = parser.getgroup("ryot-serving", "Ryot Stage 3b serving suite")
    group.addoption(
        "--serve-run-dir",
        default=None,
        metavar="RUN_DIR",
        help="serve this `ryot stage3a` run (default: train the smoke config into --serve-out)",
    )
    group.addoption(
        "--serve-out",
        default="reports/serving-smoke",
        help="where the smoke run is trained when no --serve-run-dir is given (%(default)s)",
    )
    group.addoption(
        "--serve-train-config",
        default="configs/smoke.yaml",
        metavar="PATH",
        help="the config trained into --serve-out when no --serve-run-dir is given (%(default)s)",
    )
    group.addoption(
        "--serve-config",
        default=None,
        metavar="PATH",
        help="take the serving: section from this config (default: the run's own snapshot)",
    )
    group.addoption(
        "--serve-arm", default="optimized", choices=("optimized", "baseline"), help="arm to serve"
    )
    group.addoption(
        "--serve-allow-no-go",
        action="store_true",
        help="serve --serve-run-dir even if its verdict is not GO (recorded in stage3b.json)",
    )


class Stage3b:
    """What the session measured and judged; written to RUN_DIR/stage3b.json at the end."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.run_dir: Path | None = None
        self.data: dict = {"criteria": {}, "bad_input": {}}
        self.outcomes: dict[str, str] = {}


_STATE = pytest.StashKey[Stage3b]()


def pytest_configure(config):
    config.stash[_STATE] = Stage3b()


@pytest.fixture(scope="session")
def stage3b(request) -> Stage3b:
    return request.config.stash[_STATE]


def _train(config: Path, out: Path) -> None:
    """`ryot stage3a` on `config` into `out`, once, from the repository root (where a
    model.factory such as tests.workloads.tiny_gpt:build imports from)."""
    command = [sys.executable, "-m", "ryot", "stage3a", "--config", str(config), "--out",
               str(out), "--repeats", "1"]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600,
        cwd=ROOT,
    )  # fmt: skip
    # 0 GO, 1 INVESTIGATE, 3 DEBUG all leave checkpoints; 2 is a usage error.
    if done.returncode == 2 or not (out / "checkpoints" / "optimized.pt").is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        pytest.exit(f"training {config} failed ({done.returncode}): {' | '.join(tail)}", 2)


def _serving_section(run_dir: Path, config_path: str | None) -> tuple[ServingConfig, str]:
    if config_path:
        return load_config(config_path).serving, config_path
    path = run_dir / "comparison.json"
    snapshot = json.loads(path.read_text(encoding="utf-8")).get("config")
    config: Config = config_from_dict(snapshot, f"{path} (config)", snapshot=True)
    return config.serving, f"{path} (config snapshot)"


@pytest.fixture(scope="session")
def served_run(request, stage3b):
    """(run_dir, allow_no_go, serving section) after the gate's own checks."""
    opt = request.config.getoption
    if opt("--serve-run-dir"):
        run_dir, allow = Path(opt("--serve-run-dir")), opt("--serve-allow-no-go")
    else:
        run_dir, allow = ROOT / opt("--serve-out"), True
        train_config = ROOT / opt("--serve-train-config")
        if not train_config.is_file():
            pytest.exit(f"--serve-train-config {train_config}: no such file", 2)
        _train(train_config, run_dir)
        stage3b.data["trained_config"] = opt("--serve-train-config")
    try:
        verdict = read_verdict(run_dir)
        serving, source = _serving_section(run_dir, opt("--serve-config"))
    except (ServeError, ConfigError, OSError, ValueError) as exc:
        pytest.exit(f"--serve-run-dir {run_dir}: {exc}", 2)
    if verdict.status != "GO" and not allow:
        pytest.exit(f"{run_dir}: verdict {verdict.status}, not GO (--serve-allow-no-go)", 2)
    stage3b.run_dir = run_dir
    stage3b.data |= {
        "run_dir": str(run_dir),
        "arm": opt("--serve-arm"),
        "run_verdict": verdict.status,
        "allow_no_go": bool(allow),
        "serving": dataclasses.asdict(serving) | {"source": source},
    }
    return run_dir, allow, serving


@pytest.fixture(scope="session")
def server(served_run, stage3b):
    run_dir, allow, serving = served_run
    args = ["--max-batch", str(serving.max_batch), "--max-wait-ms", str(serving.max_wait_ms),
            "--max-body-bytes", str(serving.max_body_bytes)]  # fmt: skip
    args += ["--arm", stage3b.data["arm"]] + (["--allow-no-go"] if allow else [])
    with ServerProcess(run_dir, args) as proc:
        health = stage3b.data["health"] = proc.wait_healthy()
        model = health["model"]
        # What was served and how it decoded: the report's and a reader's first question.
        stage3b.data["model"] = {
            "name": model["name"],
            "factory_kwargs": model.get("factory_kwargs") or {},
            "kv_cache": model["kv_cache"],
        }
        yield proc
    stage3b.data["server_exit_code"] = proc.returncode


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # One outcome per test: its call, or the setup/teardown that failed or skipped it.
    if report.when == "call" or report.outcome != "passed":
        outcomes = item.config.stash[_STATE].outcomes
        if outcomes.get(report.nodeid) in (None, "passed"):
            outcomes[report.nodeid] = report.outcome
    return report


def pytest_sessionfinish(session, exitstatus):
    state = session.config.stash.get(_STATE, None)
    if state is None or state.run_dir is None:
        return
    failed = [k for k, v in state.outcomes.items() if v != "passed"]
    state.data |= {
        "schema_version": "1.0",
        "stage": "3b",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["pytest", *session.config.invocation_params.args]),
        "duration_s": time.perf_counter() - state.started,
        "tests": state.outcomes,
        "status": "PASS" if state.outcomes and not failed else "FAIL",
    }
    path = state.run_dir / STAGE3B_NAME
    from ryot.osutil import write_text_atomic

    write_text_atomic(json.dumps(state.data, indent=1, allow_nan=True) + "\n", path)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    try:
        from ryot.report.html import render_run_dir

        report = render_run_dir(state.run_dir)
    except Exception as exc:  # the JSON stands on its own; say why the page did not render
        report = f"not rendered ({type(exc).__name__}: {exc})"
    if reporter is not None:
        reporter.write_line(f"Stage 3b: {state.data['status']}: {path}; report: {report}")
