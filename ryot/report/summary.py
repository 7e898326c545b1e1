"""The comparison's headline and table as plain data, built once from comparison.json's dict.

The console (ryot.experiment) prints them and the report page renders them, so both show the
same rows, labels and rounding. Like the rest of ryot.report this reads only the dict it is
handed: any field may be missing, null or of another type.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ryot.report.fields import (
    as_dict,
    as_list,
    estimate,
    get_path,
    is_num,
    judged_at_target,
    pair_runs,
    ttt_pairs,
    ttt_words,
)
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


def _ci(e: dict) -> str:
    return fmt_ci(e.get("level"), e.get("low"), e.get("high"))


def _pairs_text(n: Any) -> str:
    return f"geometric mean of {n} pair{'' if n == 1 else 's'}"


def ttt_text(pairs: Sequence[dict], arm: str) -> str:
    """One arm's time to target (schema 3.0: to each pair's matched loss) per pair in words
    ("not reached" for null: infinite time)."""
    values = [p.get(f"{arm}_s") for p in pairs]
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


def _losses_text(pairs: Sequence[dict]) -> str:
    """Each pair's matched loss L* in words (a range beyond 4 pairs)."""
    losses = [p.get("loss") for p in pairs]
    if len(losses) <= 4:
        return ", ".join(fmt_loss(v) for v in losses)
    finite = [v for v in losses if is_num(v)]
    shown = f"{fmt_loss(min(finite))} to {fmt_loss(max(finite))}" if finite else NA
    return f"{shown} ({len(losses)} pairs)"


def ttt_figure(c: dict) -> Figure:
    """Speedup at equal quality, 1 - T_opt / T_base at each pair's matched loss (schema 2.0:
    at the one target loss), with its CI."""
    e, pairs = estimate(c, "time_to_target"), ttt_pairs(c)
    at_target = judged_at_target(c)
    missed = sum(1 for p in pairs if not is_num(p.get("optimized_s")))
    if missed:
        value = "not reached"
        detail = (
            f"the optimized arm never reached the target in {missed} of {len(pairs)} pair(s): "
            "infinite time, speedup -∞"
            if at_target  # 3.0 times are finite by construction: a null is a broken file
            else f"the optimized arm has no time to its matched loss in {missed} of "
            f"{len(pairs)} pair(s)"
        )
    else:
        value, detail = fmt_frac_pct(e.get("point")), _pairs_text(e.get("n", len(pairs)))
    times = f"baseline {ttt_text(pairs, 'baseline')}; optimized {ttt_text(pairs, 'optimized')}"
    if not pairs:
        note = f"no {ttt_words(c)} measured"
    elif at_target:
        target = get_path(c, "measurements", "target", "loss")
        note = f"time to reach validation loss {fmt_loss(target)}: {times}"
    else:
        note = (
            f"each pair at its matched loss L* (the worse of its two final validation losses) "
            f"{_losses_text(pairs)}; time to L*: {times}"
        )
    label = f"Speedup at equal quality ({ttt_words(c)})"
    return Figure("headline-ttt", label, value, _ci(e), detail, note, missed=bool(missed))


def speedup_figure(c: dict) -> Figure:
    """End-to-end speedup, 1 - T_opt / T_base over the whole budget, with its CI."""
    e = estimate(c, "speedup")
    note = "1 - T_opt / T_base over the whole budget, setup included"
    if not judged_at_target(c):
        note += ", machine stalls off"
    return Figure(
        "headline-speedup",
        "End-to-end speedup (equal steps)",
        fmt_frac_pct(e.get("point")),
        _ci(e),
        _pairs_text(e.get("n", NA)),
        note,
    )


def _taken_off(run: dict) -> str:
    """One judged run's seconds taken off its clock, stopped and contended."""
    return (
        f"{run.get('label', NA)} {fmt_seconds(run.get('stall_s'))} (stopped "
        f"{fmt_seconds(run.get('stopped_s'))}, contended {fmt_seconds(run.get('contended_s'))})"
    )


