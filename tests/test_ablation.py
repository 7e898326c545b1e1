"""ryot/judge/ablation.py: each optimization alone against the baseline."""

from __future__ import annotations

import pytest

from ryot.judge.ablation import ablation
from ryot.judge.runs import RunJob, RunRecord
from tests.test_criteria import CONFIG, arm, good_pairs, records


def test_each_ablation_arm_against_the_median_baseline_and_pair_1s_loss():
    recs = records(good_pairs())  # baselines of 100, 102 and 98 s; pair 1's loss 4.0
    alone = arm("kernel_only", time_s=80.0, final=4.05)
    recs.append(RunRecord(RunJob(len(recs) + 1, "kernel_only", 0, CONFIG, "ablation"), alone,
                          0, "utf-8", 1.0))  # fmt: skip
    table = ablation(recs).to_dict()
    assert list(table) == ["kernel_only"]
    row = table["kernel_only"]
    assert row["total_time"] == 80.0 and row["speedup_percent"] == pytest.approx(20.0)
    assert row["val_loss"] == 4.05 and row["loss_delta"] == pytest.approx(0.05)
    assert row["throughput"] == pytest.approx(20 * 2048 / 72.0)  # tokens per second of steps


def test_no_clean_baseline_no_table():
    recs = records(good_pairs())
    for r in recs:
        r.contamination = "contended"
    recs.append(RunRecord(RunJob(9, "kernel_only", 0, CONFIG, "ablation"), arm("kernel_only"),
                          0, "utf-8", 1.0))  # fmt: skip
    assert ablation(recs).to_dict() == {}
