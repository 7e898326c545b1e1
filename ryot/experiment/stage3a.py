"""The Stage 3a job end to end: plan, run, measure, judge, assemble comparison.json's content,
print. The publish step (ryot.experiment.session.publish) writes it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ryot.bench.sizing import parameter_count
from ryot.bench.workload import bench_record
from ryot.comparison.model import Comparison
from ryot.config import Config
from ryot.console import FAIL, OK, Console
from ryot.experiment.console_report import print_arm, print_comparison, print_verdict
from ryot.experiment.environment import environment, timestamp
from ryot.experiment.plan import pair_jobs, plan_runs
from ryot.experiment.runners import SubprocessRunner, execute, one_node
from ryot.judge import criteria as crit
from ryot.judge.judgement import Judgement, judge_job
from ryot.judge.measurements import Measurements, measure
from ryot.judge.runs import RunJob, RunRecord
from ryot.report.schema import SCHEMA_VERSION


@dataclass
class Outcome:
    # comparison.json's content but the suite's tests and benchmarks, which the publish step
    # (ryot.experiment.session.publish) adds as it writes the file, once
    comparison: dict[str, Any]
    typed: Comparison  # the same, read once (Comparison.from_dict): what the console prints
    records: list[RunRecord]
    rows: list[crit.CriterionResult]
    verdict: str | None  # None when no baseline/optimized pair was asked for

    @property
    def exit_code(self) -> int:
        if self.verdict is not None:
            return crit.EXIT_CODES[self.verdict]
        failed = any(r.result is None or r.result.diverged for r in self.records)
        return crit.EXIT_CODES[crit.DEBUG] if failed else 0


def artifact_problems(out: Path) -> list[str]:
    """Text artifacts written so far that do not read back as strict UTF-8."""
    problems = []
    for path in [out / "monitor.log", *sorted((out / "runs").glob("*.txt"))]:
        if not path.is_file():
            continue
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(f"{path.name} is not UTF-8 (byte {exc.start})")
    return problems


def run_stage3a(
    config: Config,
    config_path: str,
    out: Path,
    device: torch.device,
    arms: list[str],
    runner,
    console: Console,
    repeats: int | None = None,
    command: str = "",
    resume: Path | None = None,
    earlier: Path | None = None,
) -> Outcome:
    """Train the planned runs and judge them; comparison.json's content is the outcome's, which
    the publish step writes. `earlier`: the comparison.json this run will replace, whose
    single-process baseline a torchrun job is compared with."""
    paired = "baseline" in arms and "optimized" in arms
    jobs = _plan(config, arms, repeats, resume, runner, console)
    started = time.monotonic()
    extend = _extra_pairs(config, arms, console) if paired and one_node(runner) else None
    records = execute(jobs, runner, out, console, resume, extend)
    job_wall_s = time.monotonic() - started

    rows: list[crit.CriterionResult] = []
    verdict = None
    measured = None
    if paired:
        measured = measure(config, records, artifact_problems(out))
        rows = crit.judge(measured, config.criteria)
        verdict = crit.verdict(rows)
    judged = judge_job(config, records, measured, rows, verdict, earlier)
    for arm in dict.fromkeys(j.arm for j in jobs):
        last = judged.last_runs.get(arm)
        print_arm(console, arm, last.result if last is not None else None)

    comparison = assemble(config, config_path, device, records, judged, command, job_wall_s)
    outcome = Outcome(comparison, Comparison.from_dict(comparison), records, rows, verdict)
    if paired:
        print_comparison(console, outcome.typed)
        print_verdict(console, outcome.typed)
    return outcome


def _extra_pairs(config: Config, arms: list[str], console: Console):
    """`execute`'s extend: one more pair while it could turn the verdict (every failing
    criterion's CI holds its threshold: ryot.judge.criteria.undecided), at most
    measurement.extra_repeats in all, from the judge's own measurements."""
    main = [a for a in arms if a in ("baseline", "optimized")]
    added = 0

    def extend(records: list[RunRecord]) -> list[RunJob]:
        nonlocal added
        if added >= config.measurement.extra_repeats:
            return []
        measured = measure(config, records, [])
        open_ = crit.undecided(measured, config.criteria)
        if not open_:
            return []
        added += 1
        repeat = 1 + max(r.job.repeat for r in records if r.job.role == "pair")
        e = measured.matched_loss.estimate
        console.line(
            f"  adding pair {repeat + 1} ({added} of measurement.extra_repeats "
            f"{config.measurement.extra_repeats}): undecided after {repeat} pairs: "
            f"{', '.join(open_)} (speed at equal quality {100 * e.point:.1f}%, CI "
            f"{100 * e.low:.1f} .. {100 * e.high:.1f}%, threshold "
            f"{config.criteria.min_speedup_percent:g}%)"
        )
        return pair_jobs(config, main, repeat, 0)

    return extend


