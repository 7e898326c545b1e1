"""The template's context: small functions, each one section of the page, already formatted.

Every number is computed and formatted here (and in the modules it calls), so the template
only lays values out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

import yaml
from markupsafe import Markup

from ryot.report.charts import (
    ablation_chart,
    curve_chart,
    equivalence_chart,
    history_chart,
    loss_chart,
    position_chart,
    speedup_chart,
    step_time_chart,
)
from ryot.report.evidence import evidence_context
from ryot.report.fields import (
    arm_names,
    as_dict,
    as_list,
    estimate,
    get_path,
    is_num,
    judged_at_target,
    last_run,
    measurement,
    reference,
    ttt_pairs,
)
from ryot.report.formatting import (
    NA,
    fmt,
    fmt_ci,
    fmt_created,
    fmt_criterion_value,
    fmt_duration,
    fmt_frac_pct,
    fmt_int,
    fmt_level,
    fmt_loss,
    fmt_loss_delta,
    fmt_ms,
    fmt_pct,
    fmt_seconds,
    to_percent,
)
from ryot.report.summary import (
    EPOCH_HEADER,
    TABLE_HEADER,
    comparison_note,
    comparison_rows,
    contamination_lines,
    epoch_numbers,
    headline_figures,
)

CRITERION_TEST = "validation/test_stage3a.py::test_criterion[{id}]"
NOT_UNDER_PYTEST = "not run under pytest"
STATUS_CLASS = {"GO": "go", "INVESTIGATE": "investigate", "DEBUG": "debug"}
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: 20x faster


def _status_css(status: Any) -> str:
    return STATUS_CLASS.get(status, "none") if isinstance(status, str) else "none"


def _summary(row: dict) -> str:
    """The row's one-line summary (measured value, CI, threshold), without its leading name."""
    summary, name = row.get("summary"), str(row.get("name", ""))
    if not isinstance(summary, str):
        return ""
    return summary[len(name) + 1 :].strip() if name and summary.startswith(f"{name}:") else summary


def _reason(row: dict) -> str:
    """One failed criterion in words: the row's own summary (measured value, CI, threshold) when
    it has one, as the console and pytest print it; else built from its fields (schema 1.0)."""
    cid, unit = str(row.get("id", "")), str(row.get("unit", ""))
    name = f"{row.get('name', cid)}{' (critical)' if row.get('critical') else ''}"
    if _summary(row):
        return f"{name}: {_summary(row)}"
    text = f"{name}: measured {fmt_criterion_value(row.get('measured'), unit, cid)}"
    if is_num(row.get("ci_low")) and is_num(row.get("ci_high")):
        text += (
            f" (CI [{fmt_criterion_value(row['ci_low'], unit, cid)}, "
            f"{fmt_criterion_value(row['ci_high'], unit, cid)}])"
        )
    return f"{text}, needs {row.get('threshold', NA)}"


def _aa_metric(c: dict) -> tuple[str, str, str]:
    """A/A noise: per step (median step-time ratio, schema 3.0) or end to end (2.0)."""
    noise = as_dict(c.get("noise"))
    value = fmt_frac_pct(noise.get("aa"), signed=False)
    if is_num(noise.get("steps")) or "end_to_end" in noise:
        e2e = fmt_frac_pct(noise.get("end_to_end"), signed=False)
        text = (
            f"median step-time ratio over {fmt_int(noise.get('steps'))} steps, same seed; "
            f"end to end {e2e} (one draw)"
        )
        return "A/A noise (per step)", value, text
    aa_s, base_s = fmt_seconds(noise.get("aa_s")), fmt_seconds(noise.get("baseline_s"))
    if is_num(noise.get("aa_s")) or is_num(noise.get("baseline_s")):
        text = f"A/A run {aa_s} vs baseline {base_s}, same seed"
    else:
        text = str(noise.get("detail") or "baseline against baseline, same seed")
    return "A/A noise", value, text


