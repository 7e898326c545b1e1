"""The comparison's headline and table as plain data, built once from the typed comparison.

The console (ryot.experiment) prints them and the report page renders them, so both show the
same rows, labels and rounding. Like the rest of ryot.report this formats what the judge
measured (ryot.comparison.model): any value may be None, none is computed again here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ryot.comparison.measurements import Estimate, MatchedPair, TakenOff
from ryot.comparison.model import ArmSummary, Change, Comparison, SeedComparison
from ryot.report.formatting import (
    NA,
    fmt,
    fmt_change,
    fmt_ci,
    fmt_frac_pct,
    fmt_int,
    fmt_loss,
    fmt_loss_delta,
    fmt_seconds,
    fmt_text,
    is_num,
)

# --- the headline --------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One headline number: the value, its CI in words, and the small print under it."""

    id: str
    label: str
    value: str
    ci: str  # "95% CI [-0.2%, +7.4%]"
    detail: str  # "geometric mean of 3 pairs", or why there is no value
    note: str
    missed: bool = False  # a pair never reached the target: the value is "not reached"

    @property
    def sub(self) -> str:
        """The line under the value: its CI and how it was estimated (else why it is missing)."""
        return self.detail if self.missed else f"{self.ci} · {self.detail}"


def _ci(e: Estimate) -> str:
    return fmt_ci(e.level, e.low, e.high)


def _pairs_text(n: Any) -> str:
    return f"geometric mean of {n} pair{'' if n == 1 else 's'}"


def time_to_loss_words(c: Comparison) -> str:
    """What the speedup at equal quality times: one target (schema 2.0) or each pair's L*."""
    return "time to target" if c.at_target else "time to matched loss"


def time_to_loss_text(pairs: Sequence[MatchedPair], arm: str) -> str:
    """One arm's time to the pairs' loss (each pair's matched loss; judged at one target: the
    target) per pair in words ("not reached" for None: infinite time)."""
    values = [p.seconds(arm) for p in pairs]
    if not values:
        return NA
    if len(values) <= 4:
        return ", ".join(fmt_seconds(v) if is_num(v) else "not reached" for v in values)
    finite = [v for v in values if is_num(v)]
    text = f"{fmt(min(finite), '.2f')} to {fmt(max(finite), '.2f')} s" if finite else ""
    missed = len(values) - len(finite)
    if missed:
        text += f"{'; ' if text else ''}{missed} not reached"
    return f"{text} ({len(values)} pairs)"


def _losses_text(pairs: Sequence[MatchedPair]) -> str:
    """Each pair's matched loss L* in words (a range beyond 4 pairs)."""
    losses = [p.loss for p in pairs]
    if len(losses) <= 4:
        return ", ".join(fmt_loss(v) for v in losses)
    finite = [v for v in losses if is_num(v)]
    shown = f"{fmt_loss(min(finite))} to {fmt_loss(max(finite))}" if finite else NA
    return f"{shown} ({len(losses)} pairs)"


def matched_loss_figure(c: Comparison) -> Figure:
    """Speedup at equal quality, 1 - T_opt / T_base at each pair's matched loss (schema 2.0:
    at the one target loss), with its CI."""
    m = c.measurements
    e = m.matched_loss if m and m.matched_loss else None
    pairs = e.pairs if e else ()
    e = e or Estimate()
    missed = sum(1 for p in pairs if p.optimized_s is None)
    if missed:
        value = "not reached"
        detail = (
            f"the optimized arm never reached the target in {missed} of {len(pairs)} pair(s): "
            "infinite time, speedup -∞"
            if c.at_target  # matched-loss times are finite by construction: a None is a broken file
            else f"the optimized arm has no time to its matched loss in {missed} of "
            f"{len(pairs)} pair(s)"
        )
    else:
        value, detail = fmt_frac_pct(e.point), _pairs_text(len(pairs) if e.n is None else e.n)
    times = (
        f"baseline {time_to_loss_text(pairs, 'baseline')}; "
        f"optimized {time_to_loss_text(pairs, 'optimized')}"
    )
    if not pairs:
        note = f"no {time_to_loss_words(c)} measured"
    elif c.at_target:
        target = m.target.loss if m and m.target else None
        note = f"time to reach validation loss {fmt_loss(target)}: {times}"
    else:
        note = (
            f"each pair at its matched loss L* (the worse of its two final validation losses) "
            f"{_losses_text(pairs)}; time to L*: {times}"
        )
    label = f"Speedup at equal quality ({time_to_loss_words(c)})"
    return Figure("headline-ttt", label, value, _ci(e), detail, note, missed=bool(missed))


