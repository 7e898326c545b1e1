"""ryot/comparison: the typed read model of comparison.json and the upgrade of older files.

What the judge writes reads back whole (to_dict of from_dict is the file again, plus what the
upgrade derives for a file that lacks it), every committed example of every schema loads, and a
malformed file reads as None where it is malformed, never as a traceback."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from pathlib import Path

import jsonschema
import pytest
import torch

from ryot.comparison import upgrade
from ryot.comparison.measurements import Stalls
from ryot.comparison.model import Comparison
from ryot.judge.criteria import judge, verdict
from ryot.judge.measurements import measure
from ryot.report import schema
from tests.conftest import ROOT
from tests.test_criteria import CONFIG, CRITERIA_CONFIG, good_pairs, records, stub_bench  # noqa: F401
from tests.test_report import _mutated, _paths, synthetic_comparison

EXAMPLES = sorted((ROOT / "reports" / "examples").glob("*/comparison.json"))
SCHEMA_1 = ROOT / "tests" / "data" / "schema-1.0-comparison.json"
SCHEMA_2 = ROOT / "reports" / "examples" / "cpu-2core-epyc-no-avx512" / "comparison.json"
XEON = ROOT / "reports" / "examples" / "cpu-2core-xeon-amx-bf16"

# What reading derives for a file written before the judge recorded it (ryot.comparison.upgrade)
DERIVED = {
    "last_runs", "stalls", "compile_break_even", "clock", "speedup", "median_baseline_s",
    "median_optimized_s", "clock_s", "changes", "final_loss_delta", "step_time_summary",
    "run_queue_wait_s", "involuntary_switches", "workload", "gain_over_unigram",
}  # fmt: skip


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def as_4_0(d: dict) -> dict:
    """An older file's content under schema 4.0's names, without what 4.0 writes once: this
    test's own statement of the renames, held against the upgrade's."""
    d = copy.deepcopy(d)
    m = d.get("measurements") or {}
    if "time_to_target" in m:
        m["matched_loss"] = m.pop("time_to_target")
    m.pop("stalls", None)  # the top-level stalls, every job's
    seed = d.get("comparison") or {}
    if "time_to_target_speedup_percent" in seed:
        seed["matched_loss_speedup_percent"] = seed.pop("time_to_target_speedup_percent")
    d.pop("confidence_intervals", None)  # measurements' estimates again
    d.pop("noise", None)  # measurements.noise again
    for row in d["criteria"]:
        if row["id"] == "time_to_target":
            row["id"] = "matched_loss_speedup"
    if d.get("tests"):
        old, new = "[time_to_target]", "[matched_loss_speedup]"
        d["tests"] = {k.replace(old, new): v for k, v in d["tests"].items()}
    for run in d["runs"]:
        if run.get("result") and "total_time_s" in run["result"]:
            run["result"]["wall_time_s"] = run["result"].pop("total_time_s")
    return d


def assert_kept(original, back, path=(), dropped=frozenset(), derived=frozenset(DERIVED)):
    """Everything of `original` is in `back`, equal (a key in `dropped` excepted: one the model
    reads as None on purpose); a key only `back` has is derived, or null or empty."""
    if isinstance(original, dict):
        assert isinstance(back, dict), path
        for k, v in original.items():
            if k not in dropped:
                assert k in back, (*path, k)
                assert_kept(v, back[k], (*path, k), dropped, derived)
        for k in back.keys() - original.keys():
            assert k in derived or back[k] in (None, [], {}), ((*path, k), back[k])
    elif isinstance(original, list):
        assert isinstance(back, list) and len(back) == len(original), path
        for i, (a, b) in enumerate(zip(original, back, strict=True)):
            assert_kept(a, b, (*path, i), dropped, derived)
    else:
        assert original == back, (path, original, back)


def validator(version: str | None = None) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema.load_schema(version))


def built(pairs=None, paired=True) -> dict:
    """build_comparison of a synthetic job, as comparison.json holds it."""
    from ryot.experiment import stage3a

    recs = records(pairs or good_pairs())
    m = measure(CONFIG, recs, []) if paired else None
    rows = judge(m, CRITERIA_CONFIG) if paired else []
    status = verdict(rows) if paired else None
    c = stage3a.build_comparison(CONFIG, "x.yaml", torch.device("cpu"), recs, m, rows, status, "t")
    return json.loads(json.dumps(c, allow_nan=False))


# --- what the judge writes reads back whole -------------------------------------------------


@pytest.mark.usefixtures("stub_bench")
@pytest.mark.parametrize("paired", [True, False], ids=["paired", "single-arm"])
def test_build_comparison_round_trips_and_follows_the_schema(paired):
    d = built(paired=paired)
    validator().validate(d)
    c = Comparison.from_dict(d)
    back = c.to_dict()
    assert_kept(d, back)
    validator().validate(back)
    assert Comparison.from_dict(back) == c  # reading what it wrote changes nothing
    assert (c.at_target, c.verdict is not None) == (False, paired)
    if paired:
        assert c.noise is not None and c.noise.per_step
        pairs = c.measurements.matched_loss.pairs
        assert [p.speedup for p in pairs] == [
            pytest.approx(1 - p.optimized_s / p.baseline_s) for p in pairs
        ]


# What the judge writes and reading derives alike for a file without it (the stalls' runs and
# rule excepted: a file before them has no rule to read, and labels its runs its own way).
JUDGED = (
    ("last_runs",), ("compile_break_even",), ("step_time_summary",), ("measurements", "clock"),
    ("comparison", "changes"), ("comparison", "final_loss_delta"), ("stalls", "run_queue_wait_s"),
    ("stalls", "involuntary_switches"), ("measurements", "matched_loss", "median_baseline_s"),
    ("measurements", "matched_loss", "median_optimized_s"),
)  # fmt: skip


@pytest.mark.usefixtures("stub_bench")
def test_reading_derives_what_the_judge_writes():
    """A file without the judge's derived numbers reads the same as the judge's own: reading
    applies the judge's rules (ryot.comparison.rules), never a formula of its own."""
    d = built()
    stripped = copy.deepcopy(d)
    for *where, key in JUDGED:
        del functools.reduce(lambda x, k: x[k], where, stripped)[key]
    for p in stripped["measurements"]["matched_loss"]["pairs"]:
        del p["speedup"]
    assert Comparison.from_dict(stripped) == Comparison.from_dict(d)