def _headline(c: dict, rows: list[dict], failed: list[dict]) -> list[tuple[str, str, str]]:
    """The key numbers under the two speedups: (label, value, small print)."""
    if not (c.get("confidence_intervals") or c.get("measurements")):
        return []
    loss, tput = estimate(c, "loss_delta"), estimate(c, "throughput")
    learn = measurement(c, "learning")
    margin = loss.get("margin")
    equivalent = loss.get("equivalent", get_path(c, "comparison", "loss_equivalent"))
    verdict = "equivalence n/a"
    if isinstance(equivalent, bool):
        verdict = "equivalent" if equivalent else "NOT equivalent"
    ci = fmt_ci(loss.get("level"), loss.get("low"), loss.get("high"), fmt_loss_delta)
    if judged_at_target(c):
        quality = ("Val loss delta (TOST)", f"{ci} vs ±{fmt(margin, '.4f')}: {verdict}")
    else:
        non_inferior = loss.get("non_inferior", get_path(c, "comparison", "loss_non_inferior"))
        judged = "non-inferiority n/a"
        if isinstance(non_inferior, bool):
            judged = "non-inferior" if non_inferior else "NOT non-inferior"
        quality = (
            "Val loss delta (non-inferiority)",
            f"{ci}, upper bound < +{fmt(margin, '.4f')}: {judged}; TOST ±{fmt(margin, '.4f')}: "
            f"{verdict}",
        )
    drop_text = (
        f"loss {fmt_loss(learn.get('initial_loss'))} → {fmt_loss(learn.get('final_loss'))}"
        f" (drop {fmt(learn.get('drop'), '.3f')} nats), worst baseline seed"
    )
    return [
        (quality[0], fmt_loss_delta(loss.get("point")), quality[1]),
        ("Context learned", fmt_frac_pct(learn.get("context_learned"), signed=False), drop_text),
        (
            "Throughput",
            fmt_frac_pct(tput.get("point")),
            fmt_ci(tput.get("level"), tput.get("low"), tput.get("high")),
        ),
        _aa_metric(c),
        (
            "Criteria passed",
            f"{len(rows) - len(failed)} / {len(rows)}",
            f"{sum(bool(r.get('critical')) for r in failed)} critical failed",
        ),
    ]


def _more_reasons(verdict: dict | None, failed: list[dict]) -> list[str]:
    """verdict.reasons (schema 3.0) beyond the failed criteria listed already: what the
    optimized arm skipped (bf16 without native support, ...), in the judge's words."""
    shown = {r.get("summary") for r in failed} | {_reason(r) for r in failed}
    reasons = as_list(as_dict(verdict).get("reasons"))
    return [r for r in reasons if isinstance(r, str) and r not in shown]


def banner_context(c: dict) -> dict[str, Any]:
    env = as_dict(c.get("environment"))
    verdict = c.get("verdict") if isinstance(c.get("verdict"), dict) else None
    rows = [r for r in as_list(c.get("criteria")) if isinstance(r, dict)]
    failed = [r for r in rows if not r.get("passed")]
    if failed:
        why = f"{len(failed)} of {len(rows)} criteria failed:"
    else:
        why = f"All {len(rows)} criteria passed." if rows else None
    hardware = str(env.get("gpu") or env.get("cpu") or NA)
    if env.get("gpu") and env.get("cpu"):
        hardware += f" (CPU {env['cpu']})"
    banner = {
        "why": why,
        "reasons": [_reason(r) for r in sorted(failed, key=lambda r: not r.get("critical"))],
        "more_reasons": _more_reasons(verdict, failed),
        "primary": headline_figures(c),
        "headline": _headline(c, rows, failed),
        "created": fmt_created(c.get("created")),
        "device": str(env.get("device") or NA),
        "hardware": hardware,
        "config_name": str(c.get("config_name", NA)),
        "model": str(c.get("model", NA)),
        "num_parameters": fmt_int(c.get("num_parameters")),
    }
    if verdict is None:
        arms = ", ".join(arm_names(c)) or "no runs"
        return {
            **banner,
            "status": "NO VERDICT",
            "css": "none",
            "decision": None,
            "scenario": None,
            "exit_code": None,
            "no_verdict": f"No verdict: this was a single-arm run ({arms}), so there is no "
            "baseline/optimized pair to judge.",
        }
    return {
        **banner,
        "status": str(verdict.get("status", NA)),
        "css": _status_css(verdict.get("status")),
        "decision": str(verdict.get("decision", NA)),
        "scenario": str(verdict.get("scenario", NA)),
        "exit_code": str(verdict.get("exit_code", NA)),
        "no_verdict": None,
    }


