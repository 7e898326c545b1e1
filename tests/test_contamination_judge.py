"""The judge and contaminated runs, warm-up runs and the wall clock, on synthetic runs.

No training and no timing: each test builds the records a job with re-runs would leave (a
contaminated pair and its re-run, a repeat or A/A with no clean run left, a discarded warm-up,
a stalled run) and checks what ryot.judge.measurements and ryot.judge.criteria make of them.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import jsonschema
import pytest
import torch

from ryot.comparison.model import Comparison
from ryot.console import Console
from ryot.experiment import stage3a
from ryot.judge.contamination import contamination
from ryot.judge.criteria import DEBUG, GO, INVESTIGATE, judge, verdict, verdict_reasons
from ryot.judge.measurements import measure, stalls
from ryot.judge.runs import RunJob, RunRecord
from ryot.report.html import render_report
from ryot.report.schema import load_schema
from ryot.train.results import ArmResult
from tests.test_criteria import CONFIG, CRITERIA_CONFIG, STEPS, arm, good_pairs, records
from tests.test_criteria import stub_bench as stub_bench  # noqa: F401  (a fixture)

BOUND = CONFIG.measurement.max_contended_share


class Job:
    """Records in the order a job with re-runs leaves them, each with its index."""

    def __init__(self) -> None:
        self.records: list[RunRecord] = []

    def add(self, result: ArmResult | None, repeat: int, role: str = "pair", attempt: int = 0,
            contended: float = 0.0) -> RunRecord:  # fmt: skip
        """One run; `contended`: the share of its time contended (over the bound: contaminated,
        its reason set as the experiment sets it)."""
        if result is not None and contended:
            result.contended_s = contended * result.wall_time_s
        seeded = replace(CONFIG, training=replace(CONFIG.training, seed=42 + repeat))
        job = RunJob(len(self.records) + 1, result.arm if result else "optimized", repeat,
                     seeded, role, attempt=attempt)  # fmt: skip
        rec = RunRecord(job, result, 0 if result else 1, "ascii", 1.0)
        rec.contamination = contamination(result, BOUND)
        self.records.append(rec)
        return rec

    def pairs(self, pairs, start: int = 0) -> Job:
        for i, (b, o) in enumerate(pairs, start):
            self.add(b, i)
            self.add(o, i)
        return self

    def aa(self, time_s: float = 101.0, contended: float = 0.0) -> RunRecord:
        return self.add(arm(time_s=time_s), 0, "aa", contended=contended)


def fast(time_s: float = 10.0) -> ArmResult:
    """An optimized run that read far too fast: what a contaminated baseline beside it makes."""
    return arm("optimized", time_s=time_s)


def judged(recs: list[RunRecord]):
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    return m, verdict(rows), {r.id: r for r in rows}


# --- a contaminated pair is re-run, never judged ------------------------------------------


def test_a_contaminated_pair_is_never_judged_its_clean_rerun_is():
    clean = measure(CONFIG, records(good_pairs()), [])
    (b0, o0), (b1, o1), (b2, o2) = good_pairs()
    job = Job()
    job.add(b0, 0)
    job.add(o0, 0)
    # pair 2's first try: its baseline lost 30% of its time to a neighbour, and read 300 s
    job.add(arm(time_s=300.0, final=4.02), 1, contended=0.3)
    job.add(fast(), 1)
    job.add(b1, 1, attempt=1)  # its re-run
    job.add(o1, 1, attempt=1)
    job.add(b2, 2)
    job.add(o2, 2)
    job.aa()
    m, v, rows = judged(job.records)
    for key in ("matched_loss", "speedup", "throughput", "loss_delta"):
        a, b = clean.to_dict()[key], m.to_dict()[key]
        assert a["values"] == pytest.approx(b["values"], abs=1e-12), key
    assert (v, rows["machine_quiet"].passed) == (GO, True)
    k = m.contamination
    assert not k.too_busy and k.reruns == 1
    (run,) = k.runs
    assert (run.arm, run.role, run.repeat, run.attempt) == ("baseline", "pair", 1, 0)
    assert run.contended_s == pytest.approx(90.0) and run.share == pytest.approx(0.3)
    assert "over the 5% bound" in run.reason
    assert rows["machine_quiet"].summary.startswith(
        "Machine quiet enough to judge: 1 contaminated run(s), re-run clean"
    )


def test_the_judge_reads_the_bound_itself_when_a_record_has_no_reason():
    job = Job().pairs(good_pairs())
    job.aa()
    rec = job.records[3]  # pair 2's optimized run lost half its time to a neighbour
    rec.result.contended_s = 0.5 * rec.result.wall_time_s
    assert rec.contamination is None  # and the experiment did not say so
    m, v, rows = judged(job.records)
    assert m.contamination.busy == ("pair 2",) and m.speedup.n == 2
    assert v == INVESTIGATE and not rows["machine_quiet"].passed


def test_a_repeat_with_no_clean_run_left_makes_the_machine_too_busy():
    job = Job()
    job.pairs(good_pairs()[:2])
    b, _ = good_pairs()[2]
    for attempt in range(3):  # the first try and two re-runs, all contaminated
        job.add(arm(time_s=150.0, final=3.99), 2, attempt=attempt, contended=0.2)
        job.add(fast(), 2, attempt=attempt)
    job.aa()
    m, v, rows = judged(job.records)
    assert m.contamination.too_busy and m.contamination.busy == ("pair 3",)
    assert m.speedup.n == m.matched_loss.estimate.n == 2  # pair 3 never reaches a criterion
    assert [p.repeat for p in m.matched_loss.pairs] == [0, 1]
    assert v == INVESTIGATE and not rows["machine_quiet"].passed
    assert not rows["machine_quiet"].critical
    summary = rows["machine_quiet"].summary
    assert "the machine was too busy to judge: pair 3 left without a clean run" in summary
    assert "90.00 s contended in 3 contaminated run(s)" in summary
    assert "run 5 (baseline, pair 3): 30.00 s contended (20.0%)" in summary
    assert any("the machine was too busy to judge" in r for r in verdict_reasons(
        judge(m, CRITERIA_CONFIG), {}))  # fmt: skip


def test_a_job_with_every_run_contaminated_is_investigate_not_debug():
    job = Job()
    for i, (b, o) in enumerate(good_pairs()):
        job.add(b, i, contended=0.1)
        job.add(o, i, contended=0.1)
    job.aa(contended=0.1)
    m, v, rows = judged(job.records)
    assert m.contamination.busy == ("pair 1", "pair 2", "pair 3", "the A/A run")
    assert not m.learning.per_seed and m.speedup.n == 0 and m.memory.baseline is None
    assert v == INVESTIGATE  # a busy machine is no fault of the stack
    learned = rows["baseline_learned"]
    assert not learned.passed and not learned.critical
    assert "the machine was too busy to judge" in learned.detail
    assert "contaminated" in m.noise.detail and m.noise.aa is None


def test_a_crash_still_is_debug_on_a_busy_machine():
    job = Job()
    job.pairs(good_pairs()[:2])
    job.add(arm(time_s=98, final=3.99), 2, contended=0.2)
    job.add(None, 2)  # the optimized run crashed
    job.aa()
    _, v, rows = judged(job.records)
    assert v == DEBUG and not rows["no_divergence"].passed and not rows["machine_quiet"].passed


# --- the A/A run --------------------------------------------------------------------------


def test_the_aa_is_judged_on_its_last_clean_run_against_the_clean_baseline_of_pair_1():
    job = Job()
    b, o = good_pairs()[0]
    job.add(arm(time_s=200.0), 0, contended=0.25)  # pair 1's first baseline: contaminated
    job.add(fast(), 0)
    job.add(b, 0, attempt=1)
    job.add(o, 0, attempt=1)
    job.pairs(good_pairs()[1:], start=1)
    job.aa(time_s=300.0, contended=0.5)
    job.add(arm(time_s=b.wall_time_s * 1.02), 0, "aa", attempt=1)
    m, v, rows = judged(job.records)
    assert m.noise.aa == pytest.approx(0.02, abs=1e-9)  # not against the 200 s run
    assert m.noise.baseline_s == pytest.approx(b.clock_s)
    assert v == GO and m.contamination.reruns == 2  # pair 1 once, the A/A once


def test_an_aa_with_no_clean_run_left_is_too_busy():
    job = Job().pairs(good_pairs())
    job.aa(contended=0.2)
    job.add(arm(time_s=101.0), 0, "aa", attempt=1, contended=0.2)
    m, v, rows = judged(job.records)
    assert m.contamination.busy == ("the A/A run",)
    assert m.noise.aa is None and "every A/A run was contaminated" in m.noise.detail
    assert v == INVESTIGATE
    assert {"machine_quiet", "measurement_reliable"} == {r for r in rows if not rows[r].passed}


# --- the warm-up run ----------------------------------------------------------------------


def test_the_warm_up_run_is_never_judged():
    clean = measure(CONFIG, records(good_pairs()), [])
    warm = arm(time_s=400.0, start=5.0, final=5.0, val=math.nan)  # slow, flat, a NaN, huge
    warm.peak_memory_mb = 9000.0
    job = Job()
    job.add(warm, 0, "warmup")
    job.records += records(good_pairs())
    m, v, _ = judged(job.records)
    assert v == GO and not m.divergence
    assert m.memory.baseline == clean.memory.baseline
    assert m.learning == clean.learning and m.noise == clean.noise
    assert m.speedup.values == clean.speedup.values
    assert [r.role for r in stalls(job.records).runs][0] == "warmup"  # listed, not judged


# --- the wall clock beside the stack clock --------------------------------------------------


def _stall(r: ArmResult, step: int, seconds: float, stopped: bool) -> None:
    r.step_stalls = r.step_stalls or [0.0] * STEPS
    r.step_times[step] += seconds
    r.step_stalls[step] += seconds
    r.train_time_s += seconds
    if stopped:
        r.stopped_s += seconds
    else:
        r.contended_s += seconds


def test_the_wall_speedup_is_beside_the_clock_speedup_and_its_gap_is_explained():
    pairs = good_pairs()
    _stall(pairs[1][0], 7, 6.0, stopped=True)  # a SIGSTOP in pair 2's baseline
    _stall(pairs[2][0], 3, 3.0, stopped=False)  # a neighbour, under the 5% bound
    m = measure(CONFIG, records(pairs), [])
    clean = measure(CONFIG, records(good_pairs()), [])
    assert m.speedup.values == pytest.approx(clean.speedup.values, abs=1e-12)
    assert m.wall_speedup.point > m.speedup.point  # the stalls read as a speedup on the wall
    expected = [1 - o.wall_time_s / b.wall_time_s for b, o in pairs]
    assert m.wall_speedup.values == pytest.approx(expected)
    gap = m.wall_gap
    assert gap.gap == pytest.approx(m.wall_speedup.point - m.speedup.point)
    assert gap.exceeds and gap.noise == pytest.approx(m.noise.aa)
    assert [(r.label, r.stall_s, r.stopped_s, r.contended_s) for r in gap.runs] == [
        ("run 4 (baseline, pair 2)", 6.0, 6.0, 0.0),
        ("run 5 (baseline, pair 3)", 3.0, 0.0, 3.0),
    ]
    assert not m.contamination.runs  # 3 s of 101 s is under the bound


def test_without_stalls_the_wall_and_clock_speedups_agree():
    m = measure(CONFIG, records(good_pairs()), [])
    assert m.wall_speedup.values == m.speedup.values
    assert m.wall_gap.gap == 0.0 and not m.wall_gap.exceeds and m.wall_gap.runs == ()


# --- comparison.json, the console and the page --------------------------------------------


def _busy_job() -> list[RunRecord]:
    job = Job()
    job.add(arm(time_s=30.0), 0, "warmup")
    pairs = good_pairs()
    _stall(pairs[0][0], 2, 6.0, stopped=True)
    job.pairs(pairs[:2])
    for attempt in range(3):
        job.add(arm(time_s=150.0, final=3.99), 2, attempt=attempt, contended=0.2)
        job.add(fast(), 2, attempt=attempt)
    job.aa()
    return job.records


def test_comparison_json_carries_it_all_and_validates(stub_bench, tmp_path):  # noqa: F811
    recs = _busy_job()
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    c = stage3a.build_comparison(
        CONFIG, "x.yaml", torch.device("cpu"), recs, m, rows, verdict(rows), "test"
    )
    c = json.loads(json.dumps(c, allow_nan=False))
    jsonschema.Draft202012Validator(load_schema()).validate(c)
    assert c["measurements"]["contamination"]["too_busy"] is True
    assert [r["attempt"] for r in c["runs"]][5:8] == [0, 0, 1]
    assert c["runs"][0]["role"] == "warmup"
    assert c["measurements"]["wall_speedup"]["n"] == 2
    assert any("the machine was too busy to judge" in r for r in c["verdict"]["reasons"])

    out = io.StringIO()
    stage3a.print_comparison(Console(out), Comparison.from_dict(c))
    text = out.getvalue()
    assert "; by the wall clock " in text
    assert "By the wall clock: " in text and "more than the A/A noise" in text
    assert "run 2 (baseline, pair 1) 6.00 s (stopped 6.00 s, contended 0.00 s)" in text
    assert "Contaminated (more than 5% of its time contended), re-run and never judged: " in text
    assert "run 6 (baseline, pair 3) 30.00 s contended (20.0%)" in text
    assert (
        "The machine was too busy to judge: pair 3 left without a clean run after 2 re-run(s) "
        f"(at most {CONFIG.measurement.max_reruns})"
    ) in text

    html = render_report(c)
    assert 'id="headline-wall"' in html and "End-to-end speedup by the wall clock" in html
    assert 'class="contaminated"' in html and "too-busy" in html
    assert "The machine was too busy to judge: pair 3" in html
    assert "contaminated, never judged: " in html  # the raw runs table
    assert "pair, re-run 2" in html


def test_older_files_render_without_the_new_fields(stub_bench):  # noqa: F811
    recs = records(good_pairs())
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    c = stage3a.build_comparison(
        CONFIG, "x.yaml", torch.device("cpu"), recs, m, rows, verdict(rows), "test"
    )
    c = json.loads(json.dumps(c))
    for key in ("wall_speedup", "wall_gap", "contamination"):
        del c["measurements"][key]
    for run in c["runs"]:
        del run["attempt"], run["contamination"]
    jsonschema.Draft202012Validator(load_schema()).validate(c)
    html = render_report(c)
    assert 'id="headline-wall"' not in html and 'class="contaminated"' not in html
