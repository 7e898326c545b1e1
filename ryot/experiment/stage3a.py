"""The Stage 3a job end to end: plan, run, measure, judge, write comparison.json, print."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ryot.bench import data
from ryot.bench.model import ScaledTransformerModel
from ryot.config import Config
from ryot.console import FAIL, OK, Console
from ryot.experiment.console_report import print_arm, print_comparison, print_verdict
from ryot.experiment.environment import environment, timestamp
from ryot.experiment.plan import pair_jobs, plan_runs
from ryot.experiment.runners import SubprocessRunner, execute
from ryot.judge import criteria as crit
from ryot.judge.measurements import Measurements, measure, summarize_arm, throughput
from ryot.judge.runs import RunJob, RunRecord
from ryot.judge.stats import percent
from ryot.osutil import write_json_atomic
from ryot.report.schema import SCHEMA_VERSION
from ryot.train.results import ArmResult


@dataclass
class Outcome:
    comparison: dict[str, Any]
    records: list[RunRecord]
    rows: list[crit.CriterionResult]
    verdict: str | None  # None when no baseline/optimized pair was asked for

    @property
    def exit_code(self) -> int:
        if self.verdict is not None:
            return crit.EXIT_CODES[self.verdict]
        failed = any(r.result is None or r.result.diverged for r in self.records)
        return crit.EXIT_CODES[crit.DEBUG] if failed else 0


def last_result(records: list[RunRecord], arm: str) -> ArmResult | None:
    """The arm's last full-length run that can be judged (not the discarded warm-up, not the
    short A/A run, not a contaminated run), else its last full-length run, else any."""
    found = [r for r in records if r.job.arm == arm and r.result is not None
             and r.job.role != "warmup"]  # fmt: skip
    full = [r for r in found if r.job.stop_after_epoch is None]
    clean = [r for r in full if not r.contamination]
    pick = clean or full or found
    return pick[-1].result if pick else None


def _pair_results(records: list[RunRecord], arm: str) -> list[ArmResult | None]:
    """The arm's clean pair runs: a contaminated run's time is never a summary's (none at all
    when the machine was too busy to judge)."""
    return [r.result for r in records
            if r.job.arm == arm and r.job.role == "pair" and not r.contamination]  # fmt: skip


def ablation_table(records: list[RunRecord]) -> dict[str, Any]:
    """Each ablation arm against the baseline of the same seed (repeat 0)."""
    base_times = [r.clock_s for r in _pair_results(records, "baseline") if r is not None]
    base0 = next((r.result for r in records if r.job.arm == "baseline" and r.job.role == "pair"
                  and r.job.repeat == 0), None)  # fmt: skip
    table = {}
    for rec in records:
        if rec.job.role != "ablation" or rec.result is None or not base_times:
            continue
        r = rec.result
        base_t = statistics.median(base_times)
        table[rec.job.arm] = {
            "total_time": r.clock_s,
            "speedup_percent": 100.0 * (1 - r.clock_s / base_t) if base_t > 0 else None,
            "val_loss": r.val_loss,
            "loss_delta": (r.val_loss - base0.val_loss)
            if base0 and r.val_loss is not None and base0.val_loss is not None
            else None,
            "throughput": throughput(r),
        }
    return table


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
    """Train the planned runs and judge them; writes DIR/comparison.json. `earlier`: the
    comparison.json this run will replace, whose single-process baseline a torchrun job is
    compared with."""
    paired = "baseline" in arms and "optimized" in arms
    jobs = _plan(config, arms, repeats, resume, runner, console)
    started = time.monotonic()
    extend = _extra_pairs(config, arms, console) if paired and _one_node(runner) else None
    records = execute(jobs, runner, out, console, resume, extend)
    job_wall_s = time.monotonic() - started
    for arm in dict.fromkeys(j.arm for j in jobs):
        print_arm(console, arm, last_result(records, arm))

    rows: list[crit.CriterionResult] = []
    verdict = None
    measured = None
    if paired:
        measured = measure(config, records, artifact_problems(out))
        rows = crit.judge(measured, config.criteria)
        verdict = crit.verdict(rows)

    comparison = build_comparison(
        config, config_path, device, records, measured, rows, verdict, command
    )
    # Every run of the job, start to end, by the wall clock (each run's own: runs[].wall_s)
    comparison["job_wall_s"] = job_wall_s
    if comparison["distributed"] and earlier is not None:
        reference = single_process_reference(earlier, config, comparison)
        comparison["distributed"]["single_process"] = reference
    write_json_atomic(comparison, out / "comparison.json")
    outcome = Outcome(comparison, records, rows, verdict)
    if paired:
        print_comparison(console, comparison)
        print_verdict(console, comparison)
    return outcome


def _one_node(runner) -> bool:
    """Whether this job runs on one machine. On several, every node would have to take the
    same decision from the same records: a multi-node job keeps its fixed plan."""
    return not (isinstance(runner, SubprocessRunner) and runner.launch.nnodes > 1)


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
        e = measured.time_to_target.estimate
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
    """comparison.json's content (schema: ryot/report/comparison.schema.json)."""
    first = next((r.result for r in records if r.result is not None), None)
    bench = data.bench_reference(config)
    paired = measured is not None and verdict is not None
    evidence = {
        arm: last_result(records, arm).evidence
        for arm in dict.fromkeys(r.job.arm for r in records)
        if last_result(records, arm) is not None
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "stage": "3a",
        "model": "ScaledTransformerModel",
        "created": timestamp(),
        "config_name": config.name,
        "config_path": config_path,
        "command": command,
        "num_parameters": first.num_parameters
        if first
        else ScaledTransformerModel(config.model).count_parameters(),
        # Measured by the runs themselves where there are any; the bench's own numbers otherwise.
        "bayes_floor": first.bayes_floor if first else bench["bayes_floor"],
        "unigram_loss": first.unigram_loss if first else bench["unigram_loss"],
        "bench": bench,
        "baseline": summarize_arm(_pair_results(records, "baseline")),
        "optimized": summarize_arm(_pair_results(records, "optimized")),
        "comparison": _comparison(measured, rows, verdict) if paired else None,
        "confidence_intervals": {
            "time_to_target": measured.time_to_target.estimate.to_dict(),
            "speedup": measured.speedup.to_dict(),
            "throughput": measured.throughput.to_dict(),
            "loss_delta": measured.loss_delta.estimate.to_dict(),
        }
        if paired
        else None,
        "measurements": measured.to_dict() if measured is not None else None,
        "noise": measured.noise.to_dict() if measured is not None else None,
        "criteria": [r.to_dict() for r in rows],
        "verdict": {
            "status": verdict,
            "decision": crit.DECISIONS[verdict],
            "scenario": crit.scenario(
                percent(measured.time_to_target.estimate.point), measured.loss_delta.estimate.point
            ),
            "exit_code": crit.EXIT_CODES[verdict],
            "reasons": verdict_reasons(rows, evidence),
        }
        if paired
        else None,
        "evidence": evidence,
        "ablation": ablation_table(records),
        "environment": environment(device),
        "distributed": distributed_summary(records),
        "config": config.to_dict(),
        "runs": [r.to_dict() for r in records],
        "benchmarks": None,
        "tests": None,
    }