def _criterion_test(tests: Any, criterion_id: str) -> tuple[str, str]:
    nodeid = CRITERION_TEST.format(id=criterion_id)
    if not isinstance(tests, dict):
        return nodeid, NOT_UNDER_PYTEST
    if nodeid in tests:
        return nodeid, str(tests[nodeid])
    for key, outcome in tests.items():
        if str(key).endswith(nodeid.split("/", 1)[1]):
            return str(key), str(outcome)
    return nodeid, "not collected"


TEST_CSS = {"passed": "pass", "failed": "fail", "error": "fail"}


def _criterion_row(r: dict, tests: Any) -> dict[str, Any]:
    cid, unit = str(r.get("id", "")), str(r.get("unit", ""))
    ci = NA
    if is_num(r.get("ci_low")) and is_num(r.get("ci_high")):
        low = fmt_criterion_value(r["ci_low"], unit, cid)
        ci = f"[{low}, {fmt_criterion_value(r['ci_high'], unit, cid)}]"
    nodeid, outcome = _criterion_test(tests, cid)
    return {
        "id": cid,
        "name": str(r.get("name", cid)),
        "threshold": str(r.get("threshold", NA)),
        "measured": fmt_criterion_value(r.get("measured"), unit, cid),
        "ci": ci,
        "passed": bool(r.get("passed")),
        "critical": bool(r.get("critical")),
        "detail": str(r.get("detail", "")),
        "summary": _summary(r),
        "test_id": nodeid,
        "test_outcome": outcome,
        "test_css": TEST_CSS.get(outcome, "muted"),
    }


