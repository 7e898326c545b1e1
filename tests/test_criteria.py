"""The judge's logic on synthetic results: hand-built runs with curves and times, no training.

Timing is not the point here, so nothing is timed: each test builds the runs a scenario would
produce (a good optimization, a learning-less shortcut, a baseline that learned nothing, an A/A,
a NaN, a zero training time, ...) and checks what ryot.judge.measurements and
ryot.judge.criteria make of them.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import jsonschema
import pytest
import torch

from ryot.bench import data
from ryot.comparison.model import Comparison
from ryot.config import Config, CriteriaConfig
from ryot.console import Console
from ryot.experiment import stage3a
from ryot.judge.criteria import CRITERIA, DEBUG, GO, INVESTIGATE, judge, scenario, verdict
from ryot.judge.measurements import measure, stalls
from ryot.judge.runs import RunJob, RunRecord
from ryot.osutil import write_json_atomic
from ryot.report.schema import SCHEMA_VERSION, load_schema
from ryot.train.results import ArmResult, EpochMetrics

# The thresholds every scenario is judged against (not the shipped ones: these tests are about
# the logic, so they must not move when the shipped config is retuned).
CRITERIA_CONFIG = CriteriaConfig(
    min_speedup_percent=25.0,
    max_loss_delta=0.1,
    min_throughput_improvement_percent=20.0,
    max_peak_memory_mb=500.0,
    max_noise_percent=10.0,
    min_loss_drop=1.0,
    min_context_learned=0.25,
)
CONFIG = Config(name="synthetic", criteria=CRITERIA_CONFIG)
UNIGRAM, FLOOR = 5.0, 2.0  # the bench's reference losses in these synthetic runs
STEPS, TOKENS = 20, 2048  # optimizer steps per run, tokens fed per step
ENABLED = [
    {
        "name": "kernel",
        "enabled": True,
        "applied": ["fused attention"],
        "skipped": [],
        "measurements": {},
        "findings": [],
        "effective": True,
    }
]


def arm(
    name="baseline", *, time_s=100.0, start=6.0, final=4.0, val=None, setup_s=None, evidence=None
) -> ArmResult:
    """One run: `time_s` end to end, its curve falling from `start` to `final` (convex)."""
    setup = 0.1 * time_s if setup_s is None else setup_s
    step = (time_s - setup) / STEPS
    curve = [
        {
            "step": s,
            "clock_s": setup + s * step,
            "val_loss": final + (start - final) * (1 - s / STEPS) ** 2,
        }
        for s in range(0, STEPS + 1, 2)
    ]
    half = STEPS // 2
    epochs = [
        EpochMetrics(
            e + 1,
            loss,
            half * step,
            half * TOKENS,
            half * 16,
            TOKENS / step if step else 0.0,
            16 / step if step else 0.0,
            1.0,
            "ok",
        )
        for e, loss in enumerate((start - 0.6 * (start - final), final + 0.1 * (start - final)))
    ]
    return ArmResult(
        arm=name,
        device="cpu",
        threads=2,
        num_parameters=1000,
        step_times=[step] * STEPS,
        step_losses=[final] * STEPS,
        step_tokens=[TOKENS] * STEPS,
        epochs=epochs,
        setup_time_s=setup,
        train_time_s=step * STEPS,
        val_loss=final if val is None else val,
        initial_val_loss=start,
        val_loss_per_position=[final] * 4,
        curve=curve,
        peak_memory_mb=100.0,
        memory_method="synthetic",
        bayes_floor=FLOOR,
        unigram_loss=UNIGRAM,
        evidence=list(ENABLED if evidence is None and name == "optimized" else evidence or []),
    )


def records(pairs, aa: ArmResult | None = "copy") -> list[RunRecord]:
    """Pairs in alternating order (B O, O B, ...), then the A/A repeat of pair 0's baseline."""
    out: list[RunRecord] = []

    def add(result: ArmResult, repeat: int, role: str) -> None:
        seeded = replace(CONFIG, training=replace(CONFIG.training, seed=42 + repeat))
        job = RunJob(len(out) + 1, result.arm, repeat, seeded, role)
        out.append(RunRecord(job, result, 0, ("cp1252", "ascii")[len(out) % 2], 1.0))

    for i, (b, o) in enumerate(pairs):
        for r in (b, o) if i % 2 == 0 else (o, b):
            add(r, i, "pair")
    if aa == "copy":
        aa = arm(time_s=pairs[0][0].wall_time_s * 1.01, final=pairs[0][0].val_loss)
    if aa is not None:
        add(aa, 0, "aa")
    return out


