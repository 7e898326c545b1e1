"""The evidence section: each optimization's settings, effect and measurements in words."""

from __future__ import annotations

import json
from typing import Any

from ryot.comparison.model import BreakEven, Comparison
from ryot.comparison.runs import EvidenceItem
from ryot.optim import registry
from ryot.report import formatting
from ryot.report.fields import arm_sort_key
from ryot.report.formatting import NA, fmt_int, fmt_ms, fmt_seconds, fmt_text

Rows = list[tuple[str, str]]


def _pays(b: BreakEven) -> str:
    """When the arm's compile time is paid back, in words (the judge's break-even: medians of
    full-length steps only, since a length warmup's short steps are cheaper for other reasons)."""
    secs, base, opt, arm = b.compile_s, b.baseline_step_s, b.arm_step_s, fmt_text(b.arm)
    if secs is None:
        return NA
    if base is None:
        return f"{NA}: no full-length baseline step to compare with"
    if opt is None:
        return (
            f"{NA}: no step of the {arm} arm ran at full length ({fmt_int(b.full_tokens)} tokens)"
        )
    if b.steps is None:
        return (
            f"never at this step time (median full-length step {fmt_ms(opt)} vs baseline "
            f"{fmt_ms(base)})"
        )
    return (
        f"after {fmt_int(b.steps)} steps ({fmt_seconds(secs)} / "
        f"({fmt_ms(base)} - {fmt_ms(opt)}) saved per step; medians of "
        f"{fmt_text(b.baseline_steps)} baseline and {fmt_text(b.arm_steps)} {arm} full-length "
        "steps)"
    )


def _measurement_rows(c: Comparison, arm: str, item: EvidenceItem) -> Rows:
    """Known measurements in words; any other measurement as compact JSON."""
    m = dict(item.measurements)  # each registration's rows take the keys they word
    # Its own registration's rows; a name not registered here (an older run, a user's stack)
    # gets every registered optimization's rows, each of which shows only the keys it knows.
    own = registry.evidence_rows(str(item.name))
    makers = [own] if own else [r.evidence_rows for r in registry.registrations()]
    rows = [row for make in makers if make for row in make(m, formatting)]
    rows += [
        ("Compiling pays for itself", _pays(b))
        for b in c.compile_break_even
        if b.arm == arm and b.optimization == str(item.name)
    ]
    return rows + [(str(k), json.dumps(v, ensure_ascii=False)) for k, v in m.items()]


def _evidence_card(c: Comparison, arm: str, item: EvidenceItem) -> dict[str, Any]:
    findings = [
        {"kind": f.kind or "", "detail": f.detail or "", "bad": f.kind == "NoEffect"}
        for f in item.findings
    ]
    name = fmt_text(item.name)
    return {
        "arm": arm,
        "name": name,
        "title": registry.seed_name(name),  # 'KernelOptimizer (kernel)'
        "enabled": bool(item.enabled),
        "effective": bool(item.effective),
        "settings": ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in (item.settings or {}).items()
        )
        or "(none)",
        "applied": [fmt_text(a) for a in item.applied],
        "skipped": [{"what": s.what or "", "why": s.why or ""} for s in item.skipped],
        "measurements": _measurement_rows(c, arm, item),
        "findings": findings,
    }


def evidence_context(c: Comparison) -> list[dict[str, Any]]:
    """The optimized arm's optimizations, then every other arm's (the ablation arms)."""
    arms = [a for a in sorted(c.evidence, key=arm_sort_key) if a != "baseline"]
    groups = []
    for title, note, members in (
        ("optimized arm", "all optimizations together", [a for a in arms if a == "optimized"]),
        ("ablation arms", "each optimization alone", [a for a in arms if a != "optimized"]),
    ):
        if not members:
            continue
        cards = [_evidence_card(c, arm, item) for arm in members for item in c.evidence[arm]]
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
