"""The Stage 3a job end to end: plan, run, measure, judge, write comparison.json, print."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ryot.bench import data
from ryot.bench.model import ScaledTransformerModel
from ryot.config import Config
from ryot.console import BAR, FAIL, OK, WARN, Console
from ryot.experiment.environment import environment, timestamp
from ryot.experiment.plan import plan_runs
from ryot.experiment.runners import SubprocessRunner, execute
from ryot.judge import criteria as crit
from ryot.judge.measurements import Measurements, measure, summarize_arm, throughput
from ryot.judge.runs import RunRecord
from ryot.osutil import write_json_atomic
from ryot.report.schema import SCHEMA_VERSION
from ryot.train.results import ArmResult

EPOCH_HEADER = ["Epoch", "Loss", "Time (s)", "Throughput (tok/s)", "Status"]
EPOCH_WIDTHS = [5, 9, 8, 18, 6]


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
    """The arm's last finished run; the A/A repeat only stands in for no other baseline."""
    found = [r for r in records if r.job.arm == arm and r.result is not None]
    own = [r for r in found if r.job.role != "aa"]
    return (own or found)[-1].result if found else None


def _pair_results(records: list[RunRecord], arm: str) -> list[ArmResult | None]:
    return [r.result for r in records if r.job.arm == arm and r.job.role == "pair"]


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
) -> Outcome:
    """Train the planned runs and judge them; writes DIR/comparison.json."""
    paired = "baseline" in arms and "optimized" in arms
    if repeats is None:
        # Repeats exist to pair the arms; a lone arm is trained once unless asked otherwise.
        repeats = config.measurement.repeats if paired else 1
    ablation = config.measurement.ablation and resume is None
    jobs = plan_runs(config, arms, repeats, ablation)
    where = ", each in a fresh process" if isinstance(runner, SubprocessRunner) else ""
    plural = "s" if len(jobs) != 1 else ""
    console.line(f"Plan: {len(jobs)} run{plural} ({', '.join(j.arm for j in jobs)}){where}")
    records = execute(jobs, runner, out, console, resume)
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
    write_json_atomic(comparison, out / "comparison.json")
    outcome = Outcome(comparison, records, rows, verdict)
    if paired:
        print_comparison(console, comparison)
        print_verdict(console, comparison)
    return outcome


def _pct(x: float | None) -> float | None:
    """A fraction as a JSON-ready percentage (None for unknown or infinite)."""
    return 100.0 * x if x is not None and math.isfinite(x) else None


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
                _pct(measured.time_to_target.estimate.point), measured.loss_delta.estimate.point
            ),
            "exit_code": crit.EXIT_CODES[verdict],
            "reasons": verdict_reasons(rows, evidence),
        }
        if paired
        else None,
        "evidence": evidence,
        "ablation": ablation_table(records),
        "environment": environment(device),
        "config": config.to_dict(),
        "runs": [r.to_dict() for r in records],
        "benchmarks": None,
        "tests": None,
    }


def _comparison(m: Measurements, rows: list[crit.CriterionResult], verdict: str) -> dict:
    """The seed plan's comparison block, with the speedup at equal quality beside it."""
    loss_row = next((r for r in rows if r.id == "loss_match"), None)
    return {
        "time_to_target_speedup_percent": _pct(m.time_to_target.estimate.point),
        "speedup_percent": _pct(m.speedup.point),
        "throughput_improvement_percent": _pct(m.throughput.point),
        "loss_delta": m.loss_delta.estimate.to_dict()["point"],
        "loss_non_inferior": m.loss_delta.non_inferior,
        "loss_equivalent": m.loss_delta.equivalent,
        "loss_convergence_match": bool(loss_row and loss_row.passed),
        "all_criteria_met": verdict == crit.GO,
    }


def epoch_cells(e) -> list[str]:
    return [
        str(e.epoch),
        _fmt(e.mean_loss, ".4f"),  # None: a NaN loss, stored as JSON null
        f"{e.time_s:.2f}",
        f"{e.tokens_per_s:,.0f}",
        OK if e.status == "ok" else FAIL,
    ]