def _plan(config, arms, repeats, resume, runner, console: Console) -> list[RunJob]:
    """The runs, in order: the same on every node of a torchrun job, which is what keeps each
    job's rendezvous and both arms of every pair on the same nodes."""
    if repeats is None:
        # Repeats exist to pair the arms; a lone arm is trained once unless asked otherwise.
        paired = "baseline" in arms and "optimized" in arms
        repeats = config.measurement.repeats if paired else 1
    ablation = config.measurement.ablation and resume is None
    jobs = plan_runs(config, arms, repeats, ablation)
    where = ""
    if isinstance(runner, SubprocessRunner):
        where = ", each in a fresh process"
        if runner.launch.distributed:
            where = f", each a {runner.launch.describe()}"
    plural = "s" if len(jobs) != 1 else ""
    console.line(f"Plan: {len(jobs)} run{plural} ({', '.join(j.arm for j in jobs)}){where}")
    return jobs


def follow_stage3a(
    config: Config,
    out: Path,
    arms: list[str],
    runner: SubprocessRunner,
    console: Console,
    repeats: int | None = None,
    resume: Path | None = None,
) -> int:
    """Node 1, 2, ... of a multi-node job: run every job of the same plan with node 0, which
    holds rank 0 and so judges and writes. Returns 0 when every job ended well here, 3 else."""
    jobs = _plan(config, arms, repeats, resume, runner, console)
    records = execute(jobs, runner, out, console, resume)
    failed = [r for r in records if r.exit_code != 0]
    for r in failed:
        console.line(f"{FAIL} {r.job.label}: {r.error or f'exit code {r.exit_code}'}")
    node = runner.launch.node_rank
    if failed:
        return crit.EXIT_CODES[crit.DEBUG]
    console.line(f"{OK} node {node}: {len(records)} jobs trained; node 0 judges and writes")
    return 0


def build_comparison(
    config: Config,
    config_path: str,
    device: torch.device,
    records: list[RunRecord],
    measured: Measurements | None,
    rows: list[crit.CriterionResult],
    verdict: str | None,
    command: str,
) -> dict[str, Any]:
    """comparison.json's content from a job's runs and, for a paired job, its measurements,
    criteria and verdict (no job wall time, no tests or benchmarks)."""
    judged = judge_job(config, records, measured, rows, verdict)
    return assemble(config, config_path, device, records, judged, command)


def assemble(
    config: Config,
    config_path: str,
    device: torch.device,
    records: list[RunRecord],
    judged: Judgement,
    command: str,
    job_wall_s: float | None = None,
) -> dict[str, Any]:
    """comparison.json's content (schema: ryot/report/comparison.schema.json): what the job
    was, the judge's results, the raw runs. The suite's tests and benchmarks are None until
    the publish step writes the file with them."""
    first = next((r.result for r in records if r.result is not None), None)
    recorded = bench_record(config)
    bench, workload = recorded["bench"], recorded["workload"]
    if first is not None:
        num_parameters = first.num_parameters
    else:  # no run to say: Ryot's model is counted on the meta device, a team's is not built here
        num_parameters = None if config.model.is_factory else parameter_count(config.model)
    return {
        "schema_version": SCHEMA_VERSION,
        "stage": "3a",
        "model": workload["model"]["name"],
        "created": timestamp(),
        "config_name": config.name,
        "config_path": config_path,
        "command": command,
        "num_parameters": num_parameters,
        # Measured by the runs themselves where there are any; the bench's own numbers otherwise.
        "bayes_floor": first.bayes_floor if first else bench["bayes_floor"],
        "unigram_loss": first.unigram_loss if first else bench["unigram_loss"],
        "bench": bench,
        "workload": workload,
        **judged.to_dict(),
        "environment": environment(device),
        "config": config.to_dict(),
        "runs": [r.to_dict() for r in records],
        "benchmarks": None,
        "tests": None,
        # every run of the job, start to end, by the wall clock (each run's own: runs[].wall_s)
        **({"job_wall_s": job_wall_s} if job_wall_s is not None else {}),
    }
