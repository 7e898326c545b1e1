"""Stage 3a on the console: each arm's epochs, the comparison and the verdict.

The headline and the comparison table are the report's own (ryot.report.summary), built from
comparison.json's dict, and every number goes through ryot.report.formatting: the console and
the page show the same rows, labels and rounding.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ryot.console import BAR, FAIL, OK, WARN, Console
from ryot.optim import registry
from ryot.report.fields import as_dict, as_list, get_path, is_num, judged_at_target, ttt_pairs
from ryot.report.formatting import fmt, fmt_frac_pct, fmt_int, fmt_loss, fmt_seconds
from ryot.report.summary import (
    EPOCH_HEADER,
    TABLE_HEADER,
    comparison_note,
    comparison_rows,
    contamination_lines,
    epoch_numbers,
    headline,
    wall_gap_text,
)
from ryot.train.results import ArmResult, EpochMetrics

EPOCH_WIDTHS = [5, 9, 8, 18, 6]
TABLE_WIDTHS = [26, 10, 10, 18]  # the narrowest each column gets; a longer cell widens it


def epoch_cells(e: EpochMetrics) -> list[str]:
    return [*epoch_numbers(dataclasses.asdict(e)), OK if e.status == "ok" else FAIL]


def print_arm(console: Console, arm: str, r: ArmResult | None) -> None:
    console.line()
    console.heading(f"{arm.upper()} TRAINING")
    if r is None:
        console.line(f"{FAIL} no completed run of this arm")
        return
    for ev in r.evidence:
        if ev["enabled"]:
            title = registry.seed_name(ev["name"])  # the seed's name, then what it really is
            console.line(f"{title}: {', '.join(ev['applied']) or 'nothing applied'}")
            for s in ev["skipped"]:
                console.line(f"  {WARN} skipped {s['what']}: {s['why']}")
    console.table(list(EPOCH_HEADER), [epoch_cells(e) for e in r.epochs], EPOCH_WIDTHS)
    console.line()
    if r.diverged:
        console.line(f"{FAIL} {arm.upper()} TRAINING DIVERGED: {r.divergence}")
        return
    tokens = sum(r.step_tokens)
    console.line(f"{arm.upper()} TRAINING COMPLETE")
    if r.resumed_from_step:
        console.line(f"Resumed from step: {r.resumed_from_step}")
    console.line(f"Total time: {fmt(r.total_time_s)} seconds (setup {fmt_seconds(r.setup_time_s)})")
    if r.stall_s > 0:
        console.line(
            f"Machine stalls: {fmt_seconds(r.stall_s)} taken off the clock (the stack's own time "
            f"{fmt_seconds(r.clock_s)})"
        )
    # A zero training time or a NaN loss is judged (DEBUG) later; printing it must not crash.
    epoch_time = r.train_time_s / len(r.epochs) if r.epochs else None
    console.line(f"Average epoch time: {fmt(epoch_time)} seconds")
    first = r.epochs[0].mean_loss if r.epochs else None
    console.line(f"Final loss: {fmt_loss(r.final_loss)} (first epoch {fmt_loss(first)})")
    console.line(
        f"Validation loss: {fmt_loss(r.val_loss)} (before training "
        f"{fmt_loss(r.initial_val_loss)}; unigram {fmt_loss(r.unigram_loss)}, "
        f"Bayes floor {fmt_loss(r.bayes_floor)})"
    )
    rate = tokens / r.train_time_s if r.train_time_s > 0 else None
    console.line(f"Average throughput: {fmt_int(rate)} tok/s")
    console.line(f"Peak memory: {fmt(r.peak_memory_mb, '.0f')} MiB ({r.memory_method})")
    if r.peak_rss_mb is not None:
        console.line(
            f"Peak RSS: {fmt(r.peak_rss_mb, '.0f')} MiB (includes memory the allocator keeps)"
        )


def learning_lines(c: dict[str, Any]) -> list[str]:
    """The baseline's learning, each pair's matched loss (schema 2.0: the target) and times,
    the machine stalls and the contaminated runs, from comparison.json's measurements."""
    w = as_dict(get_path(c, "measurements", "learning"))
    lines = [
        f"Baseline learning (worst seed): loss {fmt_loss(w.get('initial_loss'))} -> "
        f"{fmt_loss(w.get('final_loss'))} (drop {fmt(w.get('drop'), '.3f')} nats), context "
        f"learned {fmt_frac_pct(w.get('context_learned'), signed=False)} (unigram "
        f"{fmt_loss(w.get('unigram_loss'))}, Bayes floor {fmt_loss(w.get('bayes_floor'))})"
    ]
    target = get_path(c, "measurements", "target", "loss") if judged_at_target(c) else None
    for p in ttt_pairs(c):
        base, opt = (
            fmt_seconds(p.get(f"{arm}_s")) if is_num(p.get(f"{arm}_s")) else "not reached"
            for arm in ("baseline", "optimized")
        )
        if judged_at_target(c):
            level = f"target {fmt_loss(target)}"
        else:
            level = (
                f"matched loss L* {fmt_loss(p.get('loss'))} (finals "
                f"{fmt_loss(p.get('baseline_final'))} / {fmt_loss(p.get('optimized_final'))})"
            )
        lines.append(
            f"Seed {p.get('seed', 'n/a')}: {level}, reached in {base} / {opt} "
            "(baseline / optimized)"
        )
    stalls = as_list(get_path(c, "measurements", "stalls", "runs"))
    # under 10 ms is the detector's resolution, and would print as 0.00 s
    stalled = [r for r in stalls if is_num(get_path(r, "stall_s")) and r["stall_s"] >= 0.01]
    if stalled:
        shown = ", ".join(f"{r.get('label', 'n/a')} {fmt_seconds(r['stall_s'])}" for r in stalled)
        lines.append(f"Machine stalls taken off the clock: {shown}")
    else:
        lines.append("Machine stalls taken off the clock: none seen")
    return lines + contamination_lines(c)


def print_comparison(console: Console, c: dict[str, Any]) -> None:
    """The headline, the baseline's learning and the comparison table (the report's rows)."""
    rows = comparison_rows(c)
    if not rows or not c.get("baseline") or not c.get("optimized"):
        return
    console.line()
    console.heading("PHASE 3 STAGE 3a RESULTS COMPARISON")
    if c.get("measurements"):
        console.line(headline(c) or "")
        gap = wall_gap_text(c)
        if gap:
            console.line(f"By the wall clock: {gap}")
        for line in learning_lines(c):
            console.line(line)
        console.line()
    cells = [list(row) for row in rows]
    widths = [max([w, *(len(r[k]) for r in cells)]) for k, w in enumerate(TABLE_WIDTHS)]
    console.table(list(TABLE_HEADER), cells, widths)
    console.line(f"({comparison_note(c, rows)})")


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