def test_the_synthetic_contract_round_trips():
    d = json.loads(json.dumps(synthetic_comparison()))
    back = Comparison.from_dict(d).to_dict()
    assert_kept(d, back)
    validator().validate(back)


def test_the_model_is_frozen_and_reading_never_changes_the_dict():
    d = json.loads(json.dumps(synthetic_comparison()))
    original = copy.deepcopy(d)
    c = Comparison.from_dict(d)
    assert d == original
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.verdict.status = "GO"  # type: ignore[misc]
    c.config.raw["name"] = "changed"  # the model's own copy
    assert d["config"]["name"] == "synthetic"


def test_what_is_not_a_comparison_is_one_line_value_error():
    d = synthetic_comparison()
    for bad, words in (
        ([], "not a comparison (expected a JSON object)"),
        ({**d, "schema_version": "9.9"}, "schema_version '9.9' is not one this ryot reads"),
        ({k: v for k, v in d.items() if k != "schema_version"}, "schema_version None"),
        ({k: v for k, v in d.items() if k not in ("runs", "config")}, "missing config, runs"),
    ):
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            Comparison.from_dict(bad)
    # the keys schema 2.0 added are not required: a schema-1.0 file has none of them
    assert not set(upgrade.ADDED_IN_2_0) & set(upgrade.REQUIRED_KEYS)


def test_the_required_keys_are_the_schemas_and_the_version_is_one():
    required = schema.load_schema()["required"]
    added = upgrade.ADDED_IN_2_0 + upgrade.WRITTEN_SINCE_3_0 + upgrade.ADDED_IN_4_1
    assert list(upgrade.REQUIRED_KEYS) == [k for k in required if k not in added]
    assert upgrade.SCHEMA_VERSION == schema.SCHEMA_VERSION  # one home: the model's
    # a new schema version comes with its upgrade: the shipped schema is the model's version
    assert schema.load_schema()["properties"]["schema_version"]["const"] == upgrade.SCHEMA_VERSION
    assert set(upgrade.READABLE_SCHEMAS) == {"1.0", "2.0", "3.0", "4.0", schema.SCHEMA_VERSION}


