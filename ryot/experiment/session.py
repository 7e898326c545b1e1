"""A Stage 3a run's start and end, shared by `ryot stage3a` and `pytest validation/`.

`preflight` checks everything that can be checked before anything is written (the config,
--repeats, the workload: its data, its model, that the model fits on the device and that every
optimization the config turns on applies to it (ryot.optim.workload_check); that the stack
factory builds every arm's stack;
each caller resolves the device from its own flag, --device or --gpu), then
locks the run folder and creates its staging folder (ryot.experiment.run_folder). Every problem
is one PreflightError, one line naming the caller's own flags (`Flags`): the CLI exits 2 with it,
the pytest plugin makes it a usage error (exit 4).

`publish` ends a judged run: it writes comparison.json, once, with the suite's tests and
benchmarks when pytest ran it, then moves the run into place as the run folder, or sets it
aside (`set_aside`) where it may not replace what is there. Both render the run's HTML report.
In CI it also puts the verdict where CI users look (`report_to_ci`: the job summary and error
annotations).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ryot.bench.sizing import ModelTooLarge
from ryot.comparison.model import Comparison
from ryot.config import Config, ConfigError, load_config
from ryot.console import FAIL, WARN, Console
from ryot.errors import EXIT_CRASH
from ryot.experiment.launch import Launch, LaunchError
from ryot.experiment.run_folder import RunDirError, RunFolder
from ryot.experiment.stage3a import Outcome
from ryot.optim.stack_spec import DEFAULT_STACK, StackSpecError, check_stack_factory
from ryot.optim.workload_check import WorkloadError, check_workload
from ryot.osutil import os_error_line, write_json_atomic

COMPARISON = "comparison.json"


class PreflightError(Exception):
    """A run that must not start (bad option or config, no room, folder in use): one line."""


@dataclass(frozen=True)
class Flags:
    """The caller's names for the options that messages name (the lower layers use the CLI's)."""

    out: str = "--out"
    stack: str = "--stack"
    repeats: str = "--repeats"
    launch_prefix: str = "--"  # --nproc-per-node, --nnodes, ... (the plugin's: --ryot-...)

    def name(self, message: str) -> str:
        """`message` (which names the CLI's flags) with this caller's flag names."""
        renames = [("--out", self.out), ("--stack", self.stack), ("--repeats", self.repeats)]
        renames += [(f"--{flag}", f"{self.launch_prefix}{flag}") for flag in LAUNCH_FLAGS]
        for cli_flag, ours in renames:
            if ours != cli_flag:
                message = re.sub(rf"(?<![\w-]){cli_flag}(?![\w-])", ours, message)
        return message


LAUNCH_FLAGS = ("nproc-per-node", "nnodes", "node-rank", "rdzv-endpoint")
CLI_FLAGS = Flags()


@dataclass
class Prepared:
    """A run that passed every check: its folder is locked and its staging folder is empty."""

    config: Config
    config_path: str
    device: torch.device
    arms: list[str]
    repeats: int | None
    stack: str  # the MODULE:FUNCTION spec, as each worker loads it
    stack_factory: Callable[..., Any]  # the same function, loaded in this process
    num_parameters: int
    folder: RunFolder
    launch: Launch = field(default_factory=Launch)  # each run one process, or a torchrun job

    @property
    def out(self) -> Path:
        """Where the run writes: the staging folder until it is published."""
        return self.folder.staging


def load(config_path: str | Path) -> Config:
    """The config, or a PreflightError saying what is wrong with it."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise PreflightError(str(exc)) from None


def preflight(
    config_path: str | Path,
    *,
    out: Path,
    device: torch.device,
    arms: Sequence[str] = ("baseline", "optimized"),
    repeats: int | None = None,
    stack: str = DEFAULT_STACK,
    flags: Flags = CLI_FLAGS,
    config: Config | None = None,
    resume: Callable[[Config], Config] | None = None,
    fits: Callable[[Config, str, torch.device], int] = check_workload,
    launch: Launch | None = None,
) -> Prepared:
    """Check the run in this order, then lock its folder; PreflightError at the first problem.

    `config`: already loaded from `config_path` (the CLI checks --arms after it); `resume`:
    the config a checkpoint continues with (the CLI's --resume check); `fits`: the model-size
    check (the CLI passes its own name for it, which its tests replace).
    """
    if config is None:
        config = load(config_path)
    arms = list(arms)
    if repeats is not None and repeats < 1:
        raise PreflightError(f"{flags.repeats}: must be >= 1, got {repeats}")
    if resume is not None:
        config = resume(config)
    launch = launch or Launch()
    try:
        launch.check(config, device)
    except LaunchError as exc:
        raise PreflightError(flags.name(str(exc))) from None
    try:
        num_parameters = fits(config, str(config_path), device)
        factory = check_stack_factory(stack, config, arms, device)
    except (ModelTooLarge, StackSpecError, WorkloadError) as exc:
        raise PreflightError(flags.name(str(exc))) from None
    folder = RunFolder(Path(out))
    try:
        folder.acquire()
    except RunDirError as exc:
        raise PreflightError(flags.name(str(exc))) from None
    return Prepared(
        config, str(config_path), device, arms, repeats, stack, factory, num_parameters, folder,
        launch,
    )  # fmt: skip


@dataclass(frozen=True)
class Ending:
    """Where a judged run ended up, and the exit code that says so."""

    published: Path | None  # the run folder, when the run was moved into place
    kept: Path | None  # `.DIR.incomplete`, when it was set aside instead
    exit_code: int


def write_comparison(
    outcome: Outcome, out: Path, tests: dict[str, str] | None = None, benchmarks: list | None = None
) -> dict[str, Any]:
    """OUT/comparison.json: the outcome's, with the suite's test outcomes and pytest-benchmark's
    statistics (None outside pytest). The only writer of the file: once per run."""
    comparison = {**outcome.comparison, "tests": tests, "benchmarks": benchmarks}
    write_json_atomic(comparison, out / COMPARISON)
    return comparison


def publish(
    folder: RunFolder,
    outcome: Outcome,
    console: Console,
    history: Sequence[Path] = (),
    tests: dict[str, str] | None = None,
    benchmarks: list | None = None,
) -> Ending:
    """Write the judged run's comparison.json (write_comparison), then move the run into place,
    unless it has a failed job and a complete earlier run is there (or the move fails): then set
    it aside. The report is rendered either way. A file that cannot be written sets the run
    aside, a crash (EXIT_CRASH)."""
    try:
        write_comparison(outcome, folder.staging, tests, benchmarks)
    except OSError as exc:
        console.line(f"{FAIL} {os_error_line(exc)}")
        return Ending(None, set_aside(folder, console, history), EXIT_CRASH)
    report_to_ci(outcome.typed, console)
    failed = [r for r in outcome.records if r.result is None]
    if folder.keeps_earlier_run(bool(failed)):
        console.line(
            f"{FAIL} {len(failed)} run(s) failed (no result): {folder.final} keeps its earlier "
            "complete run."
        )
        return Ending(None, set_aside(folder, console, history), outcome.exit_code)
    try:
        console.log_path = folder.publish() / "monitor.log"
    except OSError as exc:
        console.line(f"{FAIL} cannot move the run into place: {os_error_line(exc)}")
        return Ending(None, set_aside(folder, console, history), EXIT_CRASH)
    render_report(folder.final, console, history)
    return Ending(folder.final, None, outcome.exit_code)


def report_to_ci(
    comparison: Comparison, console: Console, env: Mapping[str, str] = os.environ
) -> None:
    """A judged job's verdict in GitHub Actions: the Markdown summary appended to
    $GITHUB_STEP_SUMMARY, when set; each failed criterion an error annotation on the console,
    when GITHUB_ACTIONS is "true". Never an error of the run."""
    if comparison.verdict is None:
        return
    from ryot.report.ci_summary import annotations, markdown

    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as out:
                out.write(markdown(comparison) + "\n")
        except OSError as exc:
            console.line(f"{WARN} GITHUB_STEP_SUMMARY: {os_error_line(exc)}")
    if env.get("GITHUB_ACTIONS") == "true":
        for line in annotations(comparison):
            console.line(line)


def set_aside(folder: RunFolder, console: Console, history: Sequence[Path] = ()) -> Path | None:
    """Keep a failed or interrupted run's files beside the run folder, which stays exactly as it
    was; returns where they are (None when even that failed: the console says why)."""
    try:
        kept = folder.set_aside()
    except OSError as exc:
        console.line(f"{FAIL} {os_error_line(exc)}")
        return None
    console.log_path = kept / "monitor.log"
    if (kept / COMPARISON).is_file():
        render_report(kept, console, history)
    console.line(f"{folder.final} is unchanged; this run's files are in {kept}")
    return kept


def render_report(run_dir: Path, console: Console, history: Sequence[Path] = ()) -> Path | None:
    """RUN_DIR/report.html, or a warning on the console (never an error of the run)."""
    from ryot.report.html import render_run_dir_or_warn  # jinja2 loads only to render

    path = render_run_dir_or_warn(run_dir, console.line, list(history) or None)
    if path is not None:
        console.line(f"Report: {path}")
    return path
