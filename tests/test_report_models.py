"""The report's plain data, checked as numbers rather than as SVG or HTML: the headline and the
comparison table (ryot.report.summary, which the console prints too) and each chart's model
(ryot.report.chart_models), from the committed example run (schema 3.0, read as the typed
comparison) and small comparisons written here."""

from __future__ import annotations

import ast
import io
import json
import statistics
from pathlib import Path

import pytest

from ryot.comparison.model import AblationRow, ArmSummary, Comparison, SeedComparison
from ryot.comparison.runs import ArmResult, Epoch, Run
from ryot.console import Console
from ryot.experiment import console_report
from ryot.report import chart_models, summary
from ryot.report.html import render_report
from ryot.train.results import EpochMetrics
from tests.test_report import parse, synthetic_comparison

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "reports" / "examples" / "cpu-2core-xeon-amx-bf16" / "comparison.json"
EXAMPLE_2 = ROOT / "reports" / "examples" / "cpu-2core-epyc-no-avx512" / "comparison.json"


@pytest.fixture(scope="module")
def example() -> dict:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def typed(example) -> Comparison:
    return Comparison.from_dict(example)


# --- one headline, one table ---------------------------------------------------------------


def test_headline_is_the_speedup_at_equal_quality_then_end_to_end(typed):
    assert summary.headline(typed) == (
        "Speedup at equal quality (time to matched loss): +43.9% (95% CI [+38.5%, +48.9%]); "
        "end to end +50.8% (95% CI [+47.7%, +53.6%])"
    )
    ttt, e2e = summary.headline_figures(typed)
    assert (ttt.id, ttt.value, ttt.missed) == ("headline-ttt", "+43.9%", False)
    assert ttt.sub == "95% CI [+38.5%, +48.9%] · geometric mean of 3 pairs"
    assert (e2e.id, e2e.value) == ("headline-speedup", "+50.8%")
    assert summary.headline(Comparison()) is None and summary.headline_figures(Comparison()) == []


def test_a_missed_target_reads_not_reached_with_its_ci():
    c = Comparison.from_dict(json.loads(EXAMPLE_2.read_text(encoding="utf-8")))
    ttt, _ = summary.headline_figures(c)  # schema 2.0: seed 44 never got there
    assert ttt.label == "Speedup at equal quality (time to target)"
    assert (ttt.value, ttt.missed) == ("not reached", True)
    assert ttt.sub.startswith("the optimized arm never reached the target in 1 of 3 pair(s)")
    assert summary.headline(c).startswith(
        "Speedup at equal quality (time to target): not reached (95% CI [n/a, +9.9%])"
    )


def test_comparison_rows_are_the_medians_of_the_json(example, typed):
    rows = {r.label: r for r in summary.comparison_rows(typed)}
    b, o = example["baseline"], example["optimized"]
    total = rows["Total training time (s)"]
    assert (total.baseline, total.optimized) == (f"{b['total_time']:.2f}", f"{o['total_time']:.2f}")
    diff = b["total_time"] - o["total_time"]
    assert total.change == f"{diff:+.2f} ({100 * diff / b['total_time']:+.1f}%)"
    pairs = example["measurements"]["time_to_target"]["pairs"]
    ttt = rows["Time to matched loss (s)"]
    assert ttt.baseline == f"{statistics.median(p['baseline_s'] for p in pairs):.2f}"
    assert rows["Validation loss"].change == f"{example['comparison']['loss_delta']:+.4f}"
    # schema 3.0's total time is the stack clock already: no second row repeating it
    assert not [label for label in rows if label.startswith("Stack clock")]
    assert "machine stalls off" in summary.comparison_note(typed)
    no_optimized = Comparison(baseline=ArmSummary())
    assert summary.comparison_rows(no_optimized) is None  # no optimized arm: no table


def _report_table(html: str) -> list[list[str]]:
    dom = parse(html).root
    table = dom.find("table", cls="comparison")
    return [[td.text() for td in tr.find_all("td")] for tr in table.find("tbody").find_all("tr")]