def wall_gap_text(c: dict) -> str | None:
    """The wall clock's end-to-end speedup against the stack clock's, in words: within the A/A
    noise, or the judged runs whose seconds taken off explain the gap, largest first; None
    before measurements.wall_gap (older files) or without a pair."""
    gap = as_dict(get_path(c, "measurements", "wall_gap"))
    if not is_num(gap.get("gap")):
        return None
    points = fmt_frac_pct(gap["gap"]).replace("%", " points")
    noise = fmt_frac_pct(gap.get("noise"), signed=False)
    if not gap.get("exceeds"):
        return f"{points} from the stack clock's, within the A/A noise ({noise})"
    runs = [r for r in as_list(gap.get("runs")) if isinstance(r, dict)]
    why = "; ".join(_taken_off(r) for r in runs) or "no judged run had a stall"
    return (
        f"{points} from the stack clock's, more than the A/A noise ({noise}); the seconds "
        f"taken off the judged runs' clocks explain it, largest first: {why}"
    )


def wall_figure(c: dict) -> Figure | None:
    """End-to-end speedup by the wall clock (stalls on), beside the stack clock's; None before
    measurements.wall_speedup (older files)."""
    e = as_dict(get_path(c, "measurements", "wall_speedup"))
    if not e:
        return None
    note = "1 - T_opt / T_base by the wall clock, machine stalls on"
    gap = wall_gap_text(c)
    return Figure(
        "headline-wall",
        "End-to-end speedup by the wall clock",
        fmt_frac_pct(e.get("point")),
        _ci(e),
        _pairs_text(e.get("n", NA)),
        f"{note}: {gap}" if gap else note,
    )


def headline_figures(c: dict) -> list[Figure]:
    """The speedups, at equal quality first, then end to end on the stack's clock and (schema
    3.0 files that have it) by the wall clock; none without a judged pair."""
    if not (c.get("confidence_intervals") or c.get("measurements")):
        return []
    wall = wall_figure(c)
    return [ttt_figure(c), speedup_figure(c), *([wall] if wall else [])]


def headline(c: dict) -> str | None:
    """The headline in one line: "Speedup at equal quality (time to matched loss): +43.9%
    (95% CI [+38.5%, +48.9%]); end to end +50.8% (95% CI [...]); by the wall clock +50.1%
    (95% CI [...])"; None without a pair."""
    figures = headline_figures(c)
    if not figures:
        return None
    ttt, e2e, *wall = figures
    line = f"{ttt.label}: {ttt.value} ({ttt.ci}); end to end {e2e.value} ({e2e.ci})"
    return line + "".join(f"; by the wall clock {w.value} ({w.ci})" for w in wall)


