"""The evidence section: each optimization's settings, effect and measurements in words."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from typing import Any

from ryot.optim import registry
from ryot.report import formatting
from ryot.report.fields import arm_sort_key, as_dict, as_list, is_num, result_runs
from ryot.report.formatting import NA, fmt_int, fmt_ms, fmt_seconds


def _median(values: Sequence[float]) -> float | None:
    vals = [v for v in values if is_num(v)]
    return statistics.median(vals) if vals else None


def _step_times_at(c: dict, arm: str, tokens: int) -> list[float]:
    """The arm's step times (all its runs) of steps that fed exactly `tokens` tokens."""
    return [
        t
        for r in result_runs(c)
        if r.get("arm") == arm
        # strict=False: a malformed file with lists of unequal length renders, never crashes
        for t, k in zip(
            as_list(r["result"].get("step_times")),
            as_list(r["result"].get("step_tokens")),
            strict=False,
        )
        if is_num(t) and k == tokens
    ]


def _full_tokens(c: dict) -> int | None:
    """Tokens of one full-length step: what every baseline step feeds."""
    tokens = [
        k
        for r in result_runs(c)
        if r.get("arm") == "baseline"
        for k in as_list(r["result"].get("step_tokens"))
        if is_num(k)
    ]
    return int(max(tokens)) if tokens else None


Rows = list[tuple[str, str]]


def _break_even_rows(c: dict, arm: str, measured: dict) -> Rows:
    """When the arm's compile time is paid back (the kernel's own rows word its counters)."""
    if "compile_seconds" not in measured:
        return []
    secs = measured["compile_seconds"]
    # Compiling pays for itself after compile_seconds / (time saved per step) steps. Only steps
    # of equal length compare: a length warmup makes the arm's early steps shorter (and cheaper)
    # for reasons that have nothing to do with compiling.
    full = _full_tokens(c)
    base_steps = _step_times_at(c, "baseline", full) if full else []
    arm_steps = _step_times_at(c, arm, full) if full else []
    base, opt = _median(base_steps), _median(arm_steps)
    if not is_num(secs):
        pays = NA
    elif base is None:
        pays = f"{NA}: no full-length baseline step to compare with"
    elif opt is None:
        pays = f"{NA}: no step of the {arm} arm ran at full length ({fmt_int(full)} tokens)"
    elif base - opt > 0:
        steps = secs / (base - opt)  # may overflow to inf for absurd inputs: then n/a
        pays = (
            f"after {fmt_int(math.ceil(steps) if is_num(steps) else None)} steps "
            f"({fmt_seconds(secs)} / "
            f"({fmt_ms(base)} - {fmt_ms(opt)}) saved per step; medians of "
            f"{len(base_steps)} baseline and {len(arm_steps)} {arm} full-length steps)"
        )
    else:
        pays = (
            f"never at this step time (median full-length step {fmt_ms(opt)} vs baseline "
            f"{fmt_ms(base)})"
        )
    return [("Compiling pays for itself", pays)]


def _measurement_rows(c: dict, arm: str, item: dict) -> Rows:
    """Known measurements in words; any other measurement as compact JSON."""
    measured = as_dict(item.get("measurements"))
    m = dict(measured)
    # Its own registration's rows; a name not registered here (an older run, a user's stack)
    # gets every registered optimization's rows, each of which shows only the keys it knows.
    own = registry.evidence_rows(str(item.get("name")))
    makers = [own] if own else [r.evidence_rows for r in registry.registrations()]
    rows = [row for make in makers if make for row in make(m, formatting)]
    rows += _break_even_rows(c, arm, measured)
    return rows + [(str(k), json.dumps(v, ensure_ascii=False)) for k, v in m.items()]


def _evidence_card(c: dict, arm: str, item: dict) -> dict[str, Any]:
    findings = [
        {
            "kind": str(f.get("kind", "")),
            "detail": str(f.get("detail", "")),
            "bad": f.get("kind") == "NoEffect",
        }
        for f in as_list(item.get("findings"))
        if isinstance(f, dict)
    ]
    return {
        "arm": arm,
        "name": str(item.get("name", NA)),
        "title": registry.seed_name(str(item.get("name", NA))),  # 'KernelOptimizer (kernel)'
        "enabled": bool(item.get("enabled")),
        "effective": bool(item.get("effective")),
        "settings": ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False)}"
            for k, v in as_dict(item.get("settings")).items()
        )
        or "(none)",
        "applied": [str(a) for a in as_list(item.get("applied"))],
        "skipped": [
            {"what": str(s.get("what", "")), "why": str(s.get("why", ""))}
            for s in as_list(item.get("skipped"))
            if isinstance(s, dict)
        ],
        "measurements": _measurement_rows(c, arm, item),
        "findings": findings,
    }


def evidence_context(c: dict) -> list[dict[str, Any]]:
    """The optimized arm's optimizations, then every other arm's (the ablation arms)."""
    evidence = as_dict(c.get("evidence"))
    arms = [a for a in sorted(evidence, key=arm_sort_key) if a != "baseline"]
    groups = []
    for title, note, members in (
        ("optimized arm", "all optimizations together", [a for a in arms if a == "optimized"]),
        ("ablation arms", "each optimization alone", [a for a in arms if a != "optimized"]),
    ):
        if not members:
            continue
        cards = [
            _evidence_card(c, arm, item)
            for arm in members
            for item in as_list(evidence.get(arm))
            if isinstance(item, dict)
        ]
        empty = [a for a in members if not any(x["enabled"] for x in cards if x["arm"] == a)]
        groups.append(
            {
                "title": title,
                "note": note,
                "cards": cards,
                "show_arm": title != "optimized arm",
                "none_enabled": [f"No optimization is enabled in the {a} arm." for a in empty],
            }
        )
    return groups