# --- every committed example, every schema --------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_committed_example_loads_whole(path):
    d = load(path)
    c = Comparison.from_dict(d)
    # judged at one target (schema 2.0): each pair's loss is the target
    assert_kept(as_4_0(d), c.to_dict(), derived={*DERIVED, *(["loss"] if c.at_target else [])})
    assert c.schema_version == d["schema_version"]
    for arm in ("baseline", "optimized"):  # the run that stands for an arm: a full-length pair
        run = c.last_run(arm)
        assert run is not None and run.role == "pair" and run.arm == arm
        assert len(run.result.epochs) == d["config"]["training"]["num_epochs"]  # full length
    assert [r.index for r in c.pair_runs("baseline")] == [
        r["index"] for r in d["runs"] if r["arm"] == "baseline" and r["role"] == "pair"
    ]


def test_an_example_arm_is_the_run_monitor_log_shows_not_the_aa_run():
    """issue 22: the xeon example's BASELINE TRAINING table was run 7, the 1-epoch A/A run."""
    c = Comparison.from_dict(load(XEON / "comparison.json"))
    aa = next(r for r in c.runs if r.role == "aa")
    base = c.last_run("baseline")
    assert (aa.index, base.index) == (7, 5)
    assert len(base.result.epochs) == 10 and len(aa.result.epochs) == 1
    log = (XEON / "monitor.log").read_text(encoding="utf-8")
    total = f"Total time: {base.result.wall_time_s:.2f} seconds"
    assert total in log and f"{aa.result.wall_time_s:.2f} seconds" not in log


def test_schema_3_names_read_as_schema_4s_and_each_value_once():
    """A 3.0 file's time_to_target, its criterion and test, total_time_s and the duplicated
    blocks read under 4.0's names, from wherever the file has them."""
    d = load(XEON / "comparison.json")
    assert d["schema_version"] == "3.0"
    c = Comparison.from_dict(d)
    m, old = c.measurements, d["measurements"]
    assert m.matched_loss.point == old["time_to_target"]["point"]
    pairs = [{**p, "speedup": None} for p in old["time_to_target"]["pairs"]]  # derived
    assert [{**p, "speedup": None} for p in m.matched_loss.to_dict()["pairs"]] == pairs
    seed = d["comparison"]["time_to_target_speedup_percent"]
    assert c.comparison.matched_loss_speedup_percent == seed
    (row,) = [r for r in c.criteria if r.id == "matched_loss_speedup"]
    assert row.summary == next(r for r in d["criteria"] if r["id"] == "time_to_target")["summary"]
    assert c.tests["validation/test_stage3a.py::test_criterion[matched_loss_speedup]"] == "passed"
    assert not [k for k in c.tests if "time_to_target" in k]
    walls = [r["result"]["total_time_s"] for r in d["runs"]]
    assert [r.result.wall_time_s for r in c.runs] == walls
    for arm in ("baseline", "optimized"):  # 3.0's total time is the stack clock
        assert getattr(c, arm).clock_s == getattr(c, arm).total_time == d[arm]["total_time"]
    assert "stalls" not in d  # written for a paired job alone, in measurements
    assert c.stalls.runs == Stalls.from_dict(old["stalls"]).runs
    assert c.noise.to_dict() == d["noise"] == old["noise"]
    back = c.to_dict()
    assert "confidence_intervals" not in back and "noise" not in back
    assert "stalls" not in back["measurements"] and "time_to_target" not in back["measurements"]


def test_a_schema_2_file_reads_as_judged_at_one_target():
    d = load(SCHEMA_2)
    c = Comparison.from_dict(d)
    m = c.measurements
    assert c.at_target and not c.noise.per_step and not m.noise.per_step
    assert m.target is not None and m.target.loss == d["measurements"]["target"]["loss"]
    pairs = m.matched_loss.pairs
    assert {p.loss for p in pairs} == {m.target.loss}  # each pair judged at the one target
    missed = [p for p in pairs if p.optimized_s is None]
    assert len(missed) == 1 and missed[0].speedup is None  # never reached: no finite speedup
    assert m.matched_loss.median_optimized_s is not None  # 2 of 3 reached it
    assert m.clock.baseline_median_s is None and c.stalls is None  # before stall accounting
    assert c.baseline.clock_s is None and c.baseline.total_time == d["baseline"]["total_time"]
    assert all(r.result.clock_s is None and r.result.stall_s is None for r in c.runs)
    assert c.environment.cpu_flags is None  # not recorded (!= none found)
    assert m.loss_delta.non_inferior is None and m.loss_delta.equivalent is True
    assert Comparison.from_dict(c.to_dict()) == c


