"""Stage 3a on the console: each arm's epochs, the comparison and the verdict.

The headline and the comparison table are the report's own (ryot.report.summary), built from
the typed comparison (ryot.comparison.model), and every number goes through
ryot.report.formatting: the console and the page show the same rows, labels and rounding.
"""

from __future__ import annotations

from ryot.comparison.model import Comparison
from ryot.comparison.rules import FLOOR_UNKNOWN
from ryot.comparison.runs import EvidenceItem
from ryot.console import BAR, FAIL, OK, WARN, Console
from ryot.optim import registry
from ryot.report.formatting import (
    fmt,
    fmt_frac_pct,
    fmt_int,
    fmt_loss,
    fmt_seconds,
    fmt_text,
    is_num,
)
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
    return [*epoch_numbers(e), OK if e.status == "ok" else FAIL]


def print_arm(console: Console, arm: str, r: ArmResult | None) -> None:
    console.line()
    console.heading(f"{arm.upper()} TRAINING")
    if r is None:
        console.line(f"{FAIL} no completed run of this arm")
        return
    for ev in map(EvidenceItem.from_dict, r.evidence):  # comparison.json's evidence items
        if ev.enabled:
            title = registry.seed_name(fmt_text(ev.name))  # the seed's name, then what it is
            applied = ", ".join(fmt_text(a) for a in ev.applied)
            console.line(f"{title}: {applied or 'nothing applied'}")
            for s in ev.skipped:
                console.line(f"  {WARN} skipped {fmt_text(s.what)}: {fmt_text(s.why)}")
    console.table(list(EPOCH_HEADER), [epoch_cells(e) for e in r.epochs], EPOCH_WIDTHS)
    console.line()
    if r.diverged:
        console.line(f"{FAIL} {arm.upper()} TRAINING DIVERGED: {r.divergence}")
        return
    tokens = sum(r.step_tokens)
    console.line(f"{arm.upper()} TRAINING COMPLETE")
    if r.resumed_from_step:
        console.line(f"Resumed from step: {r.resumed_from_step}")
    console.line(f"Total time: {fmt(r.wall_time_s)} seconds (setup {fmt_seconds(r.setup_time_s)})")
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
    # None: no floor is known for this data (token files): said so, never "n/a"
    floor = FLOOR_UNKNOWN if r.bayes_floor is None else f"Bayes floor {fmt_loss(r.bayes_floor)}"
    console.line(
        f"Validation loss: {fmt_loss(r.val_loss)} (before training "
        f"{fmt_loss(r.initial_val_loss)}; unigram {fmt_loss(r.unigram_loss)}, {floor})"
    )
    rate = tokens / r.train_time_s if r.train_time_s > 0 else None
    console.line(f"Average throughput: {fmt_int(rate)} tok/s")
    console.line(f"Peak memory: {fmt(r.peak_memory_mb, '.0f')} MiB ({r.memory_method})")
    if r.peak_rss_mb is not None:
        console.line(
            f"Peak RSS: {fmt(r.peak_rss_mb, '.0f')} MiB (includes memory the allocator keeps)"
        )


def learning_lines(c: Comparison) -> list[str]:
    """The baseline's learning, each pair's matched loss (schema 2.0: the target) and times,
    the machine stalls and the contaminated runs, from the comparison's measurements."""
    m = c.measurements
    w = m.learning if m and m.learning else None
    loss = (
        f"Baseline learning (worst seed): loss {fmt_loss(w and w.initial_loss)} -> "
        f"{fmt_loss(w and w.final_loss)} (drop {fmt(w and w.drop, '.3f')} nats)"
    )
    if c.floor_unknown is None:
        learned = (
            f"context learned {fmt_frac_pct(w and w.context_learned, signed=False)} (unigram "
            f"{fmt_loss(w and w.unigram_loss)}, Bayes floor {fmt_loss(w and w.bayes_floor)})"
        )
    else:  # what the criterion reads where no floor is known
        learned = (
            f"gain over the unigram loss {fmt(w and w.gain_over_unigram, '.3f')} nats (unigram "
            f"{fmt_loss(w and w.unigram_loss)}; {c.floor_unknown})"
        )
    lines = [f"{loss}, {learned}"]
    target = m.target.loss if m and m.target else None
    for p in m.matched_loss.pairs if m and m.matched_loss else ():
        base, opt = (
            fmt_seconds(p.seconds(arm)) if is_num(p.seconds(arm)) else "not reached"
            for arm in ("baseline", "optimized")
        )
        if c.at_target:
            level = f"target {fmt_loss(target)}"
        else:
            level = (
                f"matched loss L* {fmt_loss(p.loss)} (finals "
                f"{fmt_loss(p.baseline_final)} / {fmt_loss(p.optimized_final)})"
            )
        lines.append(
            f"Seed {fmt_text(p.seed)}: {level}, reached in {base} / {opt} (baseline / optimized)"
        )
    stalls = c.stalls.runs if c.stalls else ()
    # under 10 ms is the detector's resolution, and would print as 0.00 s
    stalled = [r for r in stalls if is_num(r.stall_s) and r.stall_s >= 0.01]
    if stalled:
        shown = ", ".join(f"{fmt_text(r.label)} {fmt_seconds(r.stall_s)}" for r in stalled)
        lines.append(f"Machine stalls taken off the clock: {shown}")
    else:
        lines.append("Machine stalls taken off the clock: none seen")
    return lines + contamination_lines(c)


def print_comparison(console: Console, c: Comparison) -> None:
    """The headline, the baseline's learning and the comparison table (the report's rows)."""
    rows = comparison_rows(c)
    if not rows or c.baseline is None or c.optimized is None:
        return
    console.line()
    console.heading("PHASE 3 STAGE 3a RESULTS COMPARISON")
    if c.measurements is not None:
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


def print_verdict(console: Console, c: Comparison) -> None:
    """Each criterion's summary line (as pytest and the report show it), then the verdict."""
    console.line()
    console.heading("SUCCESS CRITERIA VALIDATION")
    for row in c.criteria:  # a file before summaries (schema 1.0): the criterion's name
        line = row.summary if row.summary is not None else fmt_text(row.name or row.id)
        console.line(f"{OK if row.passed else FAIL} {line}")
    v = c.verdict
    if v is None:
        return
    console.line()
    console.heading(
        f"PHASE 3 STAGE 3a: {fmt_text(v.status)} {BAR} {fmt_text(v.decision)} "
        f"({fmt_text(v.scenario)} scenario)"
    )
    for reason in v.reasons:
        console.line(f"  why: {fmt_text(reason)}")
