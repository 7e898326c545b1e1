"""Where the Bayes floor is unknown (token data): the baseline's learning is judged by what can be
measured, comparison.json says so (schema 4.1: the floor null, the workload recorded), every
reader says "Bayes floor unknown (token data)" and never prints None or nan, a 4.0 file reads
with its workload derived, and the history never compares runs on different workloads.

Nothing is trained: the runs are hand-built as in tests/test_criteria.py, the comparison is the
contract's synthetic one (tests/test_report.py) as token data makes it."""

from __future__ import annotations

import copy
import io
import json
import re
from dataclasses import replace

import jsonschema
import pytest

from ryot.comparison.model import Comparison
from ryot.config import CriteriaConfig
from ryot.console import Console
from ryot.experiment.console_report import learning_lines, print_arm, print_comparison
from ryot.judge.criteria import DEBUG, GO, judge, verdict
from ryot.judge.measurements import measure
from ryot.report.html import render_report, render_run_dir
from ryot.report.schema import load_schema
from ryot.report.sections.history import Earlier, history_context
from tests.test_comparison_model import DERIVED, assert_kept
from tests.test_criteria import CONFIG, UNIGRAM, arm, good_pairs, records
from tests.test_report import parse, synthetic_comparison

# The shipped defaults but the gain over unigram, set apart from the others so a test can tell
# which rule decided.
CRITERIA = replace(
    CriteriaConfig(), min_loss_drop=1.0, min_context_learned=0.25, min_gain_over_unigram=0.5
)
UNKNOWN = "Bayes floor unknown (token data)"
TRAIN_SHA, VAL_SHA = "0123456789ab" + "c" * 52, "fedcba987654" + "d" * 52


def floorless(pairs) -> list:
    """Runs on token data: every run's floor unknown."""
    recs = records(pairs)
    for rec in recs:
        rec.result = replace(rec.result, bayes_floor=None)
    return recs


def judged(recs):
    rows = judge(measure(CONFIG, recs, []), CRITERIA)
    return verdict(rows), {r.id: r for r in rows}


def pairs_with_baselines(start: float, final: float):
    """good_pairs with every baseline falling from `start` to `final`."""
    return [(arm(time_s=b.wall_time_s, start=start, final=final), o) for b, o in good_pairs()]


# --- the judge ------------------------------------------------------------------------------


def test_enough_drop_and_gain_over_unigram_is_learning():
    status, rows = judged(floorless(good_pairs()))
    row = rows["baseline_learned"]
    assert status == GO and row.passed and row.critical
    # the worst seed: the least gain, 5.0 - 4.02 nats (finals 4.0, 4.02, 3.99)
    assert row.measured == pytest.approx(UNIGRAM - 4.02) and row.unit == " nats"
    assert row.threshold == (
        "loss drop >= 1 nats and gain over the unigram loss >= 0.5 nats, every baseline seed "
        "(Bayes floor unknown)"
    )
    assert "Bayes floor unknown" in row.summary and "gain over the unigram loss" in row.summary
    assert "Bayes floor unknown" in row.detail and "context learned" not in row.summary
    m = measure(CONFIG, floorless(good_pairs()), [])
    learning = m.learning.to_dict()
    assert learning["bayes_floor"] is None and learning["context_learned"] is None
    assert learning["gain_over_unigram"] == pytest.approx(UNIGRAM - 4.02)
    assert [s["gain_over_unigram"] for s in learning["per_seed"]] == pytest.approx(
        [UNIGRAM - f for f in (4.0, 4.02, 3.99)]
    )


def test_a_big_drop_with_too_little_gain_over_unigram_did_not_learn():
    """9 -> 4.8 nats is a drop of 4.2, but 0.2 nats under the unigram loss: the model learned
    little more than token frequencies."""
    status, rows = judged(floorless(pairs_with_baselines(start=9.0, final=4.8)))
    row = rows["baseline_learned"]
    assert status == DEBUG and not row.passed
    assert row.measured == pytest.approx(0.2)
    assert "smallest loss drop 4.200 nats" in row.summary