def print_arm(console: Console, arm: str, r: ArmResult | None) -> None:
    console.line()
    console.heading(f"{arm.upper()} TRAINING")
    if r is None:
        console.line(f"{FAIL} no completed run of this arm")
        return
    for ev in r.evidence:
        if ev["enabled"]:
            console.line(f"{ev['name']}: {', '.join(ev['applied']) or 'nothing applied'}")
            for s in ev["skipped"]:
                console.line(f"  {WARN} skipped {s['what']}: {s['why']}")
    console.table(EPOCH_HEADER, [epoch_cells(e) for e in r.epochs], EPOCH_WIDTHS)
    console.line()
    if r.diverged:
        console.line(f"{FAIL} {arm.upper()} TRAINING DIVERGED: {r.divergence}")
        return
    tokens = sum(r.step_tokens)
    console.line(f"{arm.upper()} TRAINING COMPLETE")
    if r.resumed_from_step:
        console.line(f"Resumed from step: {r.resumed_from_step}")
    console.line(f"Total time: {r.total_time_s:.2f} seconds (setup {r.setup_time_s:.2f} s)")
    if r.stall_s > 0:
        console.line(
            f"Machine stalls: {r.stall_s:.2f} s taken off the clock (the stack's own time "
            f"{r.clock_s:.2f} s)"
        )
    # A zero training time or a NaN loss is judged (DEBUG) later; printing it must not crash.
    epoch_time = r.train_time_s / len(r.epochs) if r.epochs else None
    console.line(f"Average epoch time: {_fmt(epoch_time)} seconds")
    first = r.epochs[0].mean_loss if r.epochs else None
    console.line(f"Final loss: {_fmt(r.final_loss, '.4f')} (first epoch {_fmt(first, '.4f')})")
    console.line(
        f"Validation loss: {_fmt(r.val_loss, '.4f')} (before training "
        f"{_fmt(r.initial_val_loss, '.4f')}; unigram {_fmt(r.unigram_loss, '.4f')}, "
        f"Bayes floor {_fmt(r.bayes_floor, '.4f')})"
    )
    rate = tokens / r.train_time_s if r.train_time_s > 0 else None
    console.line(f"Average throughput: {_fmt(rate, ',.0f')} tok/s")
    console.line(f"Peak memory: {r.peak_memory_mb:.0f} MiB ({r.memory_method})")
    if r.peak_rss_mb is not None:
        console.line(f"Peak RSS: {r.peak_rss_mb:.0f} MiB (includes memory the allocator keeps)")