def speedup_figure(c: Comparison) -> Figure:
    """End-to-end speedup, 1 - T_opt / T_base over the whole budget, with its CI."""
    e = (c.measurements and c.measurements.speedup) or Estimate()
    note = "1 - T_opt / T_base over the whole budget, setup included"
    if not c.at_target:
        note += ", machine stalls off"
    return Figure(
        "headline-speedup",
        "End-to-end speedup (equal steps)",
        fmt_frac_pct(e.point),
        _ci(e),
        _pairs_text(NA if e.n is None else e.n),
        note,
    )


def _taken_off(run: TakenOff) -> str:
    """One judged run's seconds taken off its clock, stopped and contended."""
    return (
        f"{fmt_text(run.label)} {fmt_seconds(run.stall_s)} (stopped "
        f"{fmt_seconds(run.stopped_s)}, contended {fmt_seconds(run.contended_s)})"
    )


def wall_gap_text(c: Comparison) -> str | None:
    """The wall clock's end-to-end speedup against the stack clock's, in words: within the A/A
    noise, or the judged runs whose seconds taken off explain the gap, largest first; None
    before measurements.wall_gap (older files) or without a pair."""
    gap = c.measurements and c.measurements.wall_gap
    if not gap or gap.gap is None:
        return None
    points = fmt_frac_pct(gap.gap).replace("%", " points")
    noise = fmt_frac_pct(gap.noise, signed=False)
    if not gap.exceeds:
        return f"{points} from the stack clock's, within the A/A noise ({noise})"
    why = "; ".join(_taken_off(r) for r in gap.runs) or "no judged run had a stall"
    return (
        f"{points} from the stack clock's, more than the A/A noise ({noise}); the seconds "
        f"taken off the judged runs' clocks explain it, largest first: {why}"
    )


def wall_figure(c: Comparison) -> Figure | None:
    """End-to-end speedup by the wall clock (stalls on), beside the stack clock's; None before
    measurements.wall_speedup (older files)."""
    e = c.measurements and c.measurements.wall_speedup
    if not e:
        return None
    note = "1 - T_opt / T_base by the wall clock, machine stalls on"
    gap = wall_gap_text(c)
    return Figure(
        "headline-wall",
        "End-to-end speedup by the wall clock",
        fmt_frac_pct(e.point),
        _ci(e),
        _pairs_text(NA if e.n is None else e.n),
        f"{note}: {gap}" if gap else note,
    )


def headline_figures(c: Comparison) -> list[Figure]:
    """The speedups, at equal quality first, then end to end on the stack's clock and (schema
    3.0 files that have it) by the wall clock; none without a judged pair."""
    if c.measurements is None:
        return []
    wall = wall_figure(c)
    return [matched_loss_figure(c), speedup_figure(c), *([wall] if wall else [])]


def headline(c: Comparison) -> str | None:
    """The headline in one line: "Speedup at equal quality (time to matched loss): +43.9%
    (95% CI [+38.5%, +48.9%]); end to end +50.8% (95% CI [...]); by the wall clock +50.1%
    (95% CI [...])"; None without a pair."""
    figures = headline_figures(c)
    if not figures:
        return None
    at_quality, e2e, *wall = figures
    line = (
        f"{at_quality.label}: {at_quality.value} ({at_quality.ci}); end to end {e2e.value} "
        f"({e2e.ci})"
    )
    return line + "".join(f"; by the wall clock {w.value} ({w.ci})" for w in wall)


def contamination_lines(c: Comparison) -> list[str]:
    """The contaminated runs (never judged) and, when a planned pair or the A/A was left
    without a clean run, that the machine was too busy to judge; [] when none."""
    k = c.measurements and c.measurements.contamination
    if not k or not k.runs:
        return []
    bound = fmt_frac_pct(k.max_share, signed=False).replace(".0%", "%")
    lines = [
        f"Contaminated (more than {bound} of its time contended), re-run and never judged: "
        + "; ".join(
            f"{fmt_text(r.label)} {fmt_seconds(r.contended_s)} contended "
            f"({fmt_frac_pct(r.share, signed=False)})"
            for r in k.runs
        )
    ]
    if k.too_busy:
        busy = " and ".join(fmt_text(b) for b in k.busy) or NA
        lines.append(
            f"The machine was too busy to judge: {busy} left without a clean run after "
            f"{fmt_int(k.reruns)} re-run(s) (at most {fmt_int(k.max_reruns)})"
        )
    return lines


# --- the comparison table ------------------------------------------------------------------


class Row(NamedTuple):
    """One row of the comparison table, every cell already text."""

    label: str
    baseline: str
    optimized: str
    change: str  # absolute (relative), positive is better


TABLE_HEADER = ("METRIC", "BASELINE", "OPTIMIZED", "IMPROVEMENT")


def _change(c: Change | None) -> str:
    return fmt_change(c.improvement, c.relative) if c else NA