def criteria_context(c: dict) -> dict[str, Any]:
    tests = c.get("tests")
    rows = [_criterion_row(r, tests) for r in as_list(c.get("criteria")) if isinstance(r, dict)]
    level = estimate(c, "time_to_target").get("level") or estimate(c, "speedup").get("level")
    if not is_num(level):
        level = get_path(c, "config", "measurement", "confidence")
    summary, other_tests = None, []
    if isinstance(tests, dict):
        counts: dict[str, int] = {}
        for outcome in tests.values():
            counts[str(outcome)] = counts.get(str(outcome), 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no tests"
        shown = {r["test_id"] for r in rows}
        other_tests = [
            (str(k), str(v), TEST_CSS.get(str(v), "muted"))
            for k, v in tests.items()
            if k not in shown
        ]
    return {
        "rows": rows,
        "ci_label": f"{fmt(to_percent(level), '.0f')}% CI",
        "tests_summary": summary,
        "other_tests": other_tests,
    }


def _learning_row(d: dict) -> dict[str, str]:
    return {
        "initial": fmt_loss(d.get("initial_loss")),
        "final": fmt_loss(d.get("final_loss")),
        "drop": fmt(d.get("drop"), ".4f"),
        "context": fmt_frac_pct(d.get("context_learned"), signed=False),
    }


def learning_context(c: dict) -> dict[str, Any] | None:
    """Did the baseline learn? Its worst seed's loss drop and context learned, between the
    unigram loss (token frequencies alone) and the Bayes floor (the best any model can do)."""
    learn, bench = measurement(c, "learning"), as_dict(c.get("bench"))
    unigram = learn.get("unigram_loss") if is_num(learn.get("unigram_loss")) else None
    floor = learn.get("bayes_floor") if is_num(learn.get("bayes_floor")) else None
    unigram = unigram if unigram is not None else reference(c, "unigram_loss")
    floor = floor if floor is not None else reference(c, "bayes_floor")
    if not learn and not is_num(unigram) and not is_num(floor):
        return None
    crit = as_dict(get_path(c, "config", "criteria"))
    needs = (
        f"needs a drop >= {fmt(crit.get('min_loss_drop'), '.2f')} nats and context learned >= "
        f"{fmt_frac_pct(crit.get('min_context_learned'), signed=False)}"
    )
    row = _learning_row(learn)
    rows = [
        ("Initial validation loss", row["initial"]),
        ("Final validation loss", row["final"]),
        ("Drop in loss (nats)", row["drop"]),
        ("Unigram loss (token frequencies alone)", fmt_loss(unigram)),
        ("Bayes floor (the best possible)", fmt_loss(floor)),
        ("Context learned", row["context"]),
    ]
    per_seed = [
        {"seed": str(d.get("seed", NA)), **_learning_row(d)}
        for d in as_list(learn.get("per_seed"))
        if isinstance(d, dict)
    ]
    params = [
        f"{k.replace('_', ' ')} {bench[k]}"
        for k in ("num_topics", "topic_boost", "branching", "zipf_exponent")
        if bench.get(k) is not None
    ]
    return {
        "rows": rows,
        "needs": needs,
        "per_seed": per_seed,
        "bench": str(bench.get("description") or ""),
        "bench_params": ", ".join(params),
        "measured": bool(learn),
    }


def _yes_no(x: Any) -> str:
    return ("yes" if x else "NO") if isinstance(x, bool) else NA


def quality_title(c: dict) -> str:
    """The quality section's question: equivalence (schema 2.0) or non-inferiority (3.0)."""
    if judged_at_target(c):
        return "Quality: did the baseline learn, and is the optimized loss equivalent?"
    return "Quality: did the baseline learn, and is the optimized loss no worse?"


def equivalence_context(c: dict) -> dict[str, Any] | None:
    """The loss match: schema 3.0 judges non-inferiority (the paired delta's CI upper bound
    below +margin) and shows equivalence (TOST, CI inside +-margin) beside; 2.0 judged TOST."""
    e = estimate(c, "loss_delta")
    if not e:
        return None
    margin = e.get("margin")
    if not is_num(margin):
        margin = get_path(c, "config", "criteria", "max_loss_delta")
    equivalent = e.get("equivalent", get_path(c, "comparison", "loss_equivalent"))
    spread = e.get("baseline_spread")
    n = e.get("n", NA)
    rows = [
        ("Loss delta (optimized - baseline), mean", fmt_loss_delta(e.get("point"))),
        (
            f"{fmt_level(e.get('level'))}% CI ({n} pair{'' if n == 1 else 's'})",
            f"[{fmt_loss_delta(e.get('low'))}, {fmt_loss_delta(e.get('high'))}]",
        ),
    ]
    if judged_at_target(c):
        title = ("Loss equivalence (TOST)", "paired validation-loss delta against ±margin")
        rows += [
            ("Equivalence margin", f"±{fmt(margin, '.4f')}"),
            ("Equivalent (CI inside the margin)", _yes_no(equivalent)),
        ]
    else:
        title = (
            "Loss non-inferiority",
            "paired validation-loss delta: CI upper bound below +margin (TOST equivalence beside)",
        )
        non_inferior = e.get("non_inferior", get_path(c, "comparison", "loss_non_inferior"))
        rows += [
            ("Margin", f"+{fmt(margin, '.4f')} (TOST: ±{fmt(margin, '.4f')})"),
            ("Non-inferior (CI upper bound < +margin), the criterion", _yes_no(non_inferior)),
            ("Equivalent (TOST: CI inside ±margin), shown beside", _yes_no(equivalent)),
        ]
    rows.append(
        (
            "Baseline seed-to-seed spread (stdev)",
            fmt(spread, ".4f") if is_num(spread) else f"{NA} (needs 2 or more baseline seeds)",
        )
    )
    return {"title": title[0], "sub": title[1], "rows": rows, "chart": equivalence_chart(c)}


def noise_context(c: dict) -> dict[str, Any] | None:
    """The A/A run against the first pair's baseline: per step (schema 3.0: median step-time ratio,
    the criterion) with the end-to-end figure beside it (one draw), or end to end (2.0)."""
    noise = as_dict(c.get("noise")) or measurement(c, "noise")
    if not noise:
        return None
    limit = get_path(c, "config", "criteria", "max_noise_percent")
    if is_num(noise.get("steps")) or "end_to_end" in noise:
        rows = [
            ("A/A noise per step (the criterion)", fmt_frac_pct(noise.get("aa"), signed=False)),
            ("Steps compared", fmt_int(noise.get("steps"))),
            (
                "End to end over the same steps (one draw, shown only)",
                fmt_frac_pct(noise.get("end_to_end"), signed=False),
            ),
        ]
    else:
        rows = [("A/A noise (end to end)", fmt_frac_pct(noise.get("aa"), signed=False))]
    base_s, aa_s = noise.get("baseline_s"), noise.get("aa_s")
    if is_num(base_s) or is_num(aa_s):  # schema 1.0 had no A/A run
        rows += [
            ("The first pair's baseline (same steps, setup included)", fmt_seconds(base_s)),
            ("The A/A run", fmt_seconds(aa_s)),
        ]
    rows.append(("Threshold", f"<= {fmt(limit, 'g')}%" if is_num(limit) else NA))
    return {"rows": rows, "detail": str(noise.get("detail") or "")}


def _stall_runs(c: dict) -> tuple[list[dict], str, Any] | None:
    """(runs, rule, total) from measurements.stalls, else from each run's result (a single-arm
    run has no measurements); None before schema 3.0 (stalls were not recorded)."""
    stalls = measurement(c, "stalls")
    if stalls:
        runs = [r for r in as_list(stalls.get("runs")) if isinstance(r, dict)]
        return runs, str(stalls.get("rule") or ""), stalls.get("total_s")
    runs = []
    for r in as_list(c.get("runs")):
        res = as_dict(as_dict(r).get("result"))
        if "stall_s" not in res:
            continue
        each = (res.get("setup_stall_s"), *as_list(res.get("step_stalls")))
        stalled = [s for s in each if is_num(s) and s > 0]
        runs.append(
            {
                "label": f"run {r.get('index', NA)} ({r.get('arm', NA)}, {r.get('role', NA)})",
                "arm": r.get("arm"),
                "role": r.get("role"),
                "stall_s": res.get("stall_s"),
                "stalled_steps": len(stalled),
                "largest_s": max(stalled, default=0.0),
                "run_queue_wait_s": res.get("run_queue_wait_s"),
                "involuntary_switches": res.get("involuntary_switches"),
            }
        )
    if not runs:
        return None
    return runs, "", sum(r["stall_s"] for r in runs if is_num(r["stall_s"]))


def stalls_context(c: dict) -> dict[str, Any] | None:
    """Machine stalls (SIGSTOP, whole-process preemption, steal) taken off each run's clock:
    the total, the runs that had any, and the rule that decides what a stall is."""
    found = _stall_runs(c)
    if found is None:
        return None
    runs, rule, total = found
    stalled = [r for r in runs if is_num(r.get("stall_s")) and r["stall_s"] > 0]
    rows = [
        {
            "label": str(r.get("label", NA)),
            "arm": str(r.get("arm", NA)),
            "role": str(r.get("role", NA)),
            "stall": fmt(r.get("stall_s"), ".3f"),
            "steps": fmt_int(r.get("stalled_steps")),
            "largest": fmt(r.get("largest_s"), ".3f"),
            "queue": fmt(r.get("run_queue_wait_s"), ".3f"),
            "switches": fmt_int(r.get("involuntary_switches")),
        }
        for r in stalled
    ]
    if stalled:
        summary = f"{fmt_seconds(total)} taken off the clocks of {len(stalled)} of {len(runs)} runs"
    else:
        summary = f"none seen in {len(runs)} run{'' if len(runs) == 1 else 's'}"
    queue = [r["run_queue_wait_s"] for r in runs if is_num(r.get("run_queue_wait_s"))]
    switches = [r["involuntary_switches"] for r in runs if is_num(r.get("involuntary_switches"))]
    reported = None
    if queue or switches:
        reported = (
            f"Reported only, left on the clock: run-queue wait {fmt_seconds(sum(queue))} and "
            f"{fmt_int(sum(switches))} involuntary context switches over {len(runs)} runs "
            "(threads ready to run but waiting for a CPU)."
        )
    return {
        "summary": summary,
        "rows": rows,
        "rule": rule,
        "reported": reported,
        **contamination_context(c),
    }


def contamination_context(c: dict) -> dict[str, Any]:
    """The contaminated runs (too much of their time contended: re-run, never judged) and,
    when a planned pair or the A/A had no clean run left, that the machine was too busy."""
    k = measurement(c, "contamination")
    rows = [
        {
            "label": str(r.get("label", NA)),
            "arm": str(r.get("arm", NA)),
            "role": str(r.get("role", NA)),
            "contended": fmt(r.get("contended_s"), ".2f"),
            "share": fmt_frac_pct(r.get("share"), signed=False),
            "reason": str(r.get("reason") or ""),
        }
        for r in as_list(k.get("runs"))
        if isinstance(r, dict)
    ]
    lines = contamination_lines(c)
    share = fmt_frac_pct(k.get("max_share"), signed=False).replace(".0%", "%")
    return {
        "contaminated": rows,
        "contaminated_note": (
            f"A run with more than {share} of its time contended (measurement."
            "max_contended_share) has its pair or A/A re-run, and is never judged."
        ),
        "too_busy": lines[1] if len(lines) > 1 else None,
    }


def charts_context(c: dict) -> dict[str, Any]:
    ablation_off = not get_path(c, "config", "measurement", "ablation")
    return {
        "curve": curve_chart(c),
        "positions": position_chart(c),
        "loss": loss_chart(c),
        "step_times": step_time_chart(c),
        "speedup": speedup_chart(c),
        "ablation": ablation_chart(c),
        "ablation_note": "ablation not run (measurement.ablation: false)"
        if ablation_off
        else "ablation enabled, but no ablation run finished",
        "aa_detail": str(get_path(c, "noise", "detail") or ""),
        "matched": matched_pairs(c),
        "curve_caption": "Validation loss against training time: each paired run, "
        + (
            "the target, each arm's time to target"
            if judged_at_target(c)
            else "each pair's matched loss L*, each arm's time to it"
        ),
    }


def matched_pairs(c: dict) -> list[dict[str, str]] | None:
    """Schema 3.0: each pair's two final losses, its matched loss L* (the worse of them), each
    arm's time to L* and the pair's speedup at equal quality; None for a target (2.0) run."""
    if judged_at_target(c):
        return None
    rows = []
    for p in ttt_pairs(c):
        base, opt = p.get("baseline_s"), p.get("optimized_s")
        speedup = 1.0 - opt / base if is_num(base) and is_num(opt) and base > 0 else None
        rows.append(
            {
                "repeat": str(p.get("repeat", NA)),
                "seed": str(p.get("seed", NA)),
                "baseline_final": fmt_loss(p.get("baseline_final")),
                "optimized_final": fmt_loss(p.get("optimized_final")),
                "loss": fmt_loss(p.get("loss")),
                "baseline_s": fmt_seconds(base),
                "optimized_s": fmt_seconds(opt),
                "speedup": fmt_frac_pct(speedup),
            }
        )
    return rows or None


def epoch_tables(c: dict) -> list[dict[str, Any]]:
    tables = []
    for arm in arm_names(c):
        run = last_run(c, arm)
        if run is None:
            tables.append({"arm": arm, "caption": "no completed run of this arm", "rows": []})
            continue
        res = run["result"]
        rows = [
            {
                "cells": epoch_numbers(e),
                "ok": e.get("status") == "ok",
                "status": str(e.get("status", NA)),
            }
            for e in as_list(res.get("epochs"))
            if isinstance(e, dict)
        ]
        tables.append(
            {
                "arm": arm,
                "caption": f"run {run.get('index', NA)}, seed {run.get('seed', NA)}, "
                f"{run.get('role', NA)}",
                "rows": rows,
                "total_time": fmt_seconds(res.get("total_time_s")),
                "setup_time": fmt_seconds(res.get("setup_time_s")),
                "val_loss": fmt_loss(res.get("val_loss")),
                "initial_val_loss": fmt_loss(res.get("initial_val_loss")),
                "peak_memory": fmt(res.get("peak_memory_mb"), ".1f", " MiB"),
                "divergence": res.get("divergence") if res.get("diverged") else None,
                # schema 3.0: the stack's own clock, the machine's stalls taken off
                "clock": fmt_seconds(res.get("clock_s")) if "clock_s" in res else None,
                "stalls": fmt_seconds(res.get("stall_s")),
            }
        )
    return tables


def comparison_table(c: dict) -> dict[str, Any] | None:
    """The baseline against the optimized arm (ryot.report.summary: the console prints the same
    rows), with what its numbers are."""
    rows = comparison_rows(c)
    if rows is None:
        return None
    return {"header": TABLE_HEADER, "rows": rows, "note": comparison_note(c, rows)}


def environment_context(c: dict, links: dict[str, str]) -> dict[str, Any]:
    env = as_dict(c.get("environment"))
    cfg = as_dict(c.get("config"))
    training, data = as_dict(cfg.get("training")), as_dict(cfg.get("data"))
    rows = [
        ("Python", env.get("python")),
        ("PyTorch", env.get("torch")),
        ("Platform", env.get("platform")),
        ("Device", env.get("device")),
        ("CPU", env.get("cpu")),
        ("CPU bf16 features", _flags(env)),
        ("GPU", env.get("gpu")),
        ("CPU count", env.get("cpu_count")),
        ("Threads (parent process)", env.get("threads")),
        ("Threads (training, 0 = torch default)", training.get("threads")),
        ("Training seed (config)", training.get("seed")),
        ("Data seed", data.get("seed")),
        ("Parameters", fmt_int(c.get("num_parameters"))),
        ("Bayes floor (nats)", fmt_loss(reference(c, "bayes_floor"))),
        ("Unigram loss (nats)", fmt_loss(reference(c, "unigram_loss"))),
        ("Schema version", c.get("schema_version")),
        ("Created", fmt_created(c.get("created"))),
    ]
    runs = []
    for r in as_list(c.get("runs")):
        if not isinstance(r, dict):
            continue
        res = as_dict(r.get("result"))
        stem = f"runs/{int(r['index']):02d}-{r.get('arm')}" if is_num(r.get("index")) else None
        runs.append(
            {
                "index": str(r.get("index", NA)),
                "arm": str(r.get("arm", NA)),
                "role": str(r.get("role", NA))
                + (f", re-run {r['attempt']}" if is_num(r.get("attempt")) and r["attempt"] else ""),
                "repeat": str(r.get("repeat", NA)),
                "seed": str(r.get("seed", NA)),
                "encoding": str(r.get("console_encoding", NA)),
                "exit_code": str(r.get("exit_code", NA)),
                "ok": r.get("exit_code") == 0 and bool(res),
                "total_time": fmt(res.get("total_time_s"), ".2f"),
                "stalls": fmt(res.get("stall_s"), ".2f"),
                "wall": fmt(r.get("wall_s"), ".2f"),
                "val_loss": fmt_loss(res.get("val_loss")),
                "peak_memory": fmt(res.get("peak_memory_mb"), ".1f"),
                "error": str(r.get("error") or ""),
                "contamination": str(r.get("contamination") or ""),
                "console": f"{stem}.console.txt" if stem else None,
                "result": f"{stem}.result.json" if stem else None,
            }
        )
    return {
        "rows": [(k, NA if v is None or v == "" else str(v)) for k, v in rows],
        "command": str(c.get("command") or NA),
        "config_path": str(c.get("config_path") or NA),
        "config_yaml": yaml.dump(
            cfg, Dumper=SAFE_DUMPER, sort_keys=False, allow_unicode=True, width=100
        )
        if cfg
        else NA,
        "links": list(links.items()),
        "runs": runs,
    }


def _history_point(c: dict, current: bool, source: Any) -> dict[str, Any]:
    ttt, speed, loss = (estimate(c, k) for k in ("time_to_target", "speedup", "loss_delta"))
    status = get_path(c, "verdict", "status")
    e2e = get_path(c, "comparison", "speedup_percent")
    at_quality = get_path(c, "comparison", "time_to_target_speedup_percent")
    return {
        "created": fmt_created(c.get("created")),
        "config": str(c.get("config_name", NA)),
        "schema": str(c.get("schema_version", NA)),
        "status": str(status) if status else "no verdict",
        "css": _status_css(status),
        "ttt": at_quality if is_num(at_quality) else to_percent(ttt.get("point")),
        "ttt_low": to_percent(ttt.get("low")),
        "ttt_high": to_percent(ttt.get("high")),
        "speedup": e2e if is_num(e2e) else to_percent(speed.get("point")),
        "speedup_low": to_percent(speed.get("low")),
        "speedup_high": to_percent(speed.get("high")),
        "loss_delta": get_path(c, "comparison", "loss_delta"),
        "loss_delta_low": loss.get("low"),
        "loss_delta_high": loss.get("high"),
        "aa": to_percent(get_path(c, "noise", "aa")),
        "current": current,
        "source": str(source) if source else None,
    }


def history_context(c: dict, history: Sequence[dict] | None) -> dict[str, Any] | None:
    """Earlier runs and this one, oldest first. A history entry's optional "_source" key (set
    by render_run_dir) is the relative path of its comparison.json, shown as a link."""
    others = [h for h in (history or []) if isinstance(h, dict)]
    if not others:
        return None
    entries = [(h, _history_point(h, False, h.get("_source"))) for h in others]
    entries.append((c, _history_point(c, True, None)))
    entries.sort(key=lambda e: str(e[0].get("created") or ""))  # stable: ties keep order
    rows = [
        {
            **p,
            "ttt_text": fmt_pct(p["ttt"]),
            "speedup_text": fmt_pct(p["speedup"]),
            "loss_text": fmt_loss_delta(p["loss_delta"]),
            "aa_text": fmt_pct(p["aa"], signed=False),
        }
        for _, p in entries
    ]
    return {"chart": history_chart([p for _, p in entries]), "rows": rows, "count": len(others)}


def benchmarks_context(c: dict) -> list[dict[str, str]] | None:
    bench = c.get("benchmarks")
    if not isinstance(bench, list):
        return None
    rows = []
    for b in bench:
        if not isinstance(b, dict):
            continue
        s = as_dict(b.get("stats"))
        extra = as_dict(b.get("extra_info"))
        rows.append(
            {
                "name": str(b.get("name", NA)),
                "group": str(b.get("group") or ""),
                "extra": ", ".join(
                    f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in extra.items()
                ),
                **{k: fmt_duration(s.get(k)) for k in ("min", "max", "mean", "median", "stddev")},
                "rounds": fmt_int(s.get("rounds")),
            }
        )
    return rows


DEFAULT_LINKS = {
    "comparison.json": "comparison.json",
    "monitor.log": "monitor.log",
    "checkpoints/": "checkpoints/",
}


def _css() -> str:
    return (
        resources.files("ryot.report")
        .joinpath("templates", "report.css")
        .read_text(encoding="utf-8")
    )


def build_context(
    comparison: dict, history: Sequence[dict] | None = None, links: dict[str, str] | None = None
) -> dict[str, Any]:
    """Every value the template shows, already formatted."""
    c = comparison
    links = dict(DEFAULT_LINKS if links is None else links)
    banner = banner_context(c)
    return {
        "title": f"Ryot Stage 3a: {banner['status']} ({banner['config_name']})",
        "quality_title": quality_title(c),
        "css": Markup(_css()),  # our own stylesheet, shipped in the package
        "banner": banner,
        "criteria": criteria_context(c),
        "learning": learning_context(c),
        "equivalence": equivalence_context(c),
        "noise": noise_context(c),
        "stalls": stalls_context(c),
        "distributed": distributed_context(c),
        "charts": charts_context(c),
        "epoch_header": EPOCH_HEADER,
        "epoch_tables": epoch_tables(c),
        "comparison": comparison_table(c),
        "evidence": evidence_context(c),
        "environment": environment_context(c, links),
        "history": history_context(c, history),
        "benchmarks": benchmarks_context(c),
    }


def _flags(env: dict[str, Any]) -> str | None:
    """The CPU features that decide bf16 speed; None (not shown) for runs that did not record
    them (schema 2.0 and older)."""
    flags = env.get("cpu_flags")
    if flags is None:
        return None
    native = any(f in flags for f in ("avx512_bf16", "amx_bf16"))
    listed = ", ".join(flags) or "none of avx512f, avx512_bf16, amx_bf16, amx_tile"
    return f"{listed} ({'native bf16' if native else 'no native bf16: bf16 autocast is skipped'})"


def distributed_context(c: dict) -> dict[str, Any] | None:
    """A torchrun job's world, backend and per-rank step skew (None for single processes), and
    the single-process baseline of the same config, when the run recorded one."""
    d = as_dict(c.get("distributed"))
    if not d:
        return None
    rows = [
        {
            "label": str(r.get("label", NA)),
            "arm": str(r.get("arm", "")),
            "ranks": " / ".join(fmt_ms(x) for x in as_list(r.get("rank_median_step_s"))) or NA,
            "median": fmt_ms(r.get("median_skew_s")),
            "max": fmt_ms(r.get("max_skew_s")),
        }
        for r in as_list(d.get("runs"))
        if isinstance(r, dict)
    ]
    single = as_dict(d.get("single_process"))
    text = None
    if single:
        text = (
            f"Against the single-process baseline of the same config in this folder's previous "
            f"run ({single.get('source', NA)}): stack clock {fmt_seconds(single.get('clock_s'))}"
            f" with one process, {fmt_seconds(single.get('distributed_clock_s'))} here; "
            f"validation loss {fmt(single.get('val_loss'), '.4f')} there, "
            f"{fmt(single.get('distributed_val_loss'), '.4f')} here."
        )
    return {
        "world_size": d.get("world_size", NA),
        "backend": d.get("backend") or NA,
        "rows": rows,
        "single": text,
    }