def contamination_lines(c: dict) -> list[str]:
    """The contaminated runs (never judged) and, when a planned pair or the A/A was left
    without a clean run, that the machine was too busy to judge; [] when none."""
    k = as_dict(get_path(c, "measurements", "contamination"))
    runs = [r for r in as_list(k.get("runs")) if isinstance(r, dict)]
    if not runs:
        return []
    bound = fmt_frac_pct(k.get("max_share"), signed=False).replace(".0%", "%")
    lines = [
        f"Contaminated (more than {bound} of its time contended), re-run and never judged: "
        + "; ".join(
            f"{r.get('label', NA)} {fmt_seconds(r.get('contended_s'))} contended "
            f"({fmt_frac_pct(r.get('share'), signed=False)})"
            for r in runs
        )
    ]
    if k.get("too_busy"):
        busy = " and ".join(str(b) for b in as_list(k.get("busy"))) or NA
        lines.append(
            f"The machine was too busy to judge: {busy} left without a clean run after "
            f"{fmt_int(k.get('reruns'))} re-run(s) (at most {fmt_int(k.get('max_reruns'))})"
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

# The seed plan's table: (metric, summary key, value format, improvement rule).
COMPARISON_ROWS: tuple[tuple[str, str, Callable[[Any], str], str], ...] = (
    ("Total training time (s)", "total_time", fmt, "lower"),
    ("Average epoch time (s)", "avg_epoch_time", fmt, "lower"),
    ("Final loss value", "final_loss", fmt_loss, "delta"),
    ("Validation loss", "val_loss", fmt_loss, "comparison"),
    ("Average throughput (tok/s)", "throughput", fmt_int, "higher"),
    ("Samples/second", "samples_per_s", fmt, "higher"),
    ("Peak memory (MiB)", "peak_memory_mb", lambda x: fmt(x, ".1f"), "lower"),
)


def _median_ttt(pairs: list[dict], arm: str) -> float | None:
    """Median time to target (or to each pair's matched loss) over pairs; a pair that never
    reached it counts as infinite."""
    values = [p.get(f"{arm}_s") for p in pairs]
    if not values:
        return None
    mid = statistics.median(v if is_num(v) else math.inf for v in values)
    return mid if math.isfinite(mid) else math.inf


def _ttt_row(c: dict) -> Row | None:
    pairs = ttt_pairs(c)
    if not pairs:
        return None
    base, opt = _median_ttt(pairs, "baseline"), _median_ttt(pairs, "optimized")

    def show(x: float | None) -> str:
        return "not reached" if x == math.inf else fmt(x)

    label = "Time to target (s)" if judged_at_target(c) else "Time to matched loss (s)"
    return Row(label, show(base), show(opt), fmt_change(base, opt))


def _clock_row(c: dict) -> Row | None:
    """Schema 3.0: the median stack clock (wall time less machine stalls) of each arm's pairs,
    the clock the end-to-end speedup is judged on."""
    med = []
    for arm in ("baseline", "optimized"):
        clocks = [as_dict(r["result"]).get("clock_s") for r in pair_runs(c, arm)]
        clocks = [x for x in clocks if is_num(x)]
        med.append(statistics.median(clocks) if clocks else None)
    if med == [None, None]:
        return None
    return Row("Stack clock, machine stalls off (s)", fmt(med[0]), fmt(med[1]), fmt_change(*med))


def _delta(base: Any, opt: Any) -> float | None:
    return opt - base if is_num(base) and is_num(opt) else None


def comparison_rows(c: dict) -> list[Row] | None:
    """The baseline against the optimized arm, metric by metric; None unless both were run."""
    b, o = c.get("baseline"), c.get("optimized")
    if not isinstance(b, dict) or not isinstance(o, dict):
        return None
    rows = [row for row in (_ttt_row(c),) if row]
    for label, key, show, rule in COMPARISON_ROWS:
        base, opt = b.get(key), o.get(key)
        if rule == "delta":
            change = fmt_loss_delta(_delta(base, opt))
        elif rule == "comparison":  # the judged paired mean delta
            change = fmt_loss_delta(get_path(c, "comparison", "loss_delta"))
        else:
            change = fmt_change(base, opt, lower_is_better=rule == "lower")
        rows.append(Row(label, show(base), show(opt), change))
        # Schema 3.0's total time is the stack clock already: the row would repeat it.
        clock = _clock_row(c) if key == "total_time" else None
        if clock and clock[1:] != rows[-1][1:]:
            rows.append(clock)
    return rows


def comparison_note(c: dict, rows: Sequence[Row] | None = None) -> str:
    """What the table's numbers are (under it on the page, after it on the console)."""
    rows = comparison_rows(c) if rows is None else rows
    if any(row.label.startswith("Stack clock") for row in rows or ()):
        clock = "; the stack clock is each run's time with the machine's stalls taken off"
    elif judged_at_target(c):
        clock = ""  # schema 2.0 and older: the wall clock
    else:
        clock = ", machine stalls off"
    return (
        f"medians over {as_dict(c.get('baseline')).get('runs', NA)} interleaved pairs; times "
        f"are end-to-end (setup included){clock}; the validation loss change is the paired "
        "mean delta; improvement = absolute (relative), positive is better"
    )


# --- one epoch -----------------------------------------------------------------------------

EPOCH_HEADER = ("Epoch", "Loss", "Time (s)", "Throughput (tok/s)", "Status")


def epoch_numbers(e: dict) -> tuple[str, str, str, str]:
    """One epoch's epoch, mean loss, time and throughput as the epoch tables show them (the
    status cell is each renderer's own: a symbol on the console, a class on the page)."""
    return (
        str(e.get("epoch", NA)),
        fmt_loss(e.get("mean_loss")),  # None: a NaN loss, stored as JSON null
        fmt(e.get("time_s"), ".2f"),
        fmt_int(e.get("tokens_per_s")),
    )