def _fmt(x, spec=".2f"):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _pct_text(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


def headline(m: dict[str, Any]) -> str:
    """The speedup at equal quality with its CI, from comparison.json's measurements."""
    e, s = m["time_to_target"], m["speedup"]

    def ci(est: dict[str, Any]) -> str:
        # With pairs measured, a missing bound is an unbounded one (n = 1); JSON cannot hold
        # the infinity itself.
        lo, hi = (
            _pct_text(est[k]) if est[k] is not None or not est["n"] else inf
            for k, inf in (("low", "-inf"), ("high", "+inf"))
        )
        return f"{100 * est['level']:g}% CI {lo} .. {hi}"

    point = _pct_text(e["point"]) if e["point"] is not None else "n/a"
    return (
        f"Speedup at equal quality (time to matched loss): {point} ({ci(e)}); "
        f"end to end {_pct_text(s['point'])} ({ci(s)})"
    )


def learning_lines(m: dict[str, Any]) -> list[str]:
    """The baseline's learning, each pair's matched loss and times, and the stalls."""
    w = m["learning"]
    lines = [
        f"Baseline learning (worst seed): loss {_fmt(w['initial_loss'], '.4f')} -> "
        f"{_fmt(w['final_loss'], '.4f')} (drop {_fmt(w['drop'], '.3f')} nats), context learned "
        f"{_pct_text(w['context_learned'])} (unigram {_fmt(w['unigram_loss'], '.4f')}, "
        f"Bayes floor {_fmt(w['bayes_floor'], '.4f')})"
    ]
    for p in m["time_to_target"]["pairs"]:
        lines.append(
            f"Seed {p['seed']}: matched loss L* {_fmt(p['loss'], '.4f')} (finals "
            f"{_fmt(p['baseline_final'], '.4f')} / {_fmt(p['optimized_final'], '.4f')}), "
            f"reached in {_fmt(p['baseline_s'])} s / {_fmt(p['optimized_s'])} s "
            "(baseline / optimized)"
        )
    stalls = m.get("stalls") or {}
    # under 10 ms is the detector's resolution, and would print as 0.00 s
    stalled = [r for r in stalls.get("runs", []) if r["stall_s"] >= 0.01]
    if stalled:
        shown = ", ".join(f"{r['label']} {r['stall_s']:.2f} s" for r in stalled)
        lines.append(f"Machine stalls taken off the clock: {shown}")
    else:
        lines.append("Machine stalls taken off the clock: none seen")
    return lines


def verdict_reasons(rows: list[crit.CriterionResult], evidence: dict[str, list]) -> list[str]:
    """Why the verdict is not GO, in words: each failed criterion, then what the optimized arm
    measured it could not apply (on a CPU without native bf16, the kernel's bf16 autocast)."""
    reasons = [r.summary for r in rows if not r.passed]
    if reasons:
        for ev in evidence.get("optimized", []):
            if ev.get("enabled"):
                reasons += [f"{ev['name']} skipped {s['what']}: {s['why']}" for s in ev["skipped"]]
    return reasons


def print_comparison(console: Console, c: dict[str, Any]) -> None:
    b, o = c["baseline"], c["optimized"]
    if not b or not o:
        return
    console.line()
    console.heading("PHASE 3 STAGE 3a RESULTS COMPARISON")
    m = c.get("measurements")
    if m:
        console.line(headline(m))
        for line in learning_lines(m):
            console.line(line)
        console.line()

    def change(base, opt, lower_is_better=True):
        if base is None or opt is None or base == 0:
            return "n/a"
        pct = 100.0 * (base - opt) / base if lower_is_better else 100.0 * (opt - base) / base
        return f"{base - opt if lower_is_better else opt - base:+.2f} ({pct:+.1f}%)"

    rows = [
        ["Total training time (s)", _fmt(b["total_time"]), _fmt(o["total_time"]),
         change(b["total_time"], o["total_time"])],
        ["Average epoch time (s)", _fmt(b["avg_epoch_time"]), _fmt(o["avg_epoch_time"]),
         change(b["avg_epoch_time"], o["avg_epoch_time"])],
        ["Final loss value", _fmt(b["final_loss"], ".4f"), _fmt(o["final_loss"], ".4f"),
         _fmt(None if o["final_loss"] is None or b["final_loss"] is None
              else o["final_loss"] - b["final_loss"], "+.4f")],
        ["Validation loss", _fmt(b["val_loss"], ".4f"), _fmt(o["val_loss"], ".4f"),
         _fmt(c["comparison"]["loss_delta"], "+.4f")],
        ["Average throughput (tok/s)", _fmt(b["throughput"], ",.0f"), _fmt(o["throughput"], ",.0f"),
         change(b["throughput"], o["throughput"], lower_is_better=False)],
        ["Samples/second", _fmt(b["samples_per_s"]), _fmt(o["samples_per_s"]),
         change(b["samples_per_s"], o["samples_per_s"], lower_is_better=False)],
    ]  # fmt: skip
    console.table(["METRIC", "BASELINE", "OPTIMIZED", "IMPROVEMENT"], rows, [26, 10, 10, 18])
    console.line(
        f"(medians over {b['runs']} interleaved pairs; times are end-to-end, machine stalls off)"
    )


def print_verdict(console: Console, c: dict[str, Any]) -> None:
    """Each criterion's summary line (as pytest and the report show it), then the verdict."""
    console.line()
    console.heading("SUCCESS CRITERIA VALIDATION")
    for row in c["criteria"]:
        console.line(f"{OK if row['passed'] else FAIL} {row['summary']}")
    v = c["verdict"]
    console.line()
    console.heading(
        f"PHASE 3 STAGE 3a: {v['status']} {BAR} {v['decision']} ({v['scenario']} scenario)"
    )
    for reason in v.get("reasons", []):
        console.line(f"  why: {reason}")