# The seed plan's table: (metric, the arm summary's value, value format, the judge's change in
# words, from the comparison block).
COMPARISON_ROWS: tuple[
    tuple[str, Callable[[ArmSummary], Any], Callable[[Any], str], Callable[[SeedComparison], str]],
    ...,
] = (
    ("Total training time (s)", lambda s: s.total_time, fmt,
     lambda k: _change(k.changes.total_time)),
    ("Average epoch time (s)", lambda s: s.avg_epoch_time, fmt,
     lambda k: _change(k.changes.avg_epoch_time)),
    ("Final loss value", lambda s: s.final_loss, fmt_loss,
     lambda k: fmt_loss_delta(k.final_loss_delta)),
    ("Validation loss", lambda s: s.val_loss, fmt_loss,
     lambda k: fmt_loss_delta(k.loss_delta)),  # the judged paired mean delta
    ("Average throughput (tok/s)", lambda s: s.throughput, fmt_int,
     lambda k: _change(k.changes.throughput)),
    ("Samples/second", lambda s: s.samples_per_s, fmt, lambda k: _change(k.changes.samples_per_s)),
    ("Peak memory (MiB)", lambda s: s.peak_memory_mb, lambda x: fmt(x, ".1f"),
     lambda k: _change(k.changes.peak_memory_mb)),
)  # fmt: skip


def _seed(c: Comparison) -> SeedComparison:
    return c.comparison or SeedComparison()


def _matched_loss_row(c: Comparison) -> Row | None:
    """Each arm's median time to the pairs' loss (the judge's; None with pairs: judged at one
    target, the median pair never reached it)."""
    matched = c.measurements and c.measurements.matched_loss
    if not matched or not matched.pairs:
        return None
    base, opt = matched.median_baseline_s, matched.median_optimized_s

    def show(x: float | None) -> str:
        return "not reached" if x is None else fmt(x)

    label = "Time to target (s)" if c.at_target else "Time to matched loss (s)"
    return Row(label, show(base), show(opt), _change(_seed(c).changes.matched_loss_s))


def _clock_row(c: Comparison) -> Row | None:
    """The judge's median stack clock (wall time less machine stalls) of each arm's judged
    pair runs, the clock the end-to-end speedup is judged on; None before stall accounting."""
    clock = c.measurements and c.measurements.clock
    if not clock or (clock.baseline_median_s is None and clock.optimized_median_s is None):
        return None
    base, opt = clock.baseline_median_s, clock.optimized_median_s
    change = _change(_seed(c).changes.clock_median_s)
    return Row("Stack clock, machine stalls off (s)", fmt(base), fmt(opt), change)


def comparison_rows(c: Comparison) -> list[Row] | None:
    """The baseline against the optimized arm, metric by metric; None unless both were run."""
    b, o = c.baseline, c.optimized
    if b is None or o is None:
        return None
    rows = [row for row in (_matched_loss_row(c),) if row]
    for label, value, show, change in COMPARISON_ROWS:
        rows.append(Row(label, show(value(b)), show(value(o)), change(_seed(c))))
        # Schema 3.0's total time is the stack clock already: the row would repeat it.
        clock = _clock_row(c) if label.startswith("Total training time") else None
        if clock and clock[1:] != rows[-1][1:]:
            rows.append(clock)
    return rows


def comparison_note(c: Comparison, rows: Sequence[Row] | None = None) -> str:
    """What the table's numbers are (under it on the page, after it on the console)."""
    rows = comparison_rows(c) if rows is None else rows
    if any(row.label.startswith("Stack clock") for row in rows or ()):
        clock = "; the stack clock is each run's time with the machine's stalls taken off"
    elif c.at_target:
        clock = ""  # schema 2.0 and older: the wall clock
    else:
        clock = ", machine stalls off"
    runs = c.baseline.runs if c.baseline else None
    return (
        f"medians over {fmt_text(runs)} interleaved pairs; times "
        f"are end-to-end (setup included){clock}; the loss changes are optimized - baseline "
        "(the validation loss's: the paired mean delta), so positive there is worse; every "
        "other improvement = absolute (relative), positive is better"
    )


# --- one epoch -----------------------------------------------------------------------------

EPOCH_HEADER = ("Epoch", "Loss", "Time (s)", "Throughput (tok/s)", "Status")


def epoch_numbers(e: Any) -> tuple[str, str, str, str]:
    """One epoch's epoch, mean loss, time and throughput as the epoch tables show them (the
    status cell is each renderer's own: a symbol on the console, a class on the page); `e` is
    a comparison's Epoch or the trainer's EpochMetrics."""
    return (
        fmt_text(e.epoch),
        fmt_loss(e.mean_loss),  # None: a NaN loss, stored as JSON null
        fmt(e.time_s, ".2f"),
        fmt_int(e.tokens_per_s),
    )
