"""ryot/comparison/rules.py: which runs the judge reads, and which run stands for an arm."""

from __future__ import annotations

from ryot.comparison.rules import RunShape, judged_attempts, last_run


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