def test_too_little_drop_did_not_learn_whatever_the_gain():
    status, rows = judged(floorless(pairs_with_baselines(start=4.6, final=4.0)))
    row = rows["baseline_learned"]
    assert status == DEBUG and not row.passed
    assert row.measured == pytest.approx(1.0)  # gain enough; the drop of 0.6 < 1.0 is not
    assert "smallest loss drop 0.600 nats" in row.summary


def test_the_synthetic_language_keeps_its_floor_and_context_learned():
    _, rows = judged(records(good_pairs()))
    row = rows["baseline_learned"]
    assert row.unit == "%" and "context learned >= 25%" in row.threshold
    assert "Bayes floor unknown" not in row.summary + row.detail


# --- comparison.json, its reading and its readers ------------------------------------------


def token_workload() -> dict:
    return {
        "model": {
            "name": "tests.workloads.tiny_gpt:build",
            "factory": "tests.workloads.tiny_gpt:build",
            "factory_kwargs": {"n_layer": 2, "tie": True},
            "vocab_size": 64,
            "max_seq_len": 32,
        },
        "data": {
            "source": "tokens",
            "path": "data/stdlib",
            "dtype": "uint16",
            "files": {
                "train": {"name": "train.bin", "tokens": 1_234_567, "sha256": TRAIN_SHA},
                "val": {"name": "val.bin", "tokens": 45_678, "sha256": VAL_SHA},
            },
        },
    }


def token_comparison() -> dict:
    """The contract's synthetic comparison as token data makes it: no floor anywhere, the
    learning judged by the gain over the unigram loss, the team's model on its token files."""
    c = synthetic_comparison()
    c["model"] = "tests.workloads.tiny_gpt:build"
    c["bayes_floor"] = None
    c["bench"] = {
        "description": "token files data/stdlib (uint16): train.bin 1,234,567 tokens",
        "unigram_loss": c["unigram_loss"],
        "bayes_floor": None,
        "floor_per_position": None,
        "unigram_per_position": c["bench"]["unigram_per_position"],
    }
    c["workload"] = token_workload()
    c["config"]["data"].update(source="tokens", path="data/stdlib", dtype="uint16")
    c["config"]["model"].update(factory="tests.workloads.tiny_gpt:build")
    learning = c["measurements"]["learning"]
    for point in (learning, *learning["per_seed"]):
        point.update(bayes_floor=None, context_learned=None)
    for run in c["runs"]:
        run["result"]["bayes_floor"] = None
    row = c["criteria"][0]
    assert row["id"] == "baseline_learned"
    gain = learning["gain_over_unigram"]
    row.update(
        measured=gain,
        unit=" nats",
        threshold="loss drop >= 0.5 nats and gain over the unigram loss >= 0.1 nats, every "
        "baseline seed (Bayes floor unknown)",
        summary=f"Baseline learned: {gain:.4g} nats gain over the unigram loss; Bayes floor "
        "unknown",
    )
    return json.loads(json.dumps(c, allow_nan=False))


def assert_no_none_or_nan(text: str) -> None:
    assert not re.search(r"\bNone\b", text), re.search(r".{80}\bNone\b.{80}", text)
    assert not re.search(r"\bnan\b", text, re.IGNORECASE), re.search(r".{80}\bnan\b", text)


def test_a_floorless_comparison_follows_the_schema_and_reads_back_whole():
    d = token_comparison()
    jsonschema.Draft202012Validator(load_schema()).validate(d)
    c = Comparison.from_dict(d)
    assert_kept(d, c.to_dict())
    assert Comparison.from_dict(c.to_dict()) == c
    assert c.bayes_floor is None and c.bench.floor_per_position is None
    assert c.floor_unknown == UNKNOWN
    w = c.workload
    assert (w.model.factory, w.model.factory_kwargs) == ("tests.workloads.tiny_gpt:build",
                                                         {"n_layer": 2, "tie": True})  # fmt: skip
    assert (
        w.data.files["train"].short_hash == "0123456789ab" and w.data.files["val"].tokens == 45678
    )
    # a token file's hash is its identity: a malformed one is no comparison.json
    bad = copy.deepcopy(d)
    bad["workload"]["data"]["files"]["val"]["sha256"] = "not a hash"
    assert list(jsonschema.Draft202012Validator(load_schema()).iter_errors(bad))
    # the synthetic language's settings are required where the floor is known
    bad = copy.deepcopy(synthetic_comparison())
    del bad["bench"]["num_topics"]
    assert list(jsonschema.Draft202012Validator(load_schema()).iter_errors(bad))