@pytest.mark.parametrize("source", ["example", "synthetic"])
def test_console_and_report_show_the_same_headline_and_table(source, example):
    d = example if source == "example" else synthetic_comparison()
    c = Comparison.from_dict(d)
    rows = [list(r) for r in summary.comparison_rows(c)]
    html = render_report(d)
    assert _report_table(html) == rows
    out = io.StringIO()
    console_report.print_comparison(Console(out), c)
    printed = out.getvalue().splitlines()
    assert summary.headline(c) in printed
    table = [[cell.strip() for cell in line.split("|")] for line in printed if line.count("|") == 3]
    assert table == [list(summary.TABLE_HEADER), *rows]  # an ASCII stream: "|" for the bar
    assert f"({summary.comparison_note(c)})" in printed
    assert summary.comparison_note(c).replace("'", "&#39;") in html
    dom = parse(html).root
    for figure in summary.headline_figures(c):
        node = dom.find(cls="metric", id=figure.id)
        assert node.find(cls="metric-value").text() == figure.value
        assert node.find(cls="metric-sub").text() == figure.sub


def test_console_epoch_cells_are_the_report_epoch_cells(example):
    run = next(r for r in example["runs"] if r["result"])
    epoch = run["result"]["epochs"][0]
    cells = summary.epoch_numbers(Epoch.from_dict(epoch))
    assert console_report.epoch_cells(EpochMetrics(**epoch)) == [*cells, "\u2713"]
    assert cells == (
        str(epoch["epoch"]),
        f"{epoch['mean_loss']:.4f}",
        f"{epoch['time_s']:.2f}",
        f"{epoch['tokens_per_s']:,.0f}",
    )


def test_the_report_imports_no_stage_but_the_registry():
    """The layering rule: the experiment stage may import the report; the report reads only the
    comparison.json it is handed (and the optimization registry's colours, order and rows)."""
    forbidden = ("ryot.experiment", "ryot.judge", "ryot.train", "ryot.bench")
    for path in sorted((ROOT / "ryot" / "report").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.startswith(forbidden)], path.name


# --- the charts' models ---------------------------------------------------------------------


def test_speedup_chart_model_has_the_geometric_means_and_cis(example, typed):
    m = chart_models.speedup_model(typed)
    ttt, e2e = m.rows
    assert ttt.label == "at equal quality" and e2e.label == "end to end"
    assert ttt.point == pytest.approx(43.945, abs=1e-3)
    assert (ttt.low, ttt.high) == (pytest.approx(38.469, abs=1e-3), pytest.approx(48.934, abs=1e-3))
    est = example["measurements"]["time_to_target"]
    assert ttt.pairs == pytest.approx([100 * v for v in est["values"]])
    assert (ttt.n, ttt.level, ttt.infinite) == (3, 0.95, 0)
    assert e2e.point == pytest.approx(100 * example["measurements"]["speedup"]["point"])
    assert m.threshold == 25.0 and m.aa == pytest.approx(100 * example["noise"]["aa"])
    assert "geometric mean +43.9% · 95% CI [+38.5%, +48.9%] · n=3 pairs" in ttt.summary


def test_equivalence_chart_model_is_the_loss_delta_against_its_margin(example, typed):
    m = chart_models.equivalence_model(typed)
    est = example["measurements"]["loss_delta"]
    assert (m.row.point, m.row.low, m.row.high) == (est["point"], est["low"], est["high"])
    assert m.row.pairs == tuple(est["values"])
    assert (m.margin, m.non_inferiority, m.non_inferior) == (0.1, True, True)
    assert m.spread == est["baseline_spread"]
    assert m.heading == "mean +0.0251 · 95% CI [+0.0121, +0.0380] · non-inferior"


def test_curve_chart_model_marks_each_pairs_matched_loss_and_times(example, typed):
    m = chart_models.curve_model(typed)
    pairs = example["measurements"]["time_to_target"]["pairs"]
    assert not m.at_target and m.target is None
    assert [(x.seed, x.loss, x.baseline_s, x.optimized_s) for x in m.matched] == [
        (p["seed"], p["loss"], p["baseline_s"], p["optimized_s"]) for p in pairs
    ]
    assert [(x.arm, x.seconds) for x in m.marks] == [
        (arm, p[f"{arm}_s"]) for p in pairs for arm in ("baseline", "optimized")
    ]
    assert m.levels == [p["loss"] for p in pairs]
    assert [s.key for s in m.series] == ["baseline"] * 3 + ["optimized"] * 3
    run = next(r for r in example["runs"] if r["arm"] == "baseline" and r["role"] == "pair")
    first = m.series[0].points[0]
    assert first == (run["result"]["curve"][0]["clock_s"], run["result"]["curve"][0]["val_loss"])
    assert m.times[0] == "time to matched loss L*, baseline: 55.47 s, 51.58 s, 51.48 s"


