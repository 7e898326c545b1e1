"""ryot/judge/break_even.py: when an arm's compile time is paid back, on hand-built runs."""

from __future__ import annotations

from ryot.judge.break_even import compile_break_even
from ryot.judge.runs import RunJob, RunRecord
from tests.test_criteria import CONFIG, arm

FULL = 2048  # tokens of a full-length step (tests/test_criteria.py's)


def run(index, name, role, step_s, tokens=None, compile_s=None) -> RunRecord:
    """A run whose steps take `step_s` each and feed `tokens` (all full length by default)."""
    evidence = [] if compile_s is None else [
        {"name": "kernel", "enabled": True, "applied": [], "skipped": [], "findings": [],
         "effective": True, "measurements": {"compile_seconds": compile_s, "recompiles": 0}},
    ]  # fmt: skip
    r = arm(name, evidence=evidence)
    r.step_times = [step_s] * len(r.step_times)
    r.step_tokens = list(tokens or [FULL] * len(r.step_times))
    return RunRecord(RunJob(index, name, 0, CONFIG, role), r, 0, "utf-8", 1.0)


def evidence(recs):
    return {r.job.arm: r.result.evidence for r in recs if r.job.role == "pair"}


def test_compiling_pays_for_itself_after_compile_s_over_the_time_saved_per_step():
    # The length warmup's short first steps are cheap for reasons other than compiling: only
    # full-length steps count, as does no warm-up run.
    warmup = [FULL // 4] * 4 + [FULL] * 16
    recs = [
        run(1, "baseline", "warmup", 4.0),
        run(2, "baseline", "pair", 0.5),
        run(3, "optimized", "pair", 0.25, tokens=[t if t < FULL else FULL for t in warmup],
            compile_s=10.0),
    ]  # fmt: skip
    recs[2].result.step_times[:4] = [0.01] * 4
    (row,) = compile_break_even(recs, evidence(recs))
    assert row.to_dict() == {
        "arm": "optimized",
        "optimization": "kernel",
        "compile_s": 10.0,
        "baseline_step_s": 0.5,
        "arm_step_s": 0.25,
        "baseline_steps": 20,
        "arm_steps": 16,
        "full_tokens": FULL,
        "steps": 40,  # 10 s / 0.25 s saved per step
    }


def test_a_step_no_faster_never_pays_back_and_unknowns_stay_unknown():
    slower = [run(1, "baseline", "pair", 0.5), run(2, "optimized", "pair", 0.5, compile_s=3.0)]
    (row,) = compile_break_even(slower, evidence(slower))
    assert (row.baseline_step_s, row.arm_step_s, row.steps) == (0.5, 0.5, None)
    short = [
        run(1, "baseline", "pair", 0.5),
        run(2, "optimized", "pair", 0.25, tokens=[FULL // 2] * 20, compile_s="n/a"),
    ]
    (row,) = compile_break_even(short, evidence(short))
    assert (row.compile_s, row.arm_step_s, row.arm_steps, row.steps) == (None, None, 0, None)
    alone = [run(1, "optimized", "pair", 0.25, compile_s=3.0)]  # a single-arm job
    (row,) = compile_break_even(alone, evidence(alone))
    assert (row.full_tokens, row.baseline_step_s, row.arm_step_s, row.steps) == (
        None, None, None, None,
    )  # fmt: skip


def test_only_evidence_that_measured_its_compile_time_has_a_row():
    recs = [run(1, "baseline", "pair", 0.5), run(2, "optimized", "pair", 0.25)]
    assert compile_break_even(recs, evidence(recs)) == ()
