"""The report's Stage 3b section: RUN_DIR/stage3b.json (written by `pytest serving/`) in rows.

Like the rest of the report, every number is formatted here from the JSON; the template partial
(templates/stage3b.html.j2) only lays it out. A run without stage3b.json has no section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ryot.report.formatting import NA, fmt, fmt_int

STAGE3B_NAME = "stage3b.json"
CRITERIA_NAMES = {
    "no_errors_under_load": "No errors under load",
    "p50_latency": "p50 latency",
    "p99_latency": "p99 latency",
    "tokens_per_second": "Generated tokens/s",
    "batching_gain": "Batching gain (concurrent / sequential)",
    "batched_equals_unbatched": "Batched outputs equal unbatched",
}


def read_stage3b(run_dir: Path) -> dict[str, Any] | None:
    """RUN_DIR/stage3b.json, None when absent; an unreadable file becomes a section saying so."""
    path = Path(run_dir) / STAGE3B_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {"unreadable": f"{path}: {type(exc).__name__}"}
    return data if isinstance(data, dict) else {"unreadable": f"{path}: not a JSON object"}


def _load_rows(load: dict) -> list[tuple[str, str, str]]:
    seq, con = load.get("sequential") or {}, load.get("concurrent") or {}
    rows = [
        ("Concurrency", "concurrency", ",.0f", ""),
        ("Requests", "requests", ",.0f", ""),
        ("Errors", "errors", ",.0f", ""),
        ("Wall time", "wall_s", ".2f", " s"),
        ("New tokens", "new_tokens", ",.0f", ""),
        ("p50 latency", "p50_ms", ".1f", " ms"),
        ("p99 latency", "p99_ms", ".1f", " ms"),
        ("Generated tokens/s", "tokens_per_s", ",.0f", ""),
        ("Mean rows per decode batch", "mean_batch_rows", ".1f", ""),
    ]
    return [(label, fmt(seq.get(k), spec, unit), fmt(con.get(k), spec, unit))
            for label, k, spec, unit in rows]  # fmt: skip


def stage3b_context(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """Flat rows for the Stage 3b section, or None when the run has no stage3b.json."""
    if data is None:
        return None
    if "unreadable" in data:
        return {"unreadable": data["unreadable"]}
    criteria = data.get("criteria") or {}
    rows = []
    for key, label in CRITERIA_NAMES.items():
        c = criteria.get(key)
        rows.append({
            "name": label,
            "measured": c is not None,
            "passed": bool(c and c.get("passed")),
            "detail": c.get("detail", "") if c else "not measured (its test did not run)",
        })  # fmt: skip
    bad = data.get("bad_input") or {}
    bad_ok = sum(1 for v in bad.values() if isinstance(v, dict) and 400 <= v.get("status", 0) < 500)
    health = data.get("health") or {}
    checkpoint = health.get("checkpoint") or {}
    tests = data.get("tests") or {}
    model = data.get("model") or {}  # absent from a stage3b.json older than model.factory
    decoding = (
        NA if "kv_cache" not in model
        else "KV cache" if model["kv_cache"]
        else "no KV cache: a full forward per token"
    )  # fmt: skip
    return {
        "unreadable": None,
        "status": data.get("status", NA),
        "passed": data.get("status") == "PASS",
        "served": [
            ("Run", str(data.get("run_dir", NA))),
            ("Checkpoint", f"{checkpoint.get('path', NA)} (sha256 {checkpoint.get('sha256', NA)})"),
            ("Model", f"{model.get('name', NA)} ({decoding})"),
            ("Parameters", fmt_int(health.get("parameters"))),
            (
                "Run verdict",
                f"{data.get('run_verdict', NA)}"
                + (" (served with --allow-no-go)" if data.get("allow_no_go") else ""),
            ),
            ("Device", str(health.get("device", NA))),
            ("Criteria from", str((data.get("serving") or {}).get("source", NA))),
        ],  # fmt: skip
        "criteria": rows,
        "load": _load_rows(data.get("load") or {}),
        "bad_input": f"{bad_ok} of {len(bad)} bad-input classes answered 4xx",
        "tests": f"{sum(1 for v in tests.values() if v == 'passed')} of {len(tests)} tests passed",
        "duration": fmt(data.get("duration_s"), ".1f", " s"),
        "created": str(data.get("created", NA)),
        "command": str(data.get("command", "")),
    }