def distributed_summary(records: list[RunRecord]) -> dict[str, Any] | None:
    """A torchrun job's world (size, backend) and each run's step-time skew between its ranks
    (per step, the slowest rank's own time less the fastest's); None for single processes."""
    results = [(r, r.result) for r in records if r.result is not None and r.result.world_size > 1]
    if not results:
        return None
    runs = []
    for rec, res in results:
        per_step = [max(s) - min(s) for s in zip(*res.rank_step_times, strict=False)] or [0.0]
        runs.append({
            "label": rec.job.label,
            "arm": rec.job.arm,
            "rank_median_step_s": [statistics.median(ts) if ts else None
                                   for ts in res.rank_step_times],
            "median_skew_s": statistics.median(per_step),
            "max_skew_s": max(per_step),
        })  # fmt: skip
    return {
        "world_size": results[0][1].world_size,
        "backend": results[0][1].backend,
        "median_skew_s": statistics.median(r["median_skew_s"] for r in runs),
        "max_skew_s": max(r["max_skew_s"] for r in runs),
        "runs": runs,
    }


def single_process_reference(path: Path, config: Config, c: dict) -> dict[str, Any] | None:
    """The baseline of an earlier single-process run of the same bench and training config
    (the run folder's previous comparison.json), beside this torchrun job's; None without one."""
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        runs = [r["result"] for r in earlier["runs"] if r.get("result")]
        base = earlier["baseline"]
        same = all(
            earlier["config"][k] == config.to_dict()[k] for k in ("model", "data", "training")
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not same or not base or not runs or any(r.get("world_size", 1) != 1 for r in runs):
        return None
    here = c.get("baseline") or {}
    return {
        "source": str(path),
        "clock_s": base.get("total_time"),
        "val_loss": base.get("val_loss"),
        "distributed_clock_s": here.get("total_time"),
        "distributed_val_loss": here.get("val_loss"),
    }


def _comparison(m: Measurements, rows: list[crit.CriterionResult], verdict: str) -> dict:
    """The seed plan's comparison block, with the speedup at equal quality beside it."""
    loss_row = next((r for r in rows if r.id == "loss_match"), None)
    return {
        "time_to_target_speedup_percent": percent(m.time_to_target.estimate.point),
        "speedup_percent": percent(m.speedup.point),
        "throughput_improvement_percent": percent(m.throughput.point),
        "loss_delta": m.loss_delta.estimate.to_dict()["point"],
        "loss_non_inferior": m.loss_delta.non_inferior,
        "loss_equivalent": m.loss_delta.equivalent,
        "loss_convergence_match": bool(loss_row and loss_row.passed),
        "all_criteria_met": verdict == crit.GO,
    }


def verdict_reasons(rows: list[crit.CriterionResult], evidence: dict[str, list]) -> list[str]:
    """Why the verdict is not GO, in words: each failed criterion, then what the optimized arm
    measured it could not apply (on a CPU without native bf16, the kernel's bf16 autocast)."""
    reasons = [r.summary for r in rows if not r.passed]
    if reasons:
        for ev in evidence.get("optimized", []):
            if ev.get("enabled"):
                reasons += [f"{ev['name']} skipped {s['what']}: {s['why']}" for s in ev["skipped"]]
    return reasons