def verdict_of(recs):
    rows = judge(measure(CONFIG, recs, []), CRITERIA_CONFIG)
    return verdict(rows), {r.id for r in rows if not r.passed}, {r.id: r for r in rows}


def good_pairs(opt_final=(4.01, 4.02, 4.0), opt_val=None):
    base = [arm(time_s=t, final=f) for t, f in ((100, 4.0), (102, 4.02), (98, 3.99))]
    opt_val = opt_val or opt_final
    opt = [
        arm("optimized", time_s=t, final=f, val=v)
        for t, f, v in zip((50, 52, 49), opt_final, opt_val, strict=True)
    ]
    return list(zip(base, opt, strict=True))


@pytest.fixture
def stub_bench(monkeypatch):
    """build_comparison's bench figures without generating the real bench (not the point)."""
    bench = {
        "description": "synthetic",
        "unigram_loss": UNIGRAM,
        "bayes_floor": FLOOR,
        "floor_per_position": [FLOOR] * 4,
        "unigram_per_position": [UNIGRAM] * 4,
        "num_topics": 1,
        "topic_boost": 1.0,
        "branching": 16,
        "zipf_exponent": 1.1,
    }
    monkeypatch.setattr(data, "bench_reference", lambda config: bench, raising=False)


# --- the verdicts -------------------------------------------------------------------------


def test_criteria_ids_in_report_order():
    assert CRITERIA == (
        "baseline_learned",
        "matched_loss_speedup",
        "loss_match",
        "speedup",
        "throughput",
        "no_divergence",
        "memory",
        "encoding_safety",
        "optimizations_effective",
        "measurement_reliable",
        "machine_quiet",
    )


def test_control_is_go():
    v, failed, rows = verdict_of(records(good_pairs()))
    assert (v, failed) == (GO, set())
    # Both arms learn alike; the optimized one gets to the target in about half the time.
    assert rows["matched_loss_speedup"].measured == pytest.approx(50.0, abs=2.0)
    assert rows["baseline_learned"].measured == pytest.approx(100 * (5 - 4.02) / 3, rel=1e-9)


def test_learning_less_shortcut_shows_as_less_speedup_and_fails_quality():
    """Twice as fast per step, but it ends 0.3 nats worse: the baseline reaches that loss at
    about 65 s, so the speedup at equal quality is about 23%, not the 50% end to end."""
    pairs = good_pairs(opt_final=(4.3, 4.32, 4.29))
    v, failed, rows = verdict_of(records(pairs))
    assert v == INVESTIGATE
    assert failed == {"matched_loss_speedup", "loss_match"}  # the end-to-end speedup alone says GO
    assert 15.0 < rows["matched_loss_speedup"].measured < 30.0
    assert rows["speedup"].measured == pytest.approx(50.0, abs=1.0)
    m = measure(CONFIG, records(pairs), [])
    for p in m.matched_loss.pairs:
        assert p.loss == p.optimized_final > p.baseline_final  # L*: the worse final
        assert math.isfinite(p.baseline_s) and math.isfinite(p.optimized_s)  # both reach it


def test_a_small_loss_cost_moves_the_speedup_smoothly():
    """No cliff: 0.003 nats more or less changes the speedup at equal quality by a little."""

    def speedup(shift):
        finals = tuple(f + shift for f in (4.03, 4.05, 4.02))
        m = measure(CONFIG, records(good_pairs(opt_final=finals)), [])
        return m.matched_loss.estimate.point

    low, mid, high = speedup(-0.003), speedup(0.0), speedup(0.003)
    assert low > mid > high
    assert high - low < 0.02  # under 2 points for a 0.006-nat swing


def test_a_stack_that_learns_more_passes_quality():
    pairs = good_pairs(opt_final=(3.9, 3.92, 3.89))
    v, failed, rows = verdict_of(records(pairs))
    assert (v, failed) == (GO, set())
    assert rows["loss_match"].measured == pytest.approx(-0.1, abs=1e-9)


def test_a_machine_stall_does_not_decide_the_verdict():
    """A 6 s stall in one baseline step: taken off its clock, so every estimate is the clean
    run's; the stall is reported with its size."""
    clean = measure(CONFIG, records(good_pairs()), [])
    pairs = good_pairs()
    stalled = pairs[1][0]
    stalled.step_stalls = [0.0] * STEPS
    stalled.step_times[7] += 6.0
    stalled.step_stalls[7] = 6.0
    stalled.train_time_s += 6.0
    m = measure(CONFIG, records(pairs), [])
    for key in ("matched_loss", "speedup", "throughput"):
        a, b = clean.to_dict()[key], m.to_dict()[key]
        assert a["point"] == pytest.approx(b["point"], abs=1e-12), key
        assert (a["low"], a["high"]) == pytest.approx((b["low"], b["high"]), abs=1e-12), key
    every = stalls(records(pairs))  # every run's, written once for every job
    run = next(r for r in every.runs if r.stall_s > 0)
    assert (run.arm, run.stall_s, run.stalled_steps, run.largest_s) == ("baseline", 6.0, 1, 6.0)
    assert every.total_s == 6.0 and "held off the CPU" in every.rule


