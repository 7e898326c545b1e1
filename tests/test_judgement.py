"""ryot/judge/judgement.py: a job judged once, every number comparison.json carries computed
here (per-pair speedups, medians, the run that stands for each arm, stalls for every job, the
verdict with its reasons), on hand-built runs as in tests/test_criteria.py."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace

import jsonschema
import pytest
import torch

from ryot.experiment import stage3a
from ryot.judge.criteria import judge, verdict
from ryot.judge.judgement import judge_job
from ryot.judge.measurements import measure, stalls
from ryot.judge.runs import RunJob, RunRecord
from ryot.report.schema import load_schema
from tests.test_criteria import CONFIG, CRITERIA_CONFIG, arm, good_pairs, records
from tests.test_criteria import stub_bench as stub_bench  # noqa: F401  (a fixture)


def judged(recs):
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    return judge_job(CONFIG, recs, m, rows, verdict(rows))


def with_warmup(recs: list[RunRecord]) -> list[RunRecord]:
    """The plan's order: the warm-up first, every other run one place later."""
    for r in recs:
        r.job.index += 1
    warmup = RunJob(1, "baseline", 0, CONFIG, "warmup", stop_after_epoch=1)
    return [RunRecord(warmup, arm(time_s=30.0), 0, "utf-8", 1.0), *recs]


def test_each_pair_has_its_speedup_and_each_arm_its_medians():
    m = judged(records(good_pairs())).measured
    ttt = m.matched_loss.to_dict()
    for p in ttt["pairs"]:
        assert p["speedup"] == pytest.approx(1 - p["optimized_s"] / p["baseline_s"], rel=1e-15)
    assert m.matched_loss.estimate.values == pytest.approx([p["speedup"] for p in ttt["pairs"]])
    assert ttt["median_baseline_s"] == statistics.median(p["baseline_s"] for p in ttt["pairs"])
    assert ttt["median_optimized_s"] == statistics.median(p["optimized_s"] for p in ttt["pairs"])
    # good_pairs' runs are 100, 102, 98 s and 50, 52, 49 s end to end, no stalls
    assert m.clock.to_dict() == {"baseline_median_s": 100.0, "optimized_median_s": 50.0}


def test_the_clock_medians_read_only_the_judged_pairs():
    recs = records(good_pairs())
    recs[0].contamination = "contended"  # pair 1's baseline: pair 1 is not judged
    assert judged(recs).measured.clock.to_dict() == {
        "baseline_median_s": 100.0,  # of 102 and 98
        "optimized_median_s": 50.5,  # of 52 and 49
    }


def test_an_arm_is_its_last_judged_pair_run_never_the_aa_run():
    recs = with_warmup(records(good_pairs()))  # warm-up, B O, O B, B O, then the A/A run
    assert recs[-1].job.role == "aa" and recs[-1].job.stop_after_epoch is None
    j = judged(recs)
    assert {arm: r.job.index for arm, r in j.last_runs.items()} == {"baseline": 6, "optimized": 7}
    assert j.to_dict()["last_runs"] == {"baseline": 6, "optimized": 7}
    assert j.evidence["optimized"] is recs[6].result.evidence


def test_the_verdict_carries_its_scenario_and_reasons():
    recs = records(good_pairs(opt_final=(4.3, 4.32, 4.29)))  # worse loss: not GO
    j = judged(recs)
    v = j.verdict.to_dict()
    assert v["status"] == "INVESTIGATE" and v["exit_code"] == 1
    assert v["decision"] == "INVESTIGATE & RETRY" and v["scenario"] == "worst-case"
    assert v["reasons"] == [r.summary for r in j.rows if not r.passed]


def test_a_single_arm_job_has_its_run_and_its_stalls_and_no_verdict(stub_bench, tmp_path):
    recs = records([(arm("optimized", time_s=50.0), arm("optimized", time_s=51.0))], aa=None)
    for i, r in enumerate(recs):  # one arm trained twice: pairs of itself, repeats 0 and 1
        r.job.repeat = i
    recs[0].result.step_stalls = [0.0] * 19 + [0.25]
    c = stage3a.build_comparison(CONFIG, "x.yaml", torch.device("cpu"), recs, None, [], None, "t")
    assert c["measurements"] is None and c["verdict"] is None and c["criteria"] == []
    assert c["last_runs"] == {"optimized": 2}
    assert c["stalls"]["total_s"] == 0.25
    assert [(r["label"], r["stall_s"]) for r in c["stalls"]["runs"]] == [
        ("run 1 (optimized, pair 1)", 0.25),
        ("run 2 (optimized, pair 2)", 0.0),
    ]
    jsonschema.Draft202012Validator(load_schema()).validate(json.loads(json.dumps(c)))


def built(recs) -> dict:
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    c = stage3a.build_comparison(
        CONFIG, "x.yaml", torch.device("cpu"), recs, m, rows, verdict(rows), "t"
    )
    return json.loads(json.dumps(c))


def test_a_paired_job_writes_its_stalls_once(stub_bench):
    recs = records(good_pairs())
    c = built(recs)
    assert c["stalls"] == stalls(recs).to_dict() and "stalls" not in c["measurements"]
    jsonschema.Draft202012Validator(load_schema()).validate(c)


def test_a_torchrun_job_has_its_skew_and_the_earlier_single_process_baseline(tmp_path, stub_bench):
    single = built(records(good_pairs()))  # the earlier single-process job's comparison.json
    single["baseline"].update(total_time=120.0, clock_s=120.0, val_loss=4.1)
    earlier = tmp_path / "comparison.json"
    earlier.write_text(json.dumps(single), encoding="utf-8")
    recs = records(good_pairs())
    for r in recs:
        r.result = replace(r.result, world_size=2, backend="gloo",
                           rank_step_times=[[0.5, 0.5, 0.75], [0.5, 0.625, 0.5]])  # fmt: skip
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    d = judge_job(CONFIG, recs, m, rows, verdict(rows), earlier).distributed.to_dict()
    assert (d["world_size"], d["backend"], d["median_skew_s"], d["max_skew_s"]) == (
        2, "gloo", 0.125, 0.25,
    )  # fmt: skip
    assert d["runs"][0]["rank_median_step_s"] == [0.5, 0.5]
    assert d["single_process"] == {
        "source": str(earlier),
        "clock_s": 120.0,
        "val_loss": 4.1,
        "distributed_clock_s": 100.0,
        "distributed_val_loss": 4.0,
    }
    assert judge_job(CONFIG, recs, m, rows, verdict(rows)).distributed.single_process is None

    # what is not a readable comparison (the typed model's check) is no reference
    def reference(d: dict):
        earlier.write_text(json.dumps(d), encoding="utf-8")
        return judge_job(CONFIG, recs, m, rows, verdict(rows), earlier).distributed.single_process

    assert reference({"config": CONFIG.to_dict(), "baseline": {}}) is None
    # a file before stall accounting (schema 2.0) has no stack clock: none is made up
    single.update(schema_version="2.0")
    single["baseline"].pop("clock_s")
    ref = reference(single)
    assert (ref.clock_s, ref.val_loss) == (None, 4.1)
