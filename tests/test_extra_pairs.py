"""The sequential look: one more pair while a criterion's CI holds its threshold, at most
measurement.extra_repeats, and none once the verdict is decided (ryot.experiment.stage3a)."""

from __future__ import annotations

import io
from dataclasses import replace

from ryot.console import Console
from ryot.experiment.plan import plan_runs
from ryot.experiment.runners import execute
from ryot.experiment.stage3a import _extra_pairs
from ryot.judge import criteria as crit
from ryot.judge.measurements import measure
from tests.test_clock import ScriptedRunner

ARMS = ["baseline", "optimized"]


def _config(smoke_config, extra: int):
    m = replace(smoke_config.measurement, repeats=3, extra_repeats=extra, max_contended_share=0.05)
    c = replace(smoke_config.criteria, min_speedup_percent=25.0,
                min_throughput_improvement_percent=-75.0, max_loss_delta=0.22)  # fmt: skip
    return replace(smoke_config, measurement=m, criteria=c)


def _times(optimized_by_repeat: dict[int, float]):
    """Baselines take 10 s; pair r's optimized run optimized_by_repeat[r] s."""
    return lambda n, job: 10.0 if job.arm == "baseline" else optimized_by_repeat[job.repeat]


def _run(config, times, tmp_path, ablation=False):
    out = io.StringIO()
    jobs = plan_runs(config, ARMS, 3, ablation=ablation)
    extend = _extra_pairs(config, ARMS, Console(out))
    return execute(jobs, ScriptedRunner(times), tmp_path, extend=extend), out.getvalue()


def test_an_undecided_verdict_gets_one_more_pair(smoke_config, tmp_path):
    """Speedups 20%, 40%, 30%: the CI holds 25%; a fourth pair (seed + 3, baseline first as
    pair 3 was) is run and judged, and only one, as extra_repeats allows."""
    config = _config(smoke_config, extra=1)
    records, text = _run(config, _times({0: 8.0, 1: 6.0, 2: 7.0, 3: 7.0}), tmp_path)
    pairs = [r.job for r in records if r.job.role == "pair"]
    assert [(j.repeat, j.arm) for j in pairs[-2:]] == [(3, "optimized"), (3, "baseline")]
    assert {j.config.training.seed for j in pairs[-2:]} == {config.training.seed + 3}
    assert [r.job.index for r in records] == list(range(1, len(records) + 1))
    assert "adding pair 4 (1 of measurement.extra_repeats 1): undecided after 3 pairs" in text
    assert measure(config, records, []).matched_loss.estimate.n == 4


def test_no_pair_is_added_beyond_the_budget_or_to_a_decided_verdict(smoke_config, tmp_path):
    config = _config(smoke_config, extra=2)
    # still undecided after the first extra pair: a second one, then no more
    records, _ = _run(config, _times({0: 8.0, 1: 6.0, 2: 7.0, 3: 8.0, 4: 6.0}), tmp_path)
    assert max(r.job.repeat for r in records) == 4
    # clearly faster (50% each pair): decided GO on the first look
    records, text = _run(config, _times(dict.fromkeys(range(5), 5.0)), tmp_path)
    assert max(r.job.repeat for r in records) == 2 and "adding pair" not in text
    # no faster at all: decided on the first look too
    records, _ = _run(config, _times(dict.fromkeys(range(5), 10.0)), tmp_path)
    assert max(r.job.repeat for r in records) == 2


def test_a_fixed_plan_adds_nothing(smoke_config, tmp_path):
    config = _config(smoke_config, extra=0)
    records, _ = _run(config, _times({0: 8.0, 1: 6.0, 2: 7.0}), tmp_path)
    assert max(r.job.repeat for r in records) == 2


def test_the_extra_pair_runs_before_the_ablation_arms(smoke_config, tmp_path):
    config = _config(smoke_config, extra=1)
    times = _times({0: 8.0, 1: 6.0, 2: 7.0, 3: 7.0})
    records, _ = _run(config, lambda n, job: 9.0 if job.role == "ablation" else times(n, job),
                      tmp_path, ablation=True)  # fmt: skip
    roles = [r.job.role for r in records]
    assert roles.index("ablation") > max(i for i, role in enumerate(roles) if role == "pair")


def test_undecided_names_the_open_criteria_and_nothing_when_too_busy(smoke_config, tmp_path):
    config = _config(smoke_config, extra=0)
    records, _ = _run(config, _times({0: 8.0, 1: 6.0, 2: 7.0}), tmp_path)
    m = measure(config, records, [])
    assert "matched_loss_speedup" in crit.undecided(m, config.criteria)
    busy = replace(m, contamination=replace(m.contamination, busy=("pair 1",)))
    assert crit.undecided(busy, config.criteria) == []


def test_no_pair_is_added_when_another_criterion_failed_for_good(smoke_config, tmp_path):
    """The speed is undecided, but the peak memory is over its bound (no CI can move): no
    pair can turn the verdict, so none is run (the AMD without AVX512's job: its speed at
    equal quality far below the threshold, its end-to-end speedup's CI holding it)."""
    config = _config(smoke_config, extra=1)
    config = replace(config, criteria=replace(config.criteria, max_peak_memory_mb=-1.0))
    records, text = _run(config, _times({0: 8.0, 1: 6.0, 2: 7.0, 3: 7.0}), tmp_path)
    assert max(r.job.repeat for r in records) == 2 and "adding pair" not in text
    m = measure(config, records, [])
    failed = {r.id for r in crit.judge(m, config.criteria) if not r.passed}
    assert {"matched_loss_speedup", "memory"} <= failed