def test_baseline_that_did_not_learn_is_debug():
    pairs = [
        (arm(time_s=t, start=5.1, final=4.9), arm("optimized", time_s=t / 2, start=5.1, final=4.9))
        for t in (100, 102, 98)
    ]
    v, failed, rows = verdict_of(records(pairs))
    assert v == DEBUG and "baseline_learned" in failed
    row = rows["baseline_learned"]
    assert row.measured == pytest.approx(100 * (5.0 - 4.9) / 3, rel=1e-9)
    assert "smallest loss drop 0.200 nats" in row.summary


def test_one_seed_that_did_not_learn_fails_the_baseline():
    pairs = good_pairs()
    pairs[1] = (arm(time_s=102, start=4.6, final=4.02), pairs[1][1])  # drop 0.58 < 1.0
    v, failed, rows = verdict_of(records(pairs))
    assert v == DEBUG and failed == {"baseline_learned"}


def test_aa_is_never_go():
    """Optimized = baseline times and curves (with timing jitter): no speed criterion passes."""
    pairs = [
        (arm(time_s=tb), arm("optimized", time_s=to))
        for tb, to in ((100, 101), (102, 99), (98, 100.5))
    ]
    v, failed, _ = verdict_of(records(pairs))
    assert v == INVESTIGATE
    assert failed == {"matched_loss_speedup", "speedup", "throughput"}


def test_aa_with_nothing_enabled_is_debug():
    pairs = [(arm(time_s=t), arm("optimized", time_s=t, evidence=[])) for t in (100, 102, 98)]
    v, failed, _ = verdict_of(records(pairs))
    assert v == DEBUG and {"optimizations_effective", "matched_loss_speedup", "speedup"} <= failed


def test_nan_val_loss_is_debug_not_a_crash(stub_bench):
    pairs = good_pairs()
    bad = arm("optimized", time_s=52, final=4.02, val=math.nan)
    bad.curve[-1]["val_loss"] = math.nan
    pairs[1] = (pairs[1][0], bad)
    recs = records(pairs)
    m = measure(CONFIG, recs, [])
    v, failed, rows = verdict_of(recs)
    assert v == DEBUG and "no_divergence" in failed
    assert "validation loss is nan" in rows["no_divergence"].detail
    assert m.speedup.n == 2  # the broken pair is left out of the estimates, not counted
    json.dumps(m.to_dict(), allow_nan=False)
    stage3a.print_arm(Console(io.StringIO()), "optimized", bad)


def test_diverged_run_with_nulls_is_debug_not_a_crash(stub_bench):
    """A diverged run as it comes back from JSON: NaN as None, a curve that stops early."""
    pairs = good_pairs()
    bad = arm("optimized", time_s=52)
    bad.diverged, bad.divergence, bad.val_loss = True, "loss is nan at step 7", None
    bad.epochs[-1].mean_loss = None
    bad.curve = bad.curve[:4] + [{**bad.curve[4], "val_loss": None}]
    pairs[0] = (pairs[0][0], bad)
    recs = records(pairs)
    v, failed, rows = verdict_of(recs)
    assert v == DEBUG and "no_divergence" in failed
    assert "diverged: loss is nan at step 7" in rows["no_divergence"].detail
    m = measure(CONFIG, recs, [])
    c = stage3a.build_comparison(
        CONFIG, "x.yaml", torch.device("cpu"), recs, m, judge(m, CRITERIA_CONFIG), v, "test"
    )
    json.dumps(c["measurements"], allow_nan=False)
    stage3a.print_arm(Console(io.StringIO()), "optimized", bad)
    stage3a.print_comparison(Console(io.StringIO()), Comparison.from_dict(c))


def test_training_loss_that_did_not_fall_is_debug_but_still_measured():
    pairs = good_pairs()
    flat = pairs[1][1]
    flat.epochs[-1].mean_loss = flat.epochs[0].mean_loss
    recs = records(pairs)
    v, failed, rows = verdict_of(recs)
    assert (v, failed) == (DEBUG, {"no_divergence"})
    assert "loss did not fall" in rows["no_divergence"].detail
    assert measure(CONFIG, recs, []).speedup.n == 3  # its numbers stand


