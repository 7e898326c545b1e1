"""ryot/comparison/rules.py: which runs the judge reads, which run stands for an arm, and the
numbers the judge writes and a reader of an older file derives alike, with exact numbers."""

from __future__ import annotations

import math

from ryot.comparison.rules import (
    CHANGE_METRICS,
    RunShape,
    break_even_steps,
    change,
    changes,
    difference,
    judged_attempts,
    last_run,
    median,
    median_time,
    pair_speedup,
    stalled_steps,
    step_time_summary,
    steps_at,
    total,
)


def run(index, arm, role="pair", repeat=0, attempt=0, clean=True, result=True) -> RunShape:
    return RunShape(index, arm, role, repeat, attempt, clean, role not in ("warmup", "aa"), result)


def paired_job() -> list[RunShape]:
    """The committed examples' order: warm-up, A/A, then pairs B O, O B, B O."""
    return [
        run(1, "baseline", "warmup"),
        run(2, "baseline", "aa"),
        run(3, "baseline", repeat=0),
        run(4, "optimized", repeat=0),
        run(5, "optimized", repeat=1),
        run(6, "baseline", repeat=1),
        run(7, "baseline", repeat=2),
        run(8, "optimized", repeat=2),
    ]


def test_an_arm_is_its_last_judged_pair_run_never_the_aa_run():
    runs = paired_job()
    assert (last_run(runs, "baseline"), last_run(runs, "optimized")) == (7, 8)
    # The A/A run last in the order (where an older plan put it) is still not the baseline's.
    moved = [*runs[:1], *runs[2:], run(9, "baseline", "aa")]
    assert last_run(moved, "baseline") == 7


def test_a_contaminated_pair_is_judged_on_its_clean_re_run():
    runs = [
        *paired_job()[:6],
        run(7, "baseline", repeat=2, clean=False),
        run(8, "optimized", repeat=2),
        run(9, "baseline", repeat=2, attempt=1),
        run(10, "optimized", repeat=2, attempt=1),
    ]
    assert judged_attempts(runs) == {0: 0, 1: 0, 2: 1}
    assert (last_run(runs, "baseline"), last_run(runs, "optimized")) == (9, 10)


def test_past_the_re_runs_the_last_judged_pair_stands_for_the_arm():
    runs = [
        *paired_job()[:6],
        run(7, "baseline", repeat=2, clean=False),
        run(8, "optimized", repeat=2),  # clean, but its pair is not judged
    ]
    assert judged_attempts(runs) == {0: 0, 1: 0}
    assert (last_run(runs, "baseline"), last_run(runs, "optimized")) == (6, 5)


def test_without_a_judged_pair_the_last_clean_full_length_run():
    runs = [
        run(1, "baseline", "aa"),
        run(2, "baseline", clean=False),
        run(3, "optimized"),
        run(4, "optimized", "pair", 0, 1, clean=False),
        run(5, "baseline", "pair", 0, 1),
    ]
    assert judged_attempts(runs) == {}
    assert (last_run(runs, "baseline"), last_run(runs, "optimized")) == (5, 3)
    every_run_dirty = [run(1, "baseline", "aa"), run(2, "baseline", clean=False)]
    assert last_run(every_run_dirty, "baseline") == 2


def test_a_single_arm_job_and_an_ablation_arm():
    assert last_run([run(1, "optimized"), run(2, "optimized", repeat=1)], "optimized") == 2
    assert last_run([*paired_job(), run(9, "kernel_only", "ablation")], "kernel_only") == 9


def test_an_arm_without_a_full_length_result_has_no_run():
    runs = [
        run(1, "baseline", "warmup"),
        run(2, "baseline", "aa"),
        run(3, "baseline", result=False),
    ]
    assert last_run(runs, "baseline") is None
    assert last_run(runs, "optimized") is None
    crashed = [*paired_job()[:7], run(8, "optimized", repeat=2, result=False)]
    assert last_run(crashed, "optimized") == 5  # pair 3 is judged, its optimized run crashed


