"""Reading comparison.json tolerantly: any field may be missing, null or of another type.

The report is rendered from files written by older or failed runs too, so every access goes
through these helpers instead of indexing; and the arms and runs every section lists.
"""

from __future__ import annotations

from typing import Any

from ryot.comparison.numbers import is_num
from ryot.optim import registry


def get_path(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def as_list(x: Any) -> list:
    return x if isinstance(x, list) else []


def as_dict(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def arm_sort_key(arm: str) -> tuple[int, str]:
    """baseline, optimized, then the ablation arms in registration order, then any other."""
    order = registry.arm_order()
    return (order.index(arm) if arm in order else len(order), arm)


def result_runs(comparison: dict) -> list[dict]:
    """Runs that produced a result, any role but the warm-up (the job's first run, discarded:
    never judged, never an arm's run on the page)."""
    runs = as_list(comparison.get("runs"))
    return [
        r
        for r in runs
        if isinstance(r, dict) and isinstance(r.get("result"), dict) and r.get("role") != "warmup"
    ]


def contaminated(run: dict) -> bool:
    """Whether the run was never judged: too much of its time contended (its reason is set)."""
    return bool(run.get("contamination"))


def last_run(comparison: dict, arm: str) -> dict | None:
    """The arm's last run with a result, a clean one where there is one."""
    found = [r for r in result_runs(comparison) if r.get("arm") == arm]
    clean = [r for r in found if not contaminated(r)]
    return (clean or found)[-1] if found else None


def _attempt(run: dict) -> Any:
    return run["attempt"] if is_num(run.get("attempt")) else 0


def _repeat(run: dict) -> Any:
    return run["repeat"] if is_num(run.get("repeat")) else None


def pair_runs(comparison: dict, arm: str) -> list[dict]:
    """The arm's runs with a result in the pairs the judge read (not A/A, ablation): each
    repeat's last attempt with no contaminated run (ryot.judge.measurements); a file without
    re-runs has one attempt per repeat, so every paired run."""
    runs = [r for r in as_list(comparison.get("runs")) if isinstance(r, dict)]
    paired = [r for r in runs if r.get("role") == "pair"]
    dirty = {(_repeat(r), _attempt(r)) for r in paired if contaminated(r)}
    last: dict[Any, Any] = {}
    for r in paired:
        key = (_repeat(r), _attempt(r))
        if key not in dirty:
            last[key[0]] = max(last.get(key[0], key[1]), key[1])
    return [
        r
        for r in result_runs(comparison)
        if r.get("arm") == arm and r.get("role") == "pair" and last.get(_repeat(r)) == _attempt(r)
    ]


def last_pair_run(comparison: dict, arm: str) -> dict | None:
    """The arm's last judged paired run, else its last run of any role."""
    runs = pair_runs(comparison, arm)
    return runs[-1] if runs else last_run(comparison, arm)


def measurement(comparison: dict, key: str) -> dict:
    """One entry of "measurements" (schema 2.0 and later), {} when absent."""
    return as_dict(get_path(comparison, "measurements", key))


def estimate(comparison: dict, key: str) -> dict:
    """An Estimate dict: from "measurements" (which carries pairs, margin, ...), else from
    "confidence_intervals"; {} when neither has it (older or single-arm runs)."""
    return measurement(comparison, key) or as_dict(
        get_path(comparison, "confidence_intervals", key)
    )


def arm_names(comparison: dict) -> list[str]:
    runs = [r for r in as_list(comparison.get("runs")) if isinstance(r, dict)]
    return sorted({r["arm"] for r in runs if isinstance(r.get("arm"), str)}, key=arm_sort_key)


def judged_at_target(comparison: dict) -> bool:
    """Schemas 1.0 and 2.0 judged every pair at one target loss (measurements.target); 3.0
    judges each pair at its own matched loss L* (time_to_target.pairs[].loss)."""
    return comparison.get("schema_version") in ("1.0", "2.0") or isinstance(
        get_path(comparison, "measurements", "target"), dict
    )


def reference(comparison: dict, key: str) -> Any:
    """A bench reference loss (bayes_floor, unigram_loss): top level, else from "bench"."""
    value = comparison.get(key)
    return value if is_num(value) else get_path(comparison, "bench", key)


def ttt_pairs(comparison: dict) -> list[dict]:
    """measurements.time_to_target.pairs: each pair's times to its matched loss (2.0: to the
    target), the dicts alone."""
    pairs = get_path(comparison, "measurements", "time_to_target", "pairs")
    return [p for p in as_list(pairs) if isinstance(p, dict)]


def ttt_words(comparison: dict) -> str:
    """What the speedup at equal quality times: one target (schema 2.0) or each pair's L*."""
    return "time to target" if judged_at_target(comparison) else "time to matched loss"
