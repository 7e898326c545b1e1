"""CI: decide whether a `pytest validation/` run that exited 1 is an honest NO-GO or a broken run.

The project's CI checks that the product works: the validation must run to the end, write its
report, and judge. What it judges is the shipped stack on *this* machine, and an honest
INVESTIGATE there (say, no native bf16 on the CPU, so the kernel level gains little) is the
product doing its job, not a defect. Anything else fails CI: a missing or unreadable
comparison.json or report, a DEBUG verdict (the bench did not learn, an optimization had no
effect, a crash, a NaN), a failed test that is not a non-critical criterion, or no tests at all.

Usage: python .ci/accept_verdict.py RUN_DIR   (exit 0: accept; exit 1: fail CI)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

CRITERION_TEST = "validation/test_stage3a.py::test_criterion["


def main(run_dir: Path) -> int:
    try:
        data = json.loads((run_dir / "comparison.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"ci: no readable comparison.json in {run_dir}: {exc}")
        return 1
    if not (run_dir / "report.html").is_file():
        print(f"ci: {run_dir / 'report.html'} was not written")
        return 1
    status = (data.get("verdict") or {}).get("status")
    tests = data.get("tests") or {}
    if status != "INVESTIGATE" or not tests:
        print(f"ci: verdict {status!r} with {len(tests)} recorded tests: not accepted")
        return 1
    critical = {row["id"] for row in data.get("criteria", []) if row.get("critical")}
    broken = []
    for nodeid, outcome in tests.items():
        if outcome == "passed":
            continue
        criterion = nodeid.removeprefix(CRITERION_TEST).rstrip("]")
        if not nodeid.startswith(CRITERION_TEST) or criterion in critical:
            broken.append(f"{nodeid} {outcome}")
    if broken:
        print("ci: tests failed beyond the non-critical criteria: " + "; ".join(broken))
        return 1
    failed = [row["id"] for row in data.get("criteria", []) if not row.get("passed")]
    print(
        f"ci: accepted an honest INVESTIGATE on this machine (failed: {', '.join(failed)}); "
        f"every other test passed and the report is at {run_dir / 'report.html'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/stage3a")))