def test_all_val_losses_nan_is_debug_with_empty_estimates():
    pairs = [(arm(time_s=t), arm("optimized", time_s=t / 2, val=math.nan)) for t in (100, 102)]
    v, failed, rows = verdict_of(records(pairs))
    assert v == DEBUG
    assert {"no_divergence", "matched_loss_speedup", "loss_match", "speedup"} <= failed
    assert rows["loss_match"].measured is None


@pytest.mark.parametrize("which", [0, 1], ids=["baseline", "optimized"])
def test_zero_training_time_is_debug_not_a_crash(stub_bench, which):
    pairs = [list(p) for p in good_pairs()]
    zero = arm(("baseline", "optimized")[which], time_s=0.0, final=4.02, setup_s=0.0)
    pairs[2][which] = zero
    recs = records(pairs)
    v, failed, rows = verdict_of(recs)
    assert v == DEBUG and "no_divergence" in failed
    assert "training time is 0.0 s" in rows["no_divergence"].detail
    m = measure(CONFIG, recs, [])
    assert m.speedup.n == 2
    c = stage3a.build_comparison(
        CONFIG, "x.yaml", torch.device("cpu"), recs, m, judge(m, CRITERIA_CONFIG), v, "test"
    )
    stage3a.print_arm(Console(io.StringIO()), zero.arm, zero)
    stage3a.print_comparison(Console(io.StringIO()), Comparison.from_dict(c))


def test_loss_equivalent_by_point_but_ci_too_wide_fails_loss_match():
    # Same curves (so time to target passes), final validation losses 4.09, 3.94, 4.06.
    base_val = (4.0, 4.02, 3.99)
    deltas = (0.09, -0.08, 0.07)
    pairs = good_pairs(
        opt_final=base_val, opt_val=[b + d for b, d in zip(base_val, deltas, strict=True)]
    )
    v, failed, rows = verdict_of(records(pairs))
    row = rows["loss_match"]
    assert abs(row.measured) < CRITERIA_CONFIG.max_loss_delta  # the point alone would pass
    assert row.ci_low < -0.1 < 0.1 < row.ci_high
    assert (v, failed) == (INVESTIGATE, {"loss_match"})
    assert "the CI is not" in row.detail


def test_loss_match_shows_the_baseline_spread():
    m = measure(CONFIG, records(good_pairs()), [])
    assert m.loss_delta.baseline_spread == pytest.approx(0.0152753, abs=1e-7)  # stdev of finals
    assert m.loss_delta.equivalent and m.loss_delta.non_inferior
    row = {r.id: r for r in judge(m, CRITERIA_CONFIG)}["loss_match"]
    assert "spread (stdev) 0.0153" in row.detail


# --- A/A noise ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_pairs", [3, 6])
def test_aa_noise_comes_from_the_aa_run_and_not_the_number_of_pairs(n_pairs):
    # Baselines far apart from each other: a max over consecutive baselines would be 30%+.
    times = (100, 130, 80, 120, 90, 110)[:n_pairs]
    pairs = [(arm(time_s=t), arm("optimized", time_s=t / 2)) for t in times]
    m = measure(CONFIG, records(pairs, aa=arm(time_s=103)), [])
    assert m.noise.aa == pytest.approx(0.03, abs=1e-12)
    assert (m.noise.baseline_s, m.noise.aa_s) == pytest.approx((100, 103), rel=1e-12)
    _, failed, _ = verdict_of(records(pairs, aa=arm(time_s=103)))
    assert "measurement_reliable" not in failed


def test_a_shortened_aa_run_is_compared_with_the_same_prefix_of_its_baseline():
    # The plan stops the A/A run early: its time must be set against the baseline's setup plus
    # the same number of steps, not the baseline's whole run (which would read as a speedup).
    pairs = good_pairs()
    base0 = pairs[0][0]
    aa = arm(time_s=base0.wall_time_s)
    keep = len(aa.step_times) * 3 // 10
    aa.step_times = aa.step_times[:keep]
    aa.train_time_s = sum(aa.step_times)
    m = measure(CONFIG, records(pairs, aa=aa), [])
    prefix = base0.setup_time_s + sum(base0.step_times[:keep])
    assert m.noise.baseline_s == pytest.approx(prefix)
    assert m.noise.aa == pytest.approx(0.0, abs=1e-12)