def test_the_report_says_the_floor_is_unknown_and_shows_the_gain():
    d = token_comparison()
    html = render_report(d)
    assert_no_none_or_nan(html)
    dom = parse(html).root
    learning = dom.find(id="learning")
    assert UNKNOWN in learning.text() and "lowest gain over the unigram loss" in learning.text()
    kv = {tr.find("th").text(): tr.find("td").text() for tr in learning.find_all("tr")[:6]}
    gain = d["measurements"]["learning"]["gain_over_unigram"]
    assert kv["Gain over the unigram loss (nats)"] == f"{gain:.4f}"
    assert kv["Bayes floor (the best possible)"] == UNKNOWN and "Context learned" not in kv
    assert "a gain over the unigram loss >= 0.10 nats" in learning.text()
    header = [th.text() for th in learning.find("table", cls="per-seed").find_all("th")]
    assert header[-1] == "Gain over unigram"
    headline = " ".join(m.text() for m in dom.find_all(cls="metric"))
    assert "Gain over unigram" in headline and f"{gain:.3f} nats" in headline
    assert UNKNOWN in headline and "Context learned" not in headline
    env = dom.find("section", id="environment").text()
    assert UNKNOWN in env and "tests.workloads.tiny_gpt:build" in env and "n_layer=2" in env
    assert "token files data/stdlib (uint16)" in env
    assert "train.bin: 1,234,567 tokens, sha256 0123456789ab" in env
    assert "val.bin: 45,678 tokens, sha256 fedcba987654" in env and VAL_SHA not in env
    # no floor to draw: the reference lines skip it
    assert "Bayes floor" not in dom.find("figure", id="chart-loss").text()
    positions = dom.find("figure", id="chart-positions")
    assert not positions.find_all(data_series="floor_per_position")
    assert positions.find_all(data_series="unigram_per_position") and UNKNOWN in positions.text()


def test_the_synthetic_report_shows_its_workload_and_no_unknown_floor():
    dom = parse(render_report(synthetic_comparison())).root
    env = dom.find("section", id="environment").text()
    assert "ScaledTransformerModel" in env and "synthetic language (seed 7)" in env
    assert "Bayes floor unknown" not in dom.text()


def test_the_console_says_the_floor_is_unknown_and_never_none():
    c = Comparison.from_dict(token_comparison())
    (line, *_) = learning_lines(c)
    assert UNKNOWN in line and "gain over the unigram loss" in line and "context" not in line
    out = io.StringIO()
    print_comparison(Console(out), c)
    result = floorless(good_pairs())[0].result
    print_arm(Console(out), "baseline", result)
    text = out.getvalue()
    (validation,) = [x for x in text.splitlines() if x.startswith("Validation loss:")]
    assert validation.endswith("unigram 5.0000, Bayes floor unknown)")
    assert UNKNOWN in text and "gain over the unigram loss" in text
    assert_no_none_or_nan(text)


# --- schema 4.0 ---------------------------------------------------------------------------


def as_schema_4_0(d: dict) -> dict:
    """A 4.1 comparison of the synthetic language as schema 4.0 wrote it: no workload, no gain
    over the unigram loss."""
    d = copy.deepcopy(d)
    d["schema_version"] = "4.0"
    del d["workload"]
    learning = d["measurements"]["learning"]
    for point in (learning, *learning["per_seed"]):
        del point["gain_over_unigram"]
    return d