def test_a_pair_speedup_needs_two_times_and_a_positive_baseline():
    assert pair_speedup(50.0, 30.0) == 0.4
    assert pair_speedup(50.0, None) is None  # never reached: no finite speedup
    assert pair_speedup(0.0, 1.0) is None and pair_speedup("50", 30.0) is None


def test_medians_of_numbers_and_of_times_that_may_never_be_reached():
    assert median([3.0, None, 1.0, "x", 2.0]) == 2.0 and median([None]) is None
    assert median_time([1.0, 2.0, None]) == 2.0  # the unreached time is the largest
    assert median_time([1.0, None, None]) is None  # the median pair never got there
    assert median_time([]) is None


def test_stalls_steps_at_a_length_and_break_even():
    assert stalled_steps(0.5, [0.0, 0.25, None, 0.0]) == (2, 0.5)
    assert stalled_steps(0.0, []) == (0, 0.0)
    runs = [([0.1, 0.2, 0.3], [64, 256, 256]), ([0.4, math.nan], [256, 256])]
    assert steps_at(runs, 256) == [0.2, 0.3, 0.4] and steps_at(runs, None) == []
    assert break_even_steps(1.0, 0.3, 0.1) == 5  # 1 s / 0.2 s saved per step
    assert break_even_steps(1.0, 0.1, 0.3) is None  # the arm is slower: never
    assert break_even_steps(None, 0.3, 0.1) is None and break_even_steps(1e308, 1e-300, 0.0) is None


def test_a_change_is_positive_when_better_and_relative_to_the_baseline():
    assert change(10.0, 8.0, lower_is_better=True) == (2.0, 0.2)  # a time: less is better
    assert change(10.0, 12.5, lower_is_better=False) == (2.5, 0.25)  # a rate: more is better
    assert change(10.0, 12.5, lower_is_better=True) == (-2.5, -0.25)
    for base, opt in ((0.0, 1.0), (None, 1.0), (1.0, "x"), (math.nan, 1.0), (True, 1.0)):
        assert change(base, opt, lower_is_better=True) == (None, None)
    assert difference(4.0, 4.25) == 0.25 and difference(4.0, None) is None


def test_the_tables_changes_read_their_metrics_where_comparison_json_has_them():
    d = {
        "baseline": {"total_time": 10.0, "avg_epoch_time": 1.0, "throughput": 100.0,
                     "samples_per_s": 8.0, "peak_memory_mb": 50.0},
        "optimized": {"total_time": 6.0, "avg_epoch_time": 0.5, "throughput": 150.0,
                      "samples_per_s": 12.0, "peak_memory_mb": 60.0},
        "measurements": {"matched_loss": {"median_baseline_s": 8.0, "median_optimized_s": 4.0},
                         "clock": {"baseline_median_s": None, "optimized_median_s": 5.0}},
    }  # fmt: skip
    got = changes(d)
    assert list(got) == list(CHANGE_METRICS)
    assert got["matched_loss_s"] == {"improvement": 4.0, "relative": 0.5}
    assert got["total_time"] == {"improvement": 4.0, "relative": 0.4}
    assert got["throughput"] == {"improvement": 50.0, "relative": 0.5}
    assert got["peak_memory_mb"] == {"improvement": -10.0, "relative": -0.2}  # more memory
    assert got["clock_median_s"] == {"improvement": None, "relative": None}
    assert changes({"baseline": None, "measurements": "x"})["total_time"]["improvement"] is None


def test_totals_and_step_time_boxes_of_the_numbers_alone():
    assert total([0.5, None, 1.5, "x"]) == 2.0 and total([None]) is None and total([3, 4]) == 7
    box = step_time_summary([4.0, None, 1.0, 3.0, 2.0, math.inf])  # quartiles between steps
    assert box == {"steps": 4, "min_s": 1.0, "q1_s": 1.75, "median_s": 2.5, "q3_s": 3.25,
                   "max_s": 4.0}  # fmt: skip
    assert step_time_summary([0.2]) == {"steps": 1, "min_s": 0.2, "q1_s": 0.2, "median_s": 0.2,
                                        "q3_s": 0.2, "max_s": 0.2}  # fmt: skip
    assert step_time_summary([None, "x"]) is None