def test_noisy_aa_fails_measurement_reliable():
    v, failed, rows = verdict_of(records(good_pairs(), aa=arm(time_s=120)))
    assert (v, failed) == (INVESTIGATE, {"measurement_reliable"})
    assert rows["measurement_reliable"].measured == pytest.approx(20.0, abs=1e-9)


def test_no_aa_run_is_not_reliable():
    v, failed, rows = verdict_of(records(good_pairs(), aa=None))
    assert "measurement_reliable" in failed and rows["measurement_reliable"].measured is None


# --- one text everywhere ------------------------------------------------------------------


def test_summary_is_the_same_text_in_console_and_pytest(stub_bench):
    recs = records(good_pairs(opt_final=(4.3, 4.32, 4.29)))  # some rows fail, some pass
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    c = stage3a.build_comparison(
        CONFIG, "x.yaml", torch.device("cpu"), recs, m, rows, verdict(rows), "test"
    )
    out = io.StringIO()
    stage3a.print_verdict(Console(out), Comparison.from_dict(c))
    printed = out.getvalue().splitlines()
    for row in rows:
        assert row.message().startswith(row.summary)  # what validation/ asserts with
        assert row.to_dict()["summary"] == row.summary  # what the report renders
        assert any(line.endswith(row.summary) for line in printed), row.summary
    learned = next(r for r in rows if r.id == "baseline_learned")
    assert learned.summary.startswith("Baseline learned: 32.67% context learned")


def test_comparison_has_the_new_fields_and_validates(stub_bench, tmp_path):
    recs = records(good_pairs())
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    c = stage3a.build_comparison(
        CONFIG, "x.yaml", torch.device("cpu"), recs, m, rows, verdict(rows), "test"
    )
    assert c["schema_version"] == SCHEMA_VERSION
    assert c["bench"]["description"] == "synthetic"
    assert (c["bayes_floor"], c["unigram_loss"]) == (FLOOR, UNIGRAM)
    assert c["measurements"] == m.to_dict()
    assert "noise" not in c and "confidence_intervals" not in c  # each value once (schema 4.0)
    assert c["measurements"]["noise"] == m.noise.to_dict()
    assert c["stalls"]["runs"] and "stalls" not in c["measurements"]
    assert c["comparison"]["loss_equivalent"] is True
    assert c["comparison"]["loss_non_inferior"] is True
    assert c["verdict"]["reasons"] == []
    assert c["comparison"]["matched_loss_speedup_percent"] == pytest.approx(
        100 * m.matched_loss.estimate.point
    )
    assert c["baseline"]["clock_s"] == c["baseline"]["total_time"]  # the seed's name for it
    assert c["baseline"]["runs"] == 3  # the A/A repeat is not one of the baseline's pairs
    assert set(m.to_dict()) == {
        "matched_loss",
        "speedup",
        "throughput",
        "loss_delta",
        "learning",
        "divergence",
        "memory",
        "encoding",
        "no_effect",
        "noise",
        "wall_speedup",
        "wall_gap",
        "contamination",
        "clock",
    }
    write_json_atomic(c, tmp_path / "comparison.json")
    written = json.loads((tmp_path / "comparison.json").read_text(encoding="utf-8"))
    jsonschema.validate(written, load_schema())


def test_console_shows_the_headline_learning_and_matched_losses(stub_bench):
    recs = records(good_pairs(opt_final=(4.3, 4.32, 4.29)))
    m = measure(CONFIG, recs, [])
    rows = judge(m, CRITERIA_CONFIG)
    c = stage3a.build_comparison(
        CONFIG, "x.yaml", torch.device("cpu"), recs, m, rows, verdict(rows), "test"
    )
    out = io.StringIO()
    stage3a.print_comparison(Console(out), Comparison.from_dict(c))
    stage3a.print_verdict(Console(out), Comparison.from_dict(c))
    text = out.getvalue()
    assert "Speedup at equal quality (time to matched loss): " in text
    assert "context learned 32.7% (unigram 5.0000, Bayes floor 2.0000)" in text
    assert "Seed 42: matched loss L* 4.3000 (finals 4.0000 / 4.3000), reached in " in text
    assert "Machine stalls taken off the clock: none seen" in text
    assert "why: Validation loss non-inferior: " in text
    assert c["verdict"]["reasons"][0].startswith("Speedup at equal quality")


def test_scenario_uses_the_speedup_at_equal_quality():
    assert scenario(40.0, 0.01) == "optimistic"
    assert scenario(22.0, 0.07) == "conservative"
    assert scenario(None, 0.0) == "worst-case"
    assert scenario(-math.inf, 0.0) == "worst-case"