def test_a_schema_4_0_file_reads_with_its_workload_and_gains_derived():
    new = synthetic_comparison()
    old = as_schema_4_0(new)
    jsonschema.Draft202012Validator(load_schema("4.0")).validate(old)
    assert list(jsonschema.Draft202012Validator(load_schema()).iter_errors(old))  # not a 4.1
    c = Comparison.from_dict(old)
    assert c.schema_version == "4.0"
    assert c.workload.to_dict() == new["workload"]  # Ryot's model, the synthetic language
    assert c.floor_unknown is None
    assert c == replace(Comparison.from_dict(new), schema_version="4.0")
    assert_kept(old, c.to_dict(), derived=DERIVED)


@pytest.mark.parametrize("name", ["cpu-2core-xeon-amx-bf16", "cpu-2core-epyc-no-avx512"])
def test_the_committed_examples_read_as_ryots_model_on_the_synthetic_language(name):
    from tests.conftest import ROOT

    d = json.loads((ROOT / "reports/examples" / name / "comparison.json").read_text("utf-8"))
    c = Comparison.from_dict(d)
    assert c.workload.model.name == d["model"] == "ScaledTransformerModel"
    assert c.workload.model.factory is None
    assert c.workload.model.vocab_size == d["config"]["model"]["vocab_size"]
    assert c.workload.data.to_dict() == {"source": "synthetic", "seed": d["config"]["data"]["seed"]}
    learn = c.measurements.learning
    assert learn.gain_over_unigram == pytest.approx(learn.unigram_loss - learn.final_loss)


# --- the history --------------------------------------------------------------------------


def earlier(d: dict, **edits) -> dict:
    d = copy.deepcopy(d)
    d["created"] = "2024-12-31T00:00:00+00:00"  # before the current run
    for where, value in edits.items():
        *path, key = where.split("__")
        node = d
        for k in path:
            node = node[k]
        node[key] = value
    return d


def test_the_history_leaves_out_a_run_on_other_data_and_says_why():
    current = token_comparison()
    same = earlier(current)
    other = earlier(current, workload__data__files__train__sha256="9" * 64)
    history = history_context(
        Comparison.from_dict(current),
        [Earlier(Comparison.from_dict(same), "../a/comparison.json"),
         Earlier(Comparison.from_dict(other), "../b/comparison.json")],
    )  # fmt: skip
    assert history["count"] == 1 and len(history["rows"]) == 2  # the same data, and this run
    assert [r["source"] for r in history["rows"]] == ["../a/comparison.json", None]
    (left,) = history["left_out"]
    assert left["source"] == "../b/comparison.json"
    assert "train.bin 999999999999" in left["why"] and "not token files" in left["why"]


@pytest.mark.parametrize(
    "edit",
    [
        {"workload__data__files__val__sha256": "8" * 64},
        {"workload__data": {"source": "synthetic", "seed": 7}},
        {"workload__model__factory_kwargs": {"n_layer": 4, "tie": True}},
        {"workload__model__name": "ScaledTransformerModel", "workload__model__factory": None},
    ],
    ids=["other-val-file", "synthetic-data", "other-kwargs", "other-model"],
)
def test_a_run_on_another_workload_is_never_on_the_chart(edit):
    current = token_comparison()
    dom = parse(render_report(current, [earlier(current, **edit)])).root
    section = dom.find("section", id="history")
    assert not section.find_all("svg") and not section.find_all("table")
    assert "no earlier runs found on this workload" in section.text()
    note = section.find(cls="history-left-out").text()
    assert "1 earlier run(s) on a different workload" in note and "different workload," in note


def test_a_run_dirs_history_marks_the_sibling_on_other_token_files(tmp_path):
    """Two runs of the same config (same folder of token files) whose files changed between
    them: the config is equal, the data is not."""
    current = token_comparison()
    for name, d in (
        ("a-first", earlier(current, workload__data__files__train__sha256="7" * 64)),
        ("b-second", current),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "comparison.json").write_text(json.dumps(d), encoding="utf-8")
    warnings: list[str] = []
    path = render_run_dir(tmp_path / "b-second", warn=warnings.append)
    section = parse(path.read_text(encoding="utf-8")).root.find("section", id="history")
    assert warnings == [] and not section.find_all("svg")
    note = section.find(cls="history-left-out")
    assert "../a-first/comparison.json" in note.text() and "train.bin 777777777777" in note.text()