def test_a_schema_1_file_reads_its_estimates_and_nothing_it_did_not_measure():
    d = load(SCHEMA_1)
    c = Comparison.from_dict(d)
    assert c.at_target and not c.noise.per_step and c.bench is None
    ci = d["confidence_intervals"]["speedup"]
    speedup = c.measurements.speedup
    assert (speedup.low, speedup.high, speedup.n) == (ci["low"], ci["high"], ci["n"])
    assert speedup.point is None  # its median is not the geometric mean: not today's point
    assert c.measurements.matched_loss is None and c.measurements.learning is None
    assert c.measurements.loss_delta.margin == d["config"]["criteria"]["max_loss_delta"]
    assert c.bayes_floor is None  # entropy_floor was not the Bayes floor
    assert all(r.summary is None for r in c.criteria) and c.verdict.reasons == ()
    assert c.comparison.matched_loss_speedup_percent is None
    back = c.to_dict()
    assert_kept(as_4_0(d), back, dropped={"median", "entropy_floor", "baseline_times"},
                derived={*DERIVED, "measurements"})  # fmt: skip
    assert Comparison.from_dict(back) == c


# --- a malformed file: None where it is malformed, never a traceback -------------------------


def test_null_missing_or_mistyped_values_read_as_none_never_raise():
    c = json.loads(json.dumps(synthetic_comparison()))
    c["runs"] = c["runs"][:2]
    paths = [p for p in _paths(c) if p[0] not in upgrade.REQUIRED_KEYS or len(p) > 1]
    paths += [p for p in _paths(c["runs"][1], ("runs", 1))]
    assert len(paths) > 200
    for path in paths:
        value = functools.reduce(lambda d, k: d[k], path, c)
        wrong = "list" if isinstance(value, (str, bool)) or value is None else "text"
        for how in ("null", "delete", wrong) if isinstance(path[-1], str) else ("null", wrong):
            with _mutated(c, path, how):
                read = Comparison.from_dict(c)
                assert Comparison.from_dict(read.to_dict()) == read, (path, how)


def test_a_number_of_the_wrong_kind_reads_as_none_and_lists_keep_their_length():
    d = json.loads(json.dumps(synthetic_comparison()))
    d["measurements"]["speedup"]["point"] = "fast"
    d["measurements"]["speedup"]["values"] = [0.1, None, "x", True]
    d["runs"][0]["result"]["step_times"][3] = "?"
    d["runs"][1]["result"]["curve"] = "not a list"
    d["criteria"][0]["passed"] = "yes"
    d["runs"].append("not a run")
    c = Comparison.from_dict(d)
    assert c.measurements.speedup.point is None
    assert c.measurements.speedup.values == (0.1, None, None, None)
    times = c.runs[0].result.step_times
    assert times[3] is None and len(times) == len(d["runs"][0]["result"]["step_times"])
    assert c.runs[1].result.curve == () and c.criteria[0].passed is None
    assert len(c.runs) == len(d["runs"]) - 1  # a list of records keeps its records alone


def test_the_models_own_readings_of_a_file():
    d = json.loads(json.dumps(synthetic_comparison()))
    c = Comparison.from_dict(d)
    stalls = d["stalls"]["runs"]
    assert c.stalls.run_queue_wait_s == pytest.approx(sum(r["run_queue_wait_s"] for r in stalls))
    assert c.stalls.involuntary_switches == sum(r["involuntary_switches"] for r in stalls)
    setup = c.config.setup
    assert set(setup) == {"model", "data", "training", "optimizations", "measurement"}
    assert setup["training"] == d["config"]["training"]  # criteria only judge: not the setup
    d["measurements"]["memory"] = {}  # an empty object is no record
    assert Comparison.from_dict(d).measurements.memory is None