def test_loss_chart_model_draws_earlier_runs_faint_and_the_references(example, typed):
    m = chart_models.loss_model(typed)
    with_losses = [r for r in example["runs"] if r["result"] and r["result"]["step_losses"]]
    assert len(m.series) == len(with_losses)
    bold = [s for s in m.series if s.opacity is None]
    assert [s.key for s in bold] == ["baseline", "optimized"] and m.series[-2:] == tuple(bold)
    # each arm's own run, never the A/A run (run 7, the last baseline run here: issue 22)
    assert [s.label for s in bold] == ["baseline (run 5)", "optimized (run 6)"]
    assert m.legend[0] == ("baseline (run 5)", bold[0].color, "line")
    first = m.series[0]
    assert first.points[0] == (1, with_losses[0]["result"]["step_losses"][0])  # x: step, from 1
    assert [lv.value for lv in m.levels] == [example["unigram_loss"], example["bayes_floor"]]
    assert m.legend[-1] == ("earlier runs", "#6c757d", "faint")


def test_position_and_step_time_models(example, typed):
    pos = chart_models.position_model(typed)
    assert [s.key for s in pos.series] == [
        "baseline",
        "optimized",
        "unigram_per_position",
        "floor_per_position",
    ]
    floor = example["bench"]["floor_per_position"]
    assert pos.last == len(floor) - 1
    assert pos.series[-1].points == [(i, v) for i, v in enumerate(floor)]
    steps = chart_models.step_time_model(typed)
    for box in steps.boxes:
        ms = [
            1000 * t
            for r in example["runs"]
            if r["arm"] == box.arm and r["result"]
            for t in r["result"]["step_times"]
        ]
        assert box.ms == pytest.approx(ms)
        assert box.median == pytest.approx(statistics.median(ms))
        assert box.q1 <= box.median <= box.q3
    assert not steps.log


def test_ablation_and_history_models():
    c = Comparison(
        ablation={
            "scaling": AblationRow(speedup_percent=10.0, loss_delta=-0.02),
            "kernel": AblationRow(speedup_percent=-12.5, loss_delta=None),
        },
        comparison=SeedComparison(speedup_percent=30.0, loss_delta=0.01),
    )
    m = chart_models.ablation_model(c)
    assert [(b.label, b.value) for b in m.speed] == [
        ("kernel", -12.5),
        ("scaling", 10.0),
        ("optimized (all)", 30.0),
    ]
    assert [b.value for b in m.loss] == [None, -0.02, 0.01]
    keys = [f"{k}{s}" for k in ("ttt", "speedup", "loss_delta") for s in ("", "_low", "_high")]
    point = {"status": "GO", "current": False, **dict.fromkeys(keys)}
    old = {**point, "ttt": 40.0, "ttt_low": 35.0, "ttt_high": 45.0}
    new = {**point, "ttt": 44.0, "status": "DEBUG", "current": True}
    h = chart_models.history_model([old, new])
    ttt = h.panels[0]
    assert [(p.value, p.low, p.high, p.current) for p in ttt.points] == [
        (40.0, 35.0, 45.0, False),
        (44.0, None, None, True),
    ]
    assert ttt.line.points == [(0, 40.0), (1, 44.0)]
    assert ttt.points[1].ring == "#c92a2a"
    assert chart_models.history_model([old]) is None


@pytest.mark.parametrize(
    "build",
    [
        chart_models.loss_model,
        chart_models.curve_model,
        chart_models.position_model,
        chart_models.step_time_model,
        chart_models.speedup_model,
        chart_models.equivalence_model,
        chart_models.ablation_model,
    ],
)
def test_a_comparison_without_data_has_no_chart_model(build):
    assert build(Comparison()) is None
    empty = Run(index=1, arm="baseline", role="pair", result=ArmResult())
    assert build(Comparison(runs=(empty,), last_runs={"baseline": 1})) is None
